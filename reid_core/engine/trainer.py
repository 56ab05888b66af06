"""The training loop: P x K batches, AMP on CUDA, a checkpoint after every epoch, exact resume.

Read ``fit`` top to bottom: restore (if resuming) -> for each epoch: tell the model the epoch
(PCB-RPP switches its pooling at a set epoch), build this epoch's sampler from (seed, epoch),
train, step the lr, evaluate if due, checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader

from reid_core.config import RunConfig
from reid_core.data.base import ImageItem
from reid_core.data.image_dataset import ImageDataset, cache_decoded
from reid_core.data.sampler import RandomIdentitySampler
from reid_core.data.transforms import build_train_transform
from reid_core.engine.checkpoint import RunClock, read_checkpoint, save_checkpoint
from reid_core.engine.optim import build_optimizer, build_scheduler
from reid_core.losses import ReIDLoss
from reid_core.models.weights import WeightMismatchError, load_state_strict
from reid_core.utils.device import DeviceSettings
from reid_core.utils.io import OutputWriteError
from reid_core.utils.seed import epoch_generator, restore_rng_state

Evaluator = Callable[[nn.Module], dict[str, Any]]
#: Called after every optimiser step with (epoch, iteration, loss), both 0-based: a hook for
#: observers that need more than the per-epoch means (the regression check's first steps).
StepHook = Callable[[int, int, float], None]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped, the last good checkpoint is kept."""


def fit(
    model: nn.Module,
    train_items: Sequence[ImageItem],
    cfg: RunConfig,
    device: DeviceSettings,
    checkpoint: Path,
    *,
    resume: bool = False,
    evaluate: Evaluator | None = None,
    console: Console | None = None,
    on_step: StepHook | None = None,
    clock: RunClock | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``cfg.optim.epochs`` epochs; return the per-epoch history.

    Args:
        checkpoint: file written (atomically) after every epoch; read when ``resume``.
        resume: continue from ``checkpoint`` if it exists (model, optimizer, scheduler,
            gradient scaler, RNG states, epoch and history are restored).
        evaluate: called with the model every ``cfg.eval.every`` epochs (if > 0); its result
            is stored in the history.
        on_step: called after every optimiser step (see :data:`StepHook`).
        clock: the attempt id and wall time stored in every checkpoint (default: a fresh
            attempt); when resuming, it continues the checkpoint's attempt
            (:meth:`RunClock.continue_from`), so the caller's clock describes the whole run.
    """
    clock = clock or RunClock.fresh()
    console = console or Console()
    model.to(device.device)
    if device.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    scaler = device.grad_scaler()
    criterion = ReIDLoss(cfg.loss)
    history: list[dict[str, Any]] = []
    start_epoch = 0

    if resume and checkpoint.is_file():
        ckpt = read_checkpoint(checkpoint, expected_hash=cfg.config_hash())
        load_state_strict(model, ckpt["model"], str(checkpoint))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        restore_rng_state(ckpt["rng"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
        clock.continue_from(ckpt)
        if not 0 <= start_epoch <= cfg.optim.epochs or len(history) != start_epoch:
            raise WeightMismatchError(
                f"{checkpoint} says it is after epoch {start_epoch} with {len(history)} "
                f"epochs of history, which does not fit a run of {cfg.optim.epochs} epochs; "
                f"pass --force to start over")
        console.print(f"[bold]resumed[/] from {checkpoint} after epoch {start_epoch}")

    dataset = ImageDataset(train_items, build_train_transform(cfg.data),
                           cache=cache_decoded(len(train_items), cfg.data.workers),
                           dataset=cfg.data.dataset)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                        console=console, transient=True)
    with progress:
        for epoch in range(start_epoch, cfg.optim.epochs):
            # Models whose structure changes during training (PCB-RPP) depend on the epoch
            # number alone, so a resumed run switches at the same epoch as an unbroken one.
            if hasattr(model, "set_epoch"):
                model.set_epoch(epoch)
            gen = epoch_generator(cfg.seed, epoch)
            sampler = RandomIdentitySampler(train_items, cfg.data.batch_size,
                                            cfg.data.num_instances, generator=gen)
            loader = DataLoader(dataset, batch_size=cfg.data.batch_size, sampler=sampler,
                                num_workers=cfg.data.workers, drop_last=True, generator=gen,
                                pin_memory=device.is_cuda)
            task = progress.add_task(f"epoch {epoch + 1}/{cfg.optim.epochs}",
                                     total=len(loader), status="")
            stats = _train_one_epoch(model, loader, optimizer, scaler, criterion, device,
                                     progress, task, epoch, checkpoint, on_step)
            progress.remove_task(task)
            stats["lr"] = scheduler.get_last_lr()[0]
            scheduler.step()
            every = cfg.eval.every
            due = every > 0 and (epoch + 1) % every == 0 and epoch + 1 < cfg.optim.epochs
            stats["eval"] = evaluate(model) if (evaluate is not None and due) else None
            history.append(stats)
            console.print(_epoch_line(stats, cfg.optim.epochs))
            try:
                save_checkpoint(checkpoint, model=model, optimizer=optimizer,
                                scheduler=scheduler, scaler=scaler, epoch=epoch + 1,
                                config_hash=cfg.config_hash(), history=history,
                                run=clock.state(epoch + 1))
            except OutputWriteError as e:  # disk full, read-only: say what survives
                last = (f"the last good checkpoint (after epoch {epoch}) is {checkpoint}; free "
                        f"space and re-run with --resume" if checkpoint.is_file()
                        else "no checkpoint was written yet")
                raise OutputWriteError(e.errno, f"{e}; {last}", e.filename) from None
    return history


def _train_one_epoch(model, loader, optimizer, scaler, criterion, device, progress, task,
                     epoch, checkpoint, on_step) -> dict[str, Any]:
    model.train()
    t0 = time.perf_counter()
    sums: dict[str, float] = {}
    correct = seen = 0
    for it, (imgs, pids, _) in enumerate(loader):
        imgs = imgs.to(device.device, non_blocking=True)
        pids = pids.to(device.device, non_blocking=True)
        if device.channels_last:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        with device.autocast():
            out = model(imgs)
            loss, parts = criterion(out, pids)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            last = (f"the last good checkpoint is {checkpoint} (after epoch {epoch})"
                    if checkpoint.is_file() else "no checkpoint was written yet")
            raise NonFiniteLossError(
                f"loss is {loss_value} at epoch {epoch + 1}, iteration {it + 1} "
                f"(parts: {parts}); stopping. {last}.")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if on_step is not None:
            on_step(epoch, it, loss_value)
        for k, v in {"loss": loss_value, **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        if out.logits is not None:
            correct += int((out.logits.argmax(1) == pids).sum())
        elif out.part_logits:  # PCB: the mean over parts of each part classifier's hits
            hits = sum(int((lg.argmax(1) == pids).sum()) for lg in out.part_logits)
            correct += hits / len(out.part_logits)
        seen += len(pids)
        progress.update(task, advance=1, status=f"loss {loss_value:.3f}")
    n = max(len(loader), 1)
    elapsed = time.perf_counter() - t0
    return {"epoch": epoch + 1, **{k: v / n for k, v in sums.items()},
            "train_acc": correct / max(seen, 1), "time_s": round(elapsed, 2),
            "images_per_s": round(seen / elapsed, 1) if elapsed > 0 else None}


def _epoch_line(stats: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {stats['epoch']:>3}/{epochs}", f"loss {stats['loss']:.4f}"]
    parts += [f"{k} {stats[k]:.4f}" for k in ("ce", "triplet", "aux") if k in stats]
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
