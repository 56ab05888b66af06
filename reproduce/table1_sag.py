"""SAG (Ainam et al.) Table 1: the depth of the self attention grid (D1-D4) and stacks of it,
against the ResNet-50 baseline, on Market-1501, CUHK03 (classic, detected) and DukeMTMC-reID.

    python reproduce/table1_sag.py                   # smoke: synthetic data, small scale
    python reproduce/table1_sag.py --seeds 0 1 2     # the seeds the report's intervals need
    python reproduce/table1_sag.py --data-root ~/datasets --profile paper --device cuda

Rows and configs: paper_tables/sag_table1.yaml and configs/papers/sag.yaml (the official code's
recipe; the model is reid_core/models/heads/sag.py).
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("sag_table1"))
