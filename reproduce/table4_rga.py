"""RGA (Zhang et al., CVPR 2020) Table 4: the rows come from paper_tables/rga_table4.yaml,
their configs from configs/papers/rga.yaml. Run with --help for the options.

    python reproduce/table4_rga.py                       # smoke profile, synthetic data
    python reproduce/table4_rga.py --data-root ~/datasets --profile paper --device cuda
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("rga_table4"))
