"""CSA (Chen et al., AAAI 2020) Table 6: memory per image and FPS of PCB, PCB + SA and PCB + CSA
with 1, 2, 4 and 8 groups, at the paper's 384 x 128 input.

No training: each row's model (ResNet-50, random init, the paper profile of
configs/papers/csa.yaml) is built and measured on this machine -- memory per image in training
and in inference, inference FPS -- and the report lines up the ratios to PCB with the paper's
(242% memory / 59% FPS for SA; +11% / -5% for CSA with 1 group, +26% / -17% with 8). How memory
is measured: reid_core/engine/cost.py. Every invocation adds a measurement; the report takes
the median over invocations.

    python reproduce/table6_csa.py                 # CPU here, or CUDA when present
    python reproduce/table6_csa.py --device cuda
"""

import sys

from reid_core.cli.reproduce import reproduce_table

if __name__ == "__main__":
    sys.exit(reproduce_table("csa_table6"))
