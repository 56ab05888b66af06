"""Forward time of the self-attention family (SA, SA via SDPA, CSA with 1/2/8 groups, RGA-S) at
three feature-map sizes, with the peak tensor memory of one forward in ``extra_info``.

Inference (eval mode, ``torch.no_grad``), batch 4, C = 256 (ResNet-50 stage-1 width, where CSA
is meant to pay off); H x W = 24x8, 48x16, 96x32 (stage 3, 2, 1 maps of a 384x128 PCB input).
Memory is measured in a separate, profiled call (see :mod:`reid_core.utils.memory`), never
inside the timed rounds.

Measures, never asserts timings: run with
``python -m pytest benchmarks/test_bench_attention.py --benchmark-only``.
For time and memory as the map grows, see ``benchmarks/attention_scaling.py``.
"""

from __future__ import annotations

import pytest
import torch

from reid_core.models.attention import build_attention
from reid_core.utils.memory import peak_memory_bytes

BATCH, CHANNELS = 4, 256
SIZES = [(24, 8), (48, 16), (96, 32)]
MODULES = {  # benchmark id -> (registry name, options)
    "sa": ("sa", {}),
    "sa_sdpa": ("sa_sdpa", {}),
    "csa_g1": ("csa", {"groups": 1}),
    "csa_g2": ("csa", {"groups": 2}),
    "csa_g8": ("csa", {"groups": 8}),
    "rga_s": ("rga_s", {}),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("module_id", list(MODULES))
def test_attention_forward(benchmark, module_id: str, size: tuple[int, int]) -> None:
    name, options = MODULES[module_id]
    height, width = size
    torch.manual_seed(0)
    module = build_attention(name, CHANNELS, height, width, **options).eval()
    x = torch.randn(BATCH, CHANNELS, height, width)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    peak = peak_memory_bytes(forward, "cpu")
    benchmark.pedantic(forward, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({
        "module": name, "options": options, "batch": BATCH, "channels": CHANNELS,
        "height": height, "width": width, "positions": height * width,
        "peak_memory_mib": round(peak / 2**20, 2), "torch_threads": torch.get_num_threads(),
    })
