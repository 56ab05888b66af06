"""Feature extraction for evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from reid_core.data.base import ImageItem
from reid_core.data.batch import CAMID, IMG, PID
from reid_core.data.image_dataset import ImageDataset, cache_decoded
from reid_core.models.output import ModelOutput
from reid_core.utils.device import DeviceSettings


@torch.no_grad()
def extract_features(
    model: nn.Module,
    items: Sequence[ImageItem] | Dataset,
    transform=None,
    *,
    device: DeviceSettings,
    batch_size: int = 128,
    flip: bool = False,
    workers: int = 0,
    features: Sequence[str] | None = None,
) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """Run ``model`` in eval mode over ``items``, in fp32 (never under ``device``'s AMP).

    Args:
        model: returns a :class:`reid_core.models.ModelOutput` (test features by name).
        items: ``(path, pid, camid)`` items, or a ready dataset (an :class:`ImageDataset`, or a
            ``Subset`` of one: a rank's shard of an evaluation).
        transform: the test transform (ignored when ``items`` is a dataset).
        flip: average each feature with that of the horizontally flipped image.
        features: the test features to keep, by name (``eval.features``); ``None`` = every
            feature the model's head declares.

    Returns:
        ``({name: (N, D)}`` float32 CPU tensors, in the order asked for, ``pids (N,)``,
        ``camids (N,)``).

    Raises:
        KeyError: a feature the model does not produce (lists the ones it does).
    """
    dataset = items if isinstance(items, Dataset) else ImageDataset(
        items, transform, cache=cache_decoded(len(items), workers))
    # An explicit generator keeps this loader from drawing on the global RNG (exact resume).
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        generator=torch.Generator().manual_seed(0),
                        pin_memory=device.is_cuda)
    was_training = model.training
    model.eval()
    feats: dict[str, list[torch.Tensor]] | None = (
        None if features is None else {name: [] for name in features})
    pids, camids = [], []
    for batch in loader:
        imgs = batch[IMG].to(device.device, non_blocking=True)
        if device.channels_last:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        # fp32 even when training uses AMP: every official code extracted its test features in
        # full precision, and bf16 would quantise them (8 bits of mantissa) before ranking.
        out = model(imgs)
        if flip:
            out_f = model(torch.flip(imgs, dims=[3]))
        if feats is None:  # every feature the head declares: the output holds exactly those
            feats = {name: [] for name in out.features}
        for key in feats:
            f = _feature(out, key).float()
            if flip:
                f = (f + _feature(out_f, key).float()) / 2
            feats[key].append(f.cpu())
        pids.append(batch[PID])
        camids.append(batch[CAMID])
    model.train(was_training)
    return ({k: torch.cat(v) for k, v in (feats or {}).items()},
            torch.cat(pids).numpy(), torch.cat(camids).numpy())


def _feature(out: ModelOutput, name: str) -> torch.Tensor:
    if name not in out.features:
        raise KeyError(f"the model has no test feature {name!r}; its features: "
                       f"{', '.join(out.features)}")
    return out.features[name]
