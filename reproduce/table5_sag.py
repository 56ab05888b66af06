"""SAG (Ainam et al.) Table 5: comparison on DukeMTMC-reID, without and with re-ranking (SAG+RR).

    python reproduce/table5_sag.py                   # smoke: synthetic data, small scale
    python reproduce/table5_sag.py --data-root ~/datasets --profile paper --device cuda \
        --dataset dukemtmcreid

Rows and configs: paper_tables/sag_table5.yaml and configs/papers/sag.yaml.
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("sag_table5"))
