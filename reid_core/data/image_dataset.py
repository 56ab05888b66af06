"""A torch ``Dataset`` over ``(path, pid, camid)`` items."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from reid_core.data.base import ImageItem


#: Decoded images are kept in memory for splits up to this size (re-read every epoch).
CACHE_MAX_IMAGES = 30_000


def cache_decoded(num_items: int, workers: int) -> bool:
    """Whether an :class:`ImageDataset` should keep decoded images: only when loading happens in
    this process (a worker's cache would die with the worker every epoch) and the split is small."""
    return workers == 0 and num_items <= CACHE_MAX_IMAGES


class ImageDataset(Dataset):
    """Returns ``(image, pid, camid)``; ``image`` is what ``transform`` makes of the RGB PIL image.

    Decoded images are cached in memory when ``cache=True`` (the synthetic and test sets are
    small; decoding is otherwise a noticeable share of a CPU step).
    """

    def __init__(self, items: Sequence[ImageItem], transform: Callable | None = None,
                 cache: bool = False) -> None:
        self.items = list(items)
        self.transform = transform
        self._cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, index: int) -> Image.Image:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        path = self.items[index][0]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except OSError as e:
            raise OSError(f"cannot read image {path}: {e}") from e
        if self._cache is not None:
            self._cache[index] = img
        return img

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        _, pid, camid = self.items[index]
        img = self._load(index)
        if self.transform is not None:
            img = self.transform(img)
        return img, pid, camid
