"""RGA (Zhang et al., CVPR 2020) Table 3: number of parameters per scheme (millions).

No training: each row's model is built at the paper's 256 x 128 input (ResNet-50, last stride 1,
one module after each stage, BNNeck) with the 767-way CUHK03-NP classifier, and its parameters
are counted. Runs instantly on any machine; the profile is always "paper" (the input size
determines RGA's relation sizes).

    python reproduce/table3_rga.py
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("rga_table3"))
