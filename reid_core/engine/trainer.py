"""The training loop, read top to bottom; everything around it is a hook.

``fit`` receives its collaborators (model, per-epoch loader, objective, optimizer, scheduler,
gradient scaler); the application layer (``reid_core.app.training``) builds them from a config.
What differs between runs happens in hooks (:mod:`reid_core.engine.hooks`), called at fixed
points with the :class:`TrainState`:

* ``before_train``   restore a checkpoint (exact resume), start the progress display;
* ``before_epoch``   epoch-dependent structure (PCB-RPP switches its pooling at a set epoch);
* ``after_loss``     the non-finite-loss guard (before the step, so no NaN reaches the weights);
* ``after_step``     observers of every step (the regression check's first losses, progress);
* ``after_epoch``    evaluation, the epoch's log line, the checkpoint -- in the order given;
* ``after_train``    always called, also when training stops on an error.

Training accuracy comes from the head (``model.head.accuracy``), the loss from the objective.

**Several processes (DDP).** ``train_forward`` (a :class:`reid_core.utils.distributed.DDPForward`)
runs the training forward, so that ``backward`` averages the gradients over the ranks; ``model``
stays the plain module that hooks, checkpoints and the evaluation see. Each step's loss and
terms are averaged over the ranks before ``after_loss`` (so the NaN guard stops every rank at
the same step, and the history is the global batch's), accuracy and throughput are summed over
the ranks. In one process these reductions return their input: the loop is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from reid_core.data.batch import PID
from reid_core.losses import Objective
from reid_core.utils import distributed
from reid_core.utils.device import DeviceSettings

#: Called after every optimiser step with (epoch, iteration, loss), both 0-based: for observers
#: that need more than the per-epoch means (the regression check's first steps).
StepHook = Callable[[int, int, float], None]

#: Builds the batches of one (0-based) epoch; the P x K sampler is a function of (seed, epoch),
#: so a resumed run sees the same batches (``reid_core.engine.loader.EpochLoader``).
EpochBatches = Callable[[int], Iterable[Mapping[str, Any]]]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped, the last good checkpoint is kept."""


@dataclass
class TrainState:
    """What the loop and its hooks share. ``epoch`` is 0-based while an epoch runs; after
    ``before_train`` it is the first epoch to run (> 0 when resuming)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epochs: int
    epoch: int = 0
    iteration: int = 0  #: 0-based step within the epoch
    batches_per_epoch: int = 0
    loss: float = float("nan")  #: the last step's total loss
    parts: dict[str, float] = field(default_factory=dict)  #: the last step's terms
    history: list[dict[str, Any]] = field(default_factory=list)  #: one dict per finished epoch
    stats: dict[str, Any] = field(default_factory=dict)  #: the epoch just finished
    #: What runs the training forward: ``model`` itself, or its DDP wrapper (several processes).
    train_forward: Callable[..., Any] | None = None


class Hook:
    """Base class: override the points you need (each gets the :class:`TrainState`)."""

    def before_train(self, state: TrainState) -> None: ...
    def before_epoch(self, state: TrainState) -> None: ...
    def after_loss(self, state: TrainState) -> None: ...
    def after_step(self, state: TrainState) -> None: ...
    def after_epoch(self, state: TrainState) -> None: ...
    def after_train(self, state: TrainState) -> None: ...


def fit(
    model: nn.Module,
    loader: EpochBatches,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    device: DeviceSettings,
    epochs: int,
    scaler: torch.amp.GradScaler | None = None,
    hooks: Sequence[Hook] = (),
    train_forward: Callable[..., Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` (already on ``device``) until ``epochs`` epochs are done; return the
    per-epoch history (``epoch``, ``loss``, one mean per objective term, ``train_acc``,
    ``time_s``, ``images_per_s``, ``lr``, and what ``after_epoch`` hooks add, e.g. ``eval``).

    ``train_forward``: the module that runs the training forward when it is not ``model``
    itself (its DDP wrapper: see the module docstring)."""
    state = TrainState(model, optimizer, scheduler, scaler or device.grad_scaler(), epochs,
                       train_forward=train_forward)

    def call(point: str) -> None:
        for hook in hooks:
            getattr(hook, point)(state)

    try:
        call("before_train")
        for epoch in range(state.epoch, epochs):
            state.epoch = epoch
            batches = loader(epoch)
            state.batches_per_epoch = len(batches)
            call("before_epoch")
            stats = _train_one_epoch(state, batches, objective, device, call)
            stats["lr"] = scheduler.get_last_lr()[0]
            scheduler.step()
            state.history.append(stats)
            state.stats = stats
            call("after_epoch")
    finally:
        call("after_train")
    return state.history


def _train_one_epoch(state: TrainState, batches: Iterable[Mapping[str, Any]],
                     objective: Objective, device: DeviceSettings,
                     call: Callable[[str], None]) -> dict[str, Any]:
    model, optimizer, scaler = state.model, state.optimizer, state.scaler
    forward = state.train_forward or model
    model.train()
    t0 = time.perf_counter()
    sums: dict[str, float] = {}
    correct = seen = 0
    for it, batch in enumerate(batches):
        batch = device.to_device(batch)
        with device.autocast():
            out = forward(batch)
            loss, parts = objective(out, batch)
        state.iteration = it
        state.loss, state.parts = _global_mean(float(loss.detach()), parts)
        call("after_loss")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        call("after_step")
        for k, v in {"loss": state.loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        correct += model.head.accuracy(out, batch[PID])
        seen += len(batch[PID])
    if distributed.world_size() > 1:
        correct, seen = distributed.all_reduce_sum([correct, seen])
    n = max(state.batches_per_epoch, 1)
    elapsed = time.perf_counter() - t0
    return {"epoch": state.epoch + 1, **{k: v / n for k, v in sums.items()},
            "train_acc": correct / max(seen, 1), "time_s": round(elapsed, 2),
            "images_per_s": round(seen / elapsed, 1) if elapsed > 0 else None}


def _global_mean(loss: float, parts: dict[str, float]) -> tuple[float, dict[str, float]]:
    """The step's loss and terms averaged over the ranks (as they are in one process)."""
    if distributed.world_size() == 1:
        return loss, parts
    mean = distributed.all_reduce_mean([loss, *parts.values()])
    return mean[0], dict(zip(parts, mean[1:]))
