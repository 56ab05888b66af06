"""Construction of a training run from its config: the one place that builds the trainer's
collaborators (dataset, per-epoch loader, objective, optimizer, scheduler, hooks) and calls
:func:`reid_core.engine.trainer.fit`.

Under torchrun (several processes, :mod:`reid_core.utils.distributed`) the same function builds
the DDP run: SyncBatchNorm if ``model.sync_bn`` (CUDA), the DDP training forward, each rank's
share of every global batch, the BN averaging hook (per-rank BN), per-rank augmentation seeds,
and the console log on rank 0 only. The config checks that make this valid come first
(:func:`reid_core.app.ddp.check_distributed`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from reid_core.app.ddp import bn_mode
from reid_core.config import ConfigError, RunConfig
from reid_core.config.migrate import migrate_history
from reid_core.data.base import ImageItem
from reid_core.data.image_dataset import ImageDataset, cache_decoded
from reid_core.data.sidecars import MarketSidecars
from reid_core.data.transforms import build_train_transform
from reid_core.engine.checkpoint import RunClock
from reid_core.engine.hooks import (
    BatchNormAverage, Checkpointer, ConsoleLog, EpochSwitch, Evaluation, Evaluator,
    NonFiniteGuard, StepCallback)
from reid_core.engine.loader import EpochLoader
from reid_core.engine.optim import build_optimizer, build_scheduler
from reid_core.engine.trainer import Hook, StepHook, fit
from reid_core.losses import build_objective
from reid_core.utils import distributed
from reid_core.utils.device import DeviceSettings
from reid_core.utils.seed import seed_everything


def train(
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
    extra_hooks: Sequence[Hook] = (),
    sidecar_root: Path | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` on ``train_items`` for ``cfg.optim.epochs`` epochs; return the history.

    Args:
        checkpoint: written (atomically) after every epoch; read when ``resume``.
        resume: continue from ``checkpoint`` if it exists (everything is restored, exactly).
        evaluate: called with the model every ``cfg.eval.every`` epochs (if > 0); its result
            is stored in the history under ``eval``.
        on_step: called after every optimiser step with (epoch, iteration, loss).
        clock: the attempt id and wall time stored in every checkpoint (default: a fresh
            attempt); when resuming it continues the checkpoint's attempt.
        extra_hooks: more hooks, run after the evaluation and before the log and checkpoint.
        sidecar_root: the dataset directory whose sidecar files hold ``data.annotations``.
    """
    console = console or Console()
    clock = clock or RunClock.fresh()
    world, rank = distributed.world_size(), distributed.rank()
    bn = bn_mode(cfg, world)
    model.to(device.device)
    if device.channels_last:
        model.to(memory_format=torch.channels_last)
    if bn == "sync_bn":
        distributed.convert_sync_batchnorm(model)
    objective = build_objective(cfg.loss, model)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    dataset = training_dataset(train_items, cfg, sidecar_root)
    loader = EpochLoader(dataset, train_items, batch_size=cfg.data.batch_size,
                         num_instances=cfg.data.num_instances, seed=cfg.seed,
                         workers=cfg.data.workers, pin_memory=device.is_cuda,
                         sampler=cfg.data.sampler, world_size=world, rank=rank)
    # DDP broadcasts rank 0's weights when it wraps the model; from here on each rank draws
    # its own augmentations (a resumed run restores every rank's RNG from the checkpoint).
    train_forward = None
    if world > 1:
        train_forward = distributed.DDPForward(model, device)
        seed_everything(distributed.rank_seed(cfg.seed, rank))
    model_section = dataclasses.asdict(cfg.model)
    hooks: list[Hook] = [EpochSwitch(), NonFiniteGuard(checkpoint)]
    if on_step is not None:
        hooks.append(StepCallback(on_step))
    if bn == "per_rank_bn_averaged":
        hooks.append(BatchNormAverage())
    hooks += [Evaluation(evaluate, cfg.eval.every), *extra_hooks]
    if distributed.is_main():
        hooks.append(ConsoleLog(console, objective.names))
    hooks.append(Checkpointer(checkpoint, cfg.config_hash(), clock, resume=resume,
                              console=console,
                              migrate_history=lambda h: migrate_history(h, model_section)))
    return fit(model, loader, objective, optimizer, scheduler, device=device,
               epochs=cfg.optim.epochs, scaler=device.grad_scaler(), hooks=hooks,
               train_forward=train_forward)


def training_dataset(items: Sequence[ImageItem], cfg: RunConfig,
                     sidecar_root: Path | None = None) -> ImageDataset:
    """The training images with ``cfg.data``'s augmentation, annotations and extra views.

    Raises:
        ConfigError: ``data.annotations`` are asked for without a dataset directory.
        SidecarError: the first image's annotations cannot be read (checked here, before
            any training, with the file named).
    """
    sidecars = None
    if cfg.data.annotations:
        if sidecar_root is None:
            raise ConfigError("data.annotations: the training data has no directory to read "
                              "sidecar files from")
        sidecars = MarketSidecars(sidecar_root, cfg.data.annotations)
        if items:
            sidecars.load(items[0][0])
    views = {name: (h, w) for name, (h, w) in cfg.data.views.items()} or None
    cache = cache_decoded(len(items), cfg.data.workers)
    # cache_prepared: the transform's deterministic head once per image, the same samples
    # bit for bit (reid_core.data.prepared); image-only samples, in this process only.
    return ImageDataset(items, build_train_transform(cfg.data), cache=cache,
                        dataset=cfg.data.dataset, sidecars=sidecars, views=views,
                        cache_prepared=cache)
