"""Everything device-specific in one place: which device, AMP, channels_last, peak memory.

CPU runs are plain fp32 and deterministic. CUDA runs use automatic mixed precision (bf16 if the
GPU supports it, else fp16 with a gradient scaler) and the channels_last memory format.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DeviceSettings:
    device: torch.device
    amp: bool
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        # bf16 needs no loss scaling; a disabled scaler is a no-op pass-through.
        enabled = self.amp and self.amp_dtype == torch.float16
        return torch.amp.GradScaler(self.device.type, enabled=enabled)

    def to_device(self, batch: Any) -> Any:
        """A batch (tensors, possibly in nested dicts) on this device; images -- 4-d float
        tensors -- in channels_last when it is on. Non-tensor values pass through."""
        if isinstance(batch, Mapping):
            return {k: self.to_device(v) for k, v in batch.items()}
        if not isinstance(batch, torch.Tensor):
            return batch
        x = batch.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4 and x.is_floating_point():
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.device.type, "amp": self.amp,
                                  "amp_dtype": str(self.amp_dtype) if self.amp else None,
                                  "channels_last": self.channels_last,
                                  "torch_threads": torch.get_num_threads()}
        if self.is_cuda:
            out["name"] = torch.cuda.get_device_name(self.device)
        return out


class DeviceError(ValueError):
    """A device name that is malformed or names a device this machine does not have."""


def resolve_device(name: str = "auto") -> DeviceSettings:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available).

    Raises:
        DeviceError: an unknown name (``"gpu"``), CUDA requested where torch sees none, or a
            CUDA index beyond the devices present -- before any data or model is touched.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"--device {name!r} is not a device name; use cpu, cuda, cuda:N "
                          f"or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} was requested but torch sees no CUDA device "
                              f"(torch {torch.__version__}, CUDA build "
                              f"{torch.version.cuda or 'none'}); use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {name}: this machine has {count} CUDA device(s) "
                              f"(cuda:0 .. cuda:{count - 1})")
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return DeviceSettings(device, amp=True, amp_dtype=dtype, channels_last=True)
    if device.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or auto")
    return DeviceSettings(device, amp=False, amp_dtype=None, channels_last=False)


def reset_peak_memory(settings: DeviceSettings) -> None:
    if settings.is_cuda:
        torch.cuda.reset_peak_memory_stats(settings.device)


def peak_memory_mb(settings: DeviceSettings) -> dict[str, float]:
    """Peak memory so far, in MiB.

    ``host_rss_peak_mb`` is the process's peak resident set size (``getrusage``; it covers
    everything the process held, including the Python interpreter and the dataset).
    ``cuda_allocated_peak_mb`` is torch's CUDA allocator peak since the last reset.
    """
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20  # macOS: bytes
    out = {"host_rss_peak_mb": round(rss_mb, 1)}
    if settings.is_cuda:
        out["cuda_allocated_peak_mb"] = round(
            torch.cuda.max_memory_allocated(settings.device) / 2**20, 1)
    return out
