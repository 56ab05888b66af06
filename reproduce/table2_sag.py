"""SAG (Ainam et al.) Table 2: dataset statistics. Prints the paper's counts next to the
suite's own counts of your copies of Market-1501, CUHK03 (classic, detected) and DukeMTMC-reID,
and of the synthetic set the smoke runs use (reid_core/app/dataset_stats.py). Nothing is
trained.

    python reproduce/table2_sag.py                          # the synthetic set only
    python reproduce/table2_sag.py --data-root ~/datasets   # and your copies
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("sag_table2"))
