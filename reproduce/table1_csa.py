"""CSA (Chen et al., AAAI 2020) Table 1: Comparison of the models with and without the proposed
CSA. SA means the original self-attention.

The rows come from paper_tables/csa_table1.yaml, their configs from configs/papers/csa.yaml.
Run with --help for the options.

    python reproduce/table1_csa.py                       # smoke profile, synthetic data
    python reproduce/table1_csa.py --data-root ~/datasets --profile paper --device cuda
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("csa_table1"))
