"""Memory per image and inference speed of a whole model (CSA Table 6).

Two quantities, measured on random inputs of the model's input size (weights do not change
cost, so the model can be randomly initialised):

* **Memory per image** (MB = 2^20 bytes), in two modes, because the CSA paper does not say
  which it measured:

  - ``inference``: one forward in eval mode under ``torch.no_grad``;
  - ``train``: one forward in train mode plus the backward of the sum of all logits (part,
    main and deep-supervision classifiers), i.e. the activations autograd keeps plus the
    gradients.

  Each is the *marginal* cost of an image: ``(peak(2B) - peak(B)) / B``, where ``peak(n)`` is
  the peak tensor memory one pass at batch ``n`` adds on top of what was allocated before it
  (:func:`reid_core.utils.memory.peak_memory_bytes`: the CPU allocator seen through the
  profiler, or CUDA's ``max_memory_allocated``). Costs that do not grow with the batch --
  parameter gradients, kernel workspaces -- cancel out, so the number is per image, not
  "per batch divided by B".
* **FPS**: images per second of an inference forward at batch ``B`` (eval, no_grad), from the
  minimum ("best") and the median of ``repeats`` timed calls after ``warmup`` untimed ones.
"""

from __future__ import annotations

from statistics import median
from typing import Any

import torch
from torch import nn

from reid_core.models.output import ModelOutput
from reid_core.utils.device import DeviceSettings
from reid_core.utils.memory import peak_memory_bytes, time_calls

MB = 2 ** 20

MEMORY_METHOD = (
    "marginal tensor memory per image, (peak(2B) - peak(B)) / B, where peak(n) is the peak tensor "
    "memory one pass at batch n adds on top of what was allocated before it (CPU: torch's "
    "allocator seen through torch.profiler; CUDA: max_memory_allocated). `train` = forward in "
    "train mode + backward of the summed logits; `inference` = eval-mode forward under no_grad "
    "(reid_core/engine/cost.py)."
)


def _logit_sum(out: ModelOutput) -> torch.Tensor:
    """The sum of every training output (``out.train``: today the logits of the main, part and
    deep-supervision classifiers), a tensor or a list of tensors each, in their order."""
    tensors = [t for v in out.train.values() for t in (v if isinstance(v, (list, tuple)) else [v])]
    return sum(t.sum() for t in tensors)


def _peak(model: nn.Module, x: torch.Tensor, mode: str, device: DeviceSettings) -> int:
    def inference() -> None:
        with torch.no_grad():
            model(x)

    def train() -> None:
        _logit_sum(model(x)).backward()

    model.train(mode == "train")
    fn = train if mode == "train" else inference
    fn()  # warm-up: lazy initialisation must not count as the first image's cost
    # Free the gradients outside the measured call: freeing blocks allocated before the
    # profiler started would be invisible to it and corrupt its running total.
    model.zero_grad(set_to_none=True)
    return peak_memory_bytes(fn, device.device)


def measure_model_cost(model: nn.Module, input_size: tuple[int, int], device: DeviceSettings,
                       *, batch_size: int = 8, repeats: int = 5, warmup: int = 1,
                       memory_batch: int = 4) -> dict[str, Any]:
    """Memory per image (both modes) and inference FPS of ``model`` at ``input_size`` = (H, W).

    Returns a JSON-ready mapping (units in the keys): ``memory_per_image_mb`` {train, inference},
    ``peak_mb`` (the raw peaks at ``memory_batch`` and twice it), ``fps`` {best, median,
    times_s}, and the settings. BatchNorm running statistics change in the train pass; measure
    on a throw-away model.
    """
    model = model.to(device.device)
    h, w = input_size
    gen = torch.Generator().manual_seed(0)

    def batch(n: int) -> torch.Tensor:
        return torch.randn(n, 3, h, w, generator=gen).to(device.device)

    memory, peaks = {}, {}
    for mode in ("train", "inference"):
        small, large = (_peak(model, batch(n), mode, device) for n in (memory_batch,
                                                                      2 * memory_batch))
        memory[mode] = (large - small) / memory_batch / MB
        peaks[mode] = {str(memory_batch): small / MB, str(2 * memory_batch): large / MB}
    model.zero_grad(set_to_none=True)

    model.eval()
    x = batch(batch_size)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    times = time_calls(forward, warmup=warmup, repeats=repeats, device=device.device)
    return {
        "memory_per_image_mb": memory, "peak_mb": peaks, "memory_method": MEMORY_METHOD,
        "memory_batch": memory_batch,
        "fps": {"best": batch_size / min(times), "median": batch_size / median(times),
                "times_s": times},
        "batch_size": batch_size, "repeats": repeats, "warmup": warmup,
        "input_size": [h, w], "device": str(device.device), "threads": torch.get_num_threads(),
    }
