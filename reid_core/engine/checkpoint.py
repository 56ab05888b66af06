"""Training checkpoints: written atomically, read with ``weights_only=True``, loaded strictly.

A checkpoint holds everything needed to continue a run exactly: model, optimizer, scheduler,
gradient scaler, every RNG state, the epoch just finished, and the evaluations so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_core.models.weights import WeightMismatchError, load_state_strict
from reid_core.utils.io import atomic_save
from reid_core.utils.seed import capture_rng_state

FORMAT_VERSION = 1


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    epoch: int,
    config_hash: str,
    history: list[dict[str, Any]],
) -> None:
    """Write the state after ``epoch`` (1-based count of finished epochs) to ``path``."""
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
    }
    atomic_save(path, lambda f: torch.save(state, f))


def read_checkpoint(path: Path, expected_hash: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (safe unpickling only).

    Raises :class:`WeightMismatchError` when it belongs to a different config.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        raise WeightMismatchError(f"{path} is not a reid_core training checkpoint "
                                  f"(format_version {FORMAT_VERSION})")
    if expected_hash is not None and ckpt["config_hash"] != expected_hash:
        raise WeightMismatchError(
            f"{path} was written by config {ckpt['config_hash']}, not {expected_hash}: "
            f"refusing to resume a different configuration")
    return ckpt


def load_model_weights(model: nn.Module, path: Path) -> None:
    """Load only the model weights of a checkpoint (strictly: a mismatch lists the keys)."""
    ckpt = read_checkpoint(path)
    load_state_strict(model, ckpt["model"], str(path))
