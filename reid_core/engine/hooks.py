"""The trainer's hooks: everything a run does around the loop (:mod:`reid_core.engine.trainer`).

The application layer passes them in this order, which matters at ``after_epoch``:
:class:`EpochSwitch`, :class:`NonFiniteGuard`, :class:`StepCallback`, :class:`BatchNormAverage`
(several processes: the ranks' BN statistics averaged), :class:`Evaluation` (writes
``stats["eval"]``), :class:`ConsoleLog` (prints the epoch, with its evaluation; rank 0 only),
:class:`Checkpointer` (saves the epoch, with its evaluation and log; rank 0 writes). Add a hook
by subclassing :class:`~reid_core.engine.trainer.Hook`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from reid_core.engine.checkpoint import (
    CheckpointWriter, RunClock, check_world_size, checkpoint_state, read_checkpoint)
from reid_core.engine.trainer import Hook, NonFiniteLossError, StepHook, TrainState
from reid_core.models.weights import WeightMismatchError, load_state_strict
from reid_core.utils import distributed
from reid_core.utils.io import OutputWriteError
from reid_core.utils.seed import capture_rng_state, restore_rng_state

Evaluator = Callable[[nn.Module], dict[str, Any]]

#: Redraws of the progress bar per second (:class:`ConsoleLog`).
PROGRESS_REFRESH_PER_S = 2


class EpochSwitch(Hook):
    """Tell the model the epoch before it runs (PCB-RPP switches to refined part pooling at a
    set epoch). It depends on the epoch number alone, so a resumed run switches at the same
    epoch as an unbroken one. Models without epoch-dependent structure ignore it."""

    def before_epoch(self, state: TrainState) -> None:
        set_epoch = getattr(state.model, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(state.epoch)


class NonFiniteGuard(Hook):
    """Stop on a NaN / infinite loss before it reaches the weights, naming the last good
    checkpoint."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint

    def after_loss(self, state: TrainState) -> None:
        if math.isfinite(state.loss):
            return
        # Every finished epoch is checkpointed (the last one may still be being written: it is
        # on disk when the run has stopped, see Checkpointer).
        last = (f"the last good checkpoint is {self.checkpoint} (after epoch {state.epoch})"
                if state.epoch > 0 or self.checkpoint.is_file()
                else "no checkpoint was written yet")
        raise NonFiniteLossError(
            f"loss is {state.loss} at epoch {state.epoch + 1}, iteration {state.iteration + 1} "
            f"(parts: {state.parts}); stopping. {last}.")


class StepCallback(Hook):
    """Call ``fn(epoch, iteration, loss)`` after every optimiser step."""

    def __init__(self, fn: StepHook) -> None:
        self.fn = fn

    def after_step(self, state: TrainState) -> None:
        self.fn(state.epoch, state.iteration, state.loss)


class BatchNormAverage(Hook):
    """Several processes with per-rank BatchNorm: after every epoch, before the evaluation and
    the checkpoint, each BN layer's running mean and variance become their mean over the ranks
    (:func:`reid_core.utils.distributed.average_batchnorm_stats`, timm's ``distribute_bn``),
    so every rank evaluates the same model and ``last.pt`` / ``final.pt`` hold the statistics
    the record was evaluated with. Training itself never reads running statistics."""

    def after_epoch(self, state: TrainState) -> None:
        distributed.average_batchnorm_stats(state.model)


class Evaluation(Hook):
    """``stats["eval"]`` = ``evaluate(model)`` every ``every`` epochs (0 = never during
    training; the last epoch is left to the final evaluation), else ``None``."""

    def __init__(self, evaluate: Evaluator | None, every: int) -> None:
        self.evaluate, self.every = evaluate, every

    def after_epoch(self, state: TrainState) -> None:
        done = state.epoch + 1
        due = self.every > 0 and done % self.every == 0 and done < state.epochs
        state.stats["eval"] = (self.evaluate(state.model)
                               if self.evaluate is not None and due else None)


class ConsoleLog(Hook):
    """A progress bar per epoch and one line per finished epoch (loss, every objective term,
    accuracy, lr, time, throughput, evaluation).

    rich's refresh thread redraws the bar :data:`PROGRESS_REFRESH_PER_S` times a second
    (rich's default is 10): a redraw is about 0.75 ms of Python holding the GIL, time the
    training step waits for on a CPU run."""

    def __init__(self, console: Console, terms: Sequence[str]) -> None:
        self.console, self.terms = console, list(terms)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                                 TimeRemainingColumn(), console=console, transient=True,
                                 refresh_per_second=PROGRESS_REFRESH_PER_S)
        self.task = None

    def before_train(self, state: TrainState) -> None:
        self.progress.start()

    def before_epoch(self, state: TrainState) -> None:
        self.task = self.progress.add_task(f"epoch {state.epoch + 1}/{state.epochs}",
                                           total=state.batches_per_epoch, status="")

    def after_step(self, state: TrainState) -> None:
        self.progress.update(self.task, advance=1, status=f"loss {state.loss:.3f}")

    def after_epoch(self, state: TrainState) -> None:
        self.progress.remove_task(self.task)
        self.console.print(epoch_line(state.stats, state.epochs, self.terms))

    def after_train(self, state: TrainState) -> None:
        self.progress.stop()


