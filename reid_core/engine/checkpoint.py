"""Training checkpoints: written atomically, read with ``weights_only=True``, loaded strictly.

A checkpoint holds everything needed to continue a run exactly: model, optimizer, scheduler,
gradient scaler, every RNG state, the epoch just finished, the evaluations so far, and the
run's *attempt*: an id drawn when training starts from scratch, kept across resumes, and
written into the run record. Two files per run id::

    <out>/checkpoints/<run_id>/last.pt    the attempt being trained (written every epoch)
    <out>/checkpoints/<run_id>/final.pt   the finished attempt whose record is in <out>/runs

A finished attempt's ``last.pt`` becomes ``final.pt`` after its record is written, so a
``--force`` re-run that is interrupted leaves the earlier finished weights (and record) intact,
and :func:`finished_checkpoint` never hands a half-trained model out under a finished name.

**Several processes (DDP).** Rank 0 writes the checkpoint (the ranks' models and optimizers are
identical: the gradients are averaged, BN statistics averaged before it is written). It records
the world size (``distributed.world_size``; a checkpoint without it was written by one
process) and, for exact resume, every rank's RNG states (``rng_ranks``, in rank order; ``rng``
stays rank 0's). A run resumes only with the world size it was written with
(:func:`check_world_size`): the per-rank batch, hence BN and triplet mining, depend on it.
"""

from __future__ import annotations

import copy
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_core.models.weights import (
    UnreadableWeightsError, WeightMismatchError, load_state_strict, load_torch_file)
from reid_core.utils.io import atomic_save
from reid_core.utils.seed import capture_rng_state

FORMAT_VERSION = 2
#: Formats :func:`read_checkpoint` reads. Format 1 (before issue 11) named the history's loss
#: terms and PCB's evaluated features in config format 1; a run resumed from one renames them
#: (``reid_core.config.migrate.migrate_history``, applied by the resuming hook).
READABLE_FORMATS = (1, 2)
LAST, FINAL = "last.pt", "final.pt"


def new_attempt_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class RunClock:
    """Identity and wall time of one training attempt across its resumed segments.

    ``elapsed_before_s`` is the wall time of the earlier segments (from the checkpoint) and
    ``segments`` lists them, so a resumed run's record reports the time of all of them.
    """

    attempt: str
    elapsed_before_s: float = 0.0
    segments: list[dict[str, Any]] = field(default_factory=list)
    from_epoch: int = 0  #: epochs finished when this segment started
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def fresh(cls) -> RunClock:
        return cls(attempt=new_attempt_id())

    def continue_from(self, ckpt: dict[str, Any]) -> None:
        """Take over the attempt, earlier segments and epoch of the checkpoint being resumed
        (a checkpoint from before attempts existed keeps this clock's new attempt id)."""
        run = ckpt.get("run") or {}
        self.attempt = run.get("attempt") or self.attempt
        self.elapsed_before_s = float(run.get("elapsed_s", 0.0))
        self.segments = list(run.get("segments", []))
        self.from_epoch = int(ckpt["epoch"])

    def elapsed(self) -> float:
        """Wall time of all segments so far, this one included."""
        return self.elapsed_before_s + (time.perf_counter() - self.started)

    def state(self, epoch: int) -> dict[str, Any]:
        """What the checkpoint stores after ``epoch``: attempt, total time, segments so far."""
        current = {"from_epoch": self.from_epoch, "to_epoch": epoch,
                   "wall_time_s": round(time.perf_counter() - self.started, 2)}
        return {"attempt": self.attempt, "elapsed_s": round(self.elapsed(), 2),
                "segments": [*self.segments, current]}


