"""Seeding, determinism, and capture/restore of every RNG a run uses.

Checkpoints store RNG state as plain tensors and lists so that they load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_deterministic() -> None:
    """Ask torch for deterministic kernels.

    On CPU this makes a run bit-reproducible for a fixed seed. On CUDA, cuDNN autotuning is
    switched off too; a few CUDA ops have no deterministic kernel, so there we only warn.
    """
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())


def capture_rng_state() -> dict[str, Any]:
    """All global RNG states, in a ``weights_only``-loadable form."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator for one epoch's sampling, derived from (seed, epoch).

    Deriving the sampler's randomness from the epoch number (instead of carrying one generator
    through the run) makes an epoch's batches independent of how the run got there, which is
    what makes resume-after-interruption exact.
    """
    return torch.Generator().manual_seed(seed * 100_003 + epoch)
