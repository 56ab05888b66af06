"""CSA (Chen et al., AAAI 2020) Table 2: Comparison of the models with different numbers of base
attention maps in each group of CSA.

The rows come from paper_tables/csa_table2.yaml, their configs from configs/papers/csa.yaml.
Run with --help for the options.

    python reproduce/table2_csa.py                       # smoke profile, synthetic data
    python reproduce/table2_csa.py --data-root ~/datasets --profile paper --device cuda
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("csa_table2"))