def checkpoint_state(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    epoch: int,
    config_hash: str,
    history: list[dict[str, Any]],
    run: dict[str, Any] | None = None,
    snapshot: bool = False,
    world_size: int = 1,
    rng_ranks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a checkpoint after ``epoch`` (1-based count of finished epochs) holds; ``run`` is
    :meth:`RunClock.state` (attempt id and wall time so far). With ``snapshot`` every tensor is
    copied to host memory (and everything else deep-copied), so that training may go on while
    it is written (:class:`CheckpointWriter`). ``world_size`` and ``rng_ranks`` (every rank's
    :func:`~reid_core.utils.seed.capture_rng_state`, several processes only): see the module
    docstring."""
    state = {
        "format_version": FORMAT_VERSION,
        "config_hash": config_hash,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "history": history,
        "run": run or {},
        "distributed": {"world_size": world_size},
    }
    if rng_ranks is not None:
        state["rng_ranks"] = rng_ranks
    if not snapshot:
        return state
    # torch.load(map_location="cpu") reads every checkpoint to host memory anyway.
    memo = {id(t): t.detach().to("cpu", copy=True) for t in _tensors(state)}
    return copy.deepcopy(state, memo)


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write :func:`checkpoint_state` to ``path`` atomically (fsync'ed, then renamed)."""
    atomic_save(path, lambda f: torch.save(state, f))


class CheckpointWriter:
    """Checkpoints written in a background thread while training goes on.

    :meth:`submit` waits for the previous write, then snapshots the state (a copy in host
    memory: ~3x the parameters' size with Adam) and writes it in the background; :meth:`wait`
    blocks until the last write is on disk. A write's error is raised by the next
    :meth:`submit` or :meth:`wait`. Between a snapshot and its write, the previous checkpoint
    is the one on disk (each is written atomically), so a run killed meanwhile resumes, exactly,
    from one epoch earlier.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future[None] | None = None
        #: Epochs finished at the pending write's snapshot / at the last write on disk.
        self.pending_epoch: int | None = None
        self.written_epoch: int | None = None

    def submit(self, make_state: Callable[[], dict[str, Any]]) -> None:
        """Wait for the previous write, then snapshot (``make_state()``, a
        :func:`checkpoint_state` with ``snapshot=True``) and write it in the background."""
        self.wait()
        state = make_state()
        self.pending_epoch = int(state["epoch"])
        self._pending = self._pool.submit(write_checkpoint, self.path, state)

    def wait(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        pending.result()  # re-raises the write's error here
        self.written_epoch = self.pending_epoch

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


def read_checkpoint(path: Path, expected_hash: str | None = None,
                    mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`write_checkpoint` (safe unpickling only); ``mmap``
    maps the tensors instead of reading them (to look at epoch and attempt only).

    Raises:
        UnreadableWeightsError: truncated, corrupt or not a torch file (the message says to
            pass ``--force`` to start over).
        WeightMismatchError: not a reid_core checkpoint, or written by a different config.
    """
    ckpt = load_torch_file(path, "checkpoint",
                           hint="; pass --force to discard it and train from scratch", mmap=mmap)
    if not isinstance(ckpt, dict) or ckpt.get("format_version") not in READABLE_FORMATS:
        raise WeightMismatchError(f"{path} is not a reid_core training checkpoint "
                                  f"(format_version {FORMAT_VERSION})")
    if expected_hash is not None and ckpt["config_hash"] != expected_hash:
        raise WeightMismatchError(
            f"{path} was written by config {ckpt['config_hash']}, not {expected_hash}: "
            f"refusing to resume a different configuration")
    return ckpt


def world_size_of(ckpt: dict[str, Any]) -> int:
    """How many processes wrote ``ckpt`` (1 for checkpoints from before DDP)."""
    return int((ckpt.get("distributed") or {}).get("world_size", 1))


def processes(n: int) -> str:
    return f"{n} process{'es' if n != 1 else ''}"


def world_size_mismatch(path: Path, saved: int, now: int) -> str:
    """The message of a resume with another world size than the checkpoint's."""
    relaunch = ("python -m reid_core train ... --resume" if saved == 1 else
                f"torchrun --nproc-per-node {saved} -m reid_core train ... --resume")
    return (f"{path} was written by a run of {processes(saved)} (world size {saved}); this run "
            f"has {processes(now)} (world size {now}). A run resumes only with its own world "
            f"size (the per-rank batch changes BN and triplet mining, hence the results): "
            f"continue it with `{relaunch}`, or train a {processes(now)} run without --resume "
            f"(another run id)")


def check_world_size(path: Path, ckpt: dict[str, Any], now: int) -> None:
    """Raises WeightMismatchError when ``ckpt`` was written with another world size."""
    saved = world_size_of(ckpt)
    if saved != now:
        raise WeightMismatchError(world_size_mismatch(path, saved, now))


def attempt_of(ckpt: dict[str, Any]) -> str | None:
    return (ckpt.get("run") or {}).get("attempt")


def finalize(directory: Path) -> None:
    """Make a finished attempt's ``last.pt`` the run's ``final.pt`` (atomic rename)."""
    last = directory / LAST
    if last.is_file():
        os.replace(last, directory / FINAL)


class StaleCheckpointError(WeightMismatchError):
    """The run's checkpoint holds other weights than those its record was evaluated with."""


def finished_checkpoint(directory: Path, record: dict[str, Any]) -> Path:
    """The checkpoint file holding the weights ``record`` was evaluated with.

    ``final.pt`` normally; ``last.pt`` if the run finished and its record was written but the
    rename did not happen (interrupted in between). Records written before attempts existed
    have no ``attempt``: their ``last.pt`` is accepted when it is at the last epoch.

    Raises:
        FileNotFoundError: neither file exists.
        StaleCheckpointError: the only checkpoint belongs to another attempt (an unfinished
            ``--force`` re-run) or stops before the last epoch.
    """
    attempt = record.get("attempt")
    epochs = int(record["config"]["optim"]["epochs"])
    problems = []
    for name in (FINAL, LAST):
        path = directory / name
        if not path.is_file():
            continue
        ckpt = read_checkpoint(path, expected_hash=record.get("config_hash"), mmap=True)
        same = attempt is None or attempt_of(ckpt) == attempt
        if same and int(ckpt["epoch"]) == epochs:
            return path
        problems.append(f"{path} is {'another attempt' if not same else 'a run'} at epoch "
                        f"{ckpt['epoch']} of {epochs}")
    if not problems:
        raise FileNotFoundError(f"no checkpoint of run {record.get('run_id')} in {directory} "
                                f"(expected {FINAL})")
    raise StaleCheckpointError(
        f"run {record.get('run_id')}: no checkpoint holds the weights its record was evaluated "
        f"with ({'; '.join(problems)}: an unfinished re-run started after the record was "
        f"written). Finish it (re-run with --resume) to evaluate the new weights, or re-train "
        f"with --force.")


def load_model_weights(model: nn.Module, path: Path) -> None:
    """Load only the model weights of a checkpoint (strictly: a mismatch lists the keys)."""
    ckpt = read_checkpoint(path)
    load_state_strict(model, ckpt["model"], str(path))


__all__ = ["FINAL", "LAST", "CheckpointWriter", "RunClock", "StaleCheckpointError",
           "UnreadableWeightsError", "attempt_of", "check_world_size", "checkpoint_state",
           "finalize", "finished_checkpoint", "load_model_weights", "processes",
           "read_checkpoint", "world_size_mismatch", "world_size_of", "write_checkpoint"]
