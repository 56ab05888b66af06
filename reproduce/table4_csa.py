"""CSA (Chen et al., AAAI 2020) Table 4: Comparison of the models with CSA on different stages of
the backbone.

The rows come from paper_tables/csa_table4.yaml, their configs from configs/papers/csa.yaml.
Run with --help for the options.

    python reproduce/table4_csa.py                       # smoke profile, synthetic data
    python reproduce/table4_csa.py --data-root ~/datasets --profile paper --device cuda
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("csa_table4"))
