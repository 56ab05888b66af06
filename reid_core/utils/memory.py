"""Peak memory and wall-clock time of one call, for the attention benchmarks and CSA Table 6.

:func:`peak_memory_bytes` answers "how many bytes did torch hold *on top of* what was already
allocated, at the worst moment while ``fn()`` ran?", on either device:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
  ``memory_allocated`` at the start. Bytes in live tensors, not the allocator's cached
  (reserved) blocks, so the number does not depend on what earlier code left in the cache.
* CPU: torch's CPU allocator keeps no peak statistic, so ``fn()`` runs under
  ``torch.profiler`` with ``profile_memory=True``. While memory profiling is on, every
  allocation and free made through the allocator is reported with the allocator's running total
  of bytes it has handed out and not yet taken back (``total_allocated``); the peak is the
  largest running total seen, minus the total just before the first event.

What the CPU number includes: every tensor storage created while ``fn()`` runs on the calling
thread (outputs, intermediates, autograd's saved tensors, and any workspace a kernel allocates
as an ATen tensor; torch ops allocate on the calling thread). What it does not include: tensors
made by other Python threads that ``fn`` starts (profiling state is per thread), memory that a
library allocates behind torch's back (oneDNN/MKL scratchpads, OpenMP thread stacks), Python
objects, and the profiler's own bookkeeping. So it is the tensor memory a model needs,
comparable across modules and with the CUDA number, not the process's RSS (for that see
:func:`reid_core.utils.device.peak_memory_mb`).

Under the profiler ``fn()`` runs slower; measure time separately with :func:`time_calls`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def _as_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"peak memory is measured on cpu or cuda devices, got {device}")
    return device


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    _synchronize(device)
    baseline = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - baseline)


def _allocation_events(profiler: torch.profiler.profile) -> list[tuple[int, int, int]]:
    """(start time in ns, bytes allocated (< 0: freed), allocator running total) per CPU event."""
    from torch._C._profiler import _EventType  # the typed event tree has no public alias

    results = getattr(profiler.profiler, "kineto_results", None)
    if results is None or not hasattr(results, "experimental_event_tree"):
        raise RuntimeError(
            f"torch {torch.__version__} no longer exposes the profiler's event tree "
            "(kineto_results.experimental_event_tree); update reid_core.utils.memory")
    events: list[tuple[int, int, int]] = []
    stack = list(results.experimental_event_tree())
    while stack:  # allocations sit anywhere in the op tree, under the op that made them
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            fields = event.extra_fields
            events.append((event.start_time_ns, fields.alloc_size, fields.total_allocated))
    return events


def _cpu_peak_bytes(fn: Callable[[], object]) -> int:
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as profiler:
        fn()
    events = sorted(_allocation_events(profiler))
    if not events:
        return 0
    # The running total counts only blocks allocated while memory profiling was on (the
    # allocator cannot size older blocks), hence the baseline from the first event.
    _, first_size, first_total = events[0]
    baseline = first_total - first_size
    return max(0, max(total for _, _, total in events) - baseline)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes of tensor memory that ``fn()`` adds on ``device`` (see the module docstring).

    ``fn`` runs once; its return value is dropped after the measurement (so a returned tensor
    counts, since it was alive at the end of ``fn``). Use ``torch.no_grad()`` inside ``fn`` to
    measure inference: under autograd the tensors saved for the backward pass count too.

    Raises:
        ValueError: ``device`` is neither cpu nor cuda.
        RuntimeError: the installed torch lacks the profiler API used on CPU.
    """
    device = _as_device(device)
    if device.type == "cuda":
        return _cuda_peak_bytes(fn, device)
    return _cpu_peak_bytes(fn)


def time_calls(fn: Callable[[], object], *, warmup: int = 1, repeats: int = 5,
               device: torch.device | str = "cpu") -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn()``, after ``warmup`` untimed calls.

    Returns every time (not a summary) so that the caller can report the minimum (least
    disturbed by other processes, the usual figure for a micro-benchmark) and the median. On
    CUDA the device is synchronised around each call, so queued kernels are counted.

    Raises:
        ValueError: ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats=} {warmup=}")
    device = torch.device(device)
    for _ in range(warmup):  # first calls pay for lazy init, allocator growth, kernel choice
        fn()
    times: list[float] = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return times
