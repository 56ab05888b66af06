"""Feature extraction for evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from reid_core.data.base import ImageItem
from reid_core.data.image_dataset import ImageDataset, cache_decoded
from reid_core.utils.device import DeviceSettings


@torch.no_grad()
def extract_features(
    model: nn.Module,
    items: Sequence[ImageItem] | ImageDataset,
    transform=None,
    *,
    device: DeviceSettings,
    batch_size: int = 128,
    flip: bool = False,
    workers: int = 0,
) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """Run ``model`` in eval mode over ``items``.

    Args:
        model: returns a :class:`reid_core.models.ReIDOutput` (``before_bn``, ``after_bn``).
        items: ``(path, pid, camid)`` items, or a ready :class:`ImageDataset`.
        transform: the test transform (ignored when ``items`` is a dataset).
        flip: average each feature with that of the horizontally flipped image.

    Returns:
        ``({"before_bn": (N, D), "after_bn": (N, D)}`` float32 CPU tensors, ``pids (N,)``,
        ``camids (N,)``).
    """
    dataset = items if isinstance(items, ImageDataset) else ImageDataset(
        items, transform, cache=cache_decoded(len(items), workers))
    # An explicit generator keeps this loader from drawing on the global RNG (exact resume).
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        generator=torch.Generator().manual_seed(0),
                        pin_memory=device.is_cuda)
    was_training = model.training
    model.eval()
    feats: dict[str, list[torch.Tensor]] = {"before_bn": [], "after_bn": []}
    pids, camids = [], []
    for imgs, pid, cam in loader:
        imgs = imgs.to(device.device, non_blocking=True)
        if device.channels_last:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        with device.autocast():
            out = model(imgs)
            if flip:
                out_f = model(torch.flip(imgs, dims=[3]))
        for key in feats:
            f = getattr(out, key).float()
            if flip:
                f = (f + getattr(out_f, key).float()) / 2
            feats[key].append(f.cpu())
        pids.append(pid)
        camids.append(cam)
    model.train(was_training)
    return ({k: torch.cat(v) for k, v in feats.items()},
            torch.cat(pids).numpy(), torch.cat(camids).numpy())
