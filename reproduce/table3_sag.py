"""SAG (Ainam et al.) Table 3: comparison on Market-1501, single and multi query, without and
with re-ranking (SAG+RR). The multi-query columns come from a multi-query evaluation of the same
runs (the query feature: the mean over its gt_bbox images of the same identity and camera, as
the code).

    python reproduce/table3_sag.py                   # smoke: synthetic data, small scale
    python reproduce/table3_sag.py --data-root ~/datasets --profile paper --device cuda

Rows and configs: paper_tables/sag_table3.yaml and configs/papers/sag.yaml.
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("sag_table3"))
