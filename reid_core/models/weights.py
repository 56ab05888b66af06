"""Strict weight loading: a mismatch is an error that lists what did not match.

Re-ID toolboxes that skip mismatched keys with a printed warning have shipped models that
silently evaluated ~10 mAP lower (fast-reid#396). Here every key must match in name and shape;
the only keys one may drop are named explicitly by the caller (e.g. ImageNet's ``fc.*``).
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn


class WeightMismatchError(RuntimeError):
    """A state dict does not match the model it is loaded into."""


class UnreadableWeightsError(ValueError):
    """A weights or checkpoint file that torch cannot read: truncated, corrupt, not a torch
    file, or holding pickled objects that ``weights_only=True`` refuses to run."""


def load_torch_file(path: str | Path, what: str = "weights file", hint: str = "",
                    mmap: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one clear error.

    torch reports a truncated file as a zip-archive ``RuntimeError``, a text file as an
    ``UnpicklingError`` about a "load key", and an unsafe pickle as a long "Weights only load
    failed" essay; a user gets one line naming the file, the problem and ``hint``. With
    ``mmap`` the tensors are mapped, not read: cheap when only the small entries are needed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "invalid load key" not in text and ("weights only" in text.lower()
                                                or "weights_only" in text):
            problem = ("holds pickled Python objects besides tensors, which weights_only=True "
                       "refuses to execute; if you trust it, load it yourself and re-save its "
                       "state_dict() with torch.save")
        else:
            problem = "is not a torch file (or is corrupt)"
        raise UnreadableWeightsError(f"{what} {path} {problem}{hint}") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 -- the unpickler fails in many ways on foreign bytes
        # (RuntimeError, EOFError, BadZipFile, even KeyError on a text file's "memo" index).
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnreadableWeightsError(f"{what} {path} cannot be read: truncated or corrupt "
                                     f"({first}){hint}") from None


def load_state_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    drop_prefixes: Iterable[str] = (),
) -> None:
    """Load ``state`` into ``module``; every key must match by name and shape.

    Args:
        module: the target.
        state: a state dict.
        source: where ``state`` came from (file name), for the error message.
        drop_prefixes: key prefixes deliberately not loaded (ignored in ``state`` and in
            ``module``), e.g. ``("fc.",)`` for an ImageNet classifier the model replaces.

    A module whose keys were renamed since older checkpoints were written defines
    ``upgrade_state_dict(state) -> state`` (e.g. :class:`reid_core.models.ReIDModel`); it is
    applied first, so those checkpoints load as they are.
    """
    upgrade = getattr(module, "upgrade_state_dict", None)
    if upgrade is not None:
        state = upgrade(state)
    drop = tuple(drop_prefixes)
    kept = lambda k: not (drop and k.startswith(drop))  # noqa: E731
    state = {k: v for k, v in state.items() if kept(k)}
    own = {k: v for k, v in module.state_dict().items() if kept(k)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shape:
        lines = [f"weights in {source} do not match the model ({type(module).__name__}):"]
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", shape)):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... (+{len(keys) - 12})" if len(keys) > 12 else "")
                lines.append(f"  {title} ({len(keys)}): {shown}")
        raise WeightMismatchError("\n".join(lines))
    result = module.load_state_dict(state, strict=not drop)
    # Every key was checked above; only the deliberately dropped ones may stay unloaded.
    assert all(not kept(k) for k in result.missing_keys) and not result.unexpected_keys


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict with ``weights_only=True``; unwrap ``{"state_dict": ...}`` / ``{"model": ...}``."""
    obj = load_torch_file(path, "weights file")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightMismatchError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def state_dict_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a state dict's contents: every tensor's name, dtype, shape and bytes, in
    name order. Two files with the same weights have the same digest whatever else they hold
    (a checkpoint's meta records when and by which commit it was made)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