def epoch_line(stats: dict[str, Any], epochs: int, terms: Sequence[str]) -> str:
    parts = [f"epoch {stats['epoch']:>3}/{epochs}", f"loss {stats['loss']:.4f}"]
    parts += [f"{k} {stats[k]:.4f}" for k in terms if k in stats]
    parts += [f"acc {stats['train_acc']:.3f}", f"lr {stats['lr']:.2e}",
              f"{stats['time_s']:.1f}s", f"{stats['images_per_s']} img/s"]
    if stats.get("eval"):
        parts.append("eval " + " ".join(f"{k} {v:.1f}" for k, v in _flat(stats["eval"]).items()))
    return "  ".join(parts)


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for feat, vals in metrics.items():
        for k in ("R1", "mAP"):
            if k in vals:
                out[f"{feat}/{k}"] = vals[k]
    return out


class Checkpointer(Hook):
    """Exact resume from, and a checkpoint after every epoch to, ``path`` (atomically).

    The checkpoint is a snapshot taken at the end of the epoch and written in the background
    while the next epoch trains (:class:`~reid_core.engine.checkpoint.CheckpointWriter`: on
    this project's CPU, writing and fsync-ing ResNet-18 + Adam took 0.2-0.9 s per epoch of ~5 s);
    ``after_train`` waits until the last one is on disk. A run killed before a write finished
    resumes from the one before it, as exactly.

    With ``resume`` and an existing file, ``before_train`` restores model, optimizer,
    scheduler, gradient scaler, RNG states, epoch and history, and continues the checkpoint's
    attempt on ``clock`` (:meth:`RunClock.continue_from`), so the caller's clock describes the
    whole run. ``config_hash`` must match the checkpoint's; a format-1 checkpoint's history is
    renamed by ``migrate_history``.

    Several processes: every rank restores the checkpoint (its own RNG states from
    ``rng_ranks``; a checkpoint of another world size is refused), every rank's RNG states are
    gathered after each epoch, and rank 0 alone writes.
    """

    def __init__(self, path: Path, config_hash: str, clock: RunClock, *, resume: bool,
                 console: Console | None = None,
                 migrate_history: Callable[[list], list] | None = None) -> None:
        self.path, self.config_hash, self.clock = path, config_hash, clock
        self.resume, self.console = resume, console or Console()
        #: Renames a format-1 checkpoint's history into today's names.
        self.migrate_history = migrate_history
        self._writer: CheckpointWriter | None = None
        #: Epochs finished in the checkpoint this run resumed from (for error messages).
        self._resumed_epoch: int | None = None

    def before_train(self, state: TrainState) -> None:
        if distributed.is_main():
            self._writer = CheckpointWriter(self.path)
        if not (self.resume and self.path.is_file()):
            return
        ckpt = read_checkpoint(self.path, expected_hash=self.config_hash)
        world = distributed.world_size()
        check_world_size(self.path, ckpt, world)
        load_state_strict(state.model, ckpt["model"], str(self.path))
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.scheduler.load_state_dict(ckpt["scheduler"])
        state.scaler.load_state_dict(ckpt["scaler"])
        restore_rng_state(ckpt["rng_ranks"][distributed.rank()] if world > 1 else ckpt["rng"])
        state.epoch, state.history = ckpt["epoch"], ckpt["history"]
        if ckpt["format_version"] == 1 and self.migrate_history is not None:
            state.history = self.migrate_history(state.history)
        self.clock.continue_from(ckpt)
        if not 0 <= state.epoch <= state.epochs or len(state.history) != state.epoch:
            raise WeightMismatchError(
                f"{self.path} says it is after epoch {state.epoch} with {len(state.history)} "
                f"epochs of history, which does not fit a run of {state.epochs} epochs; "
                f"pass --force to start over")
        self._resumed_epoch = state.epoch
        self.console.print(f"[bold]resumed[/] from {self.path} after epoch {state.epoch}")

    def after_epoch(self, state: TrainState) -> None:
        done = state.epoch + 1
        world = distributed.world_size()
        # A collective: every rank takes part, rank 0 writes what all of them sent.
        rng_ranks = distributed.all_gather_object(capture_rng_state()) if world > 1 else None
        if not distributed.is_main():
            return
        assert self._writer is not None, "before_train starts the writer"
        self._surface_errors(lambda: self._writer.submit(lambda: checkpoint_state(
            model=state.model, optimizer=state.optimizer, scheduler=state.scheduler,
            scaler=state.scaler, epoch=done, config_hash=self.config_hash,
            history=state.history, run=self.clock.state(done), snapshot=True,
            world_size=world, rng_ranks=rng_ranks)))

    def after_train(self, state: TrainState) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            self._surface_errors(writer.close, writer)

    def _surface_errors(self, step: Callable[[], None],
                        writer: CheckpointWriter | None = None) -> None:
        """Run ``step``; a write error (disk full, read-only) says what survives."""
        writer = writer or self._writer
        try:
            step()
        except OutputWriteError as e:
            good = writer.written_epoch if writer is not None else None
            good = good if good is not None else self._resumed_epoch
            last = (f"the last good checkpoint (after epoch {good}) is {self.path}; "
                    f"free space and re-run with --resume" if self.path.is_file()
                    else "no checkpoint was written yet")
            raise OutputWriteError(e.errno, f"{e}; {last}", e.filename) from None
