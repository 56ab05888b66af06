"""SAG (Ainam et al.) Table 4: comparison on CUHK03 (classic split 5, detected boxes, 100
single-shot gallery samplings; mAP = the mean AP of the sampled galleries, as the code).

    python reproduce/table4_sag.py                   # smoke: synthetic data, small scale
    python reproduce/table4_sag.py --data-root ~/datasets --profile paper --device cuda \
        --dataset cuhk03-classic-detected

Rows and configs: paper_tables/sag_table4.yaml and configs/papers/sag.yaml.
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("sag_table4"))
