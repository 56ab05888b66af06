"""A torch ``Dataset`` of sample dicts over ``(path, pid, camid)`` items, and strict image decoding.

A truncated or corrupt image (an interrupted extraction, a bad disk) must stop a run with a
message naming the file and the fix, not with a PIL traceback from inside a DataLoader worker
-- and must never be decoded half grey without a word: :func:`load_rgb` always decodes the
whole file and treats truncation as an error even when some imported library has set PIL's
``ImageFile.LOAD_TRUNCATED_IMAGES``.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from reid_core.data.base import DatasetError, ImageItem
from reid_core.data.batch import CAMID, IMG, KEYPOINTS, MASK, PID, VIEWS
from reid_core.data.keypoints import to_batch_keypoints, to_tv_keypoints
from reid_core.data.prepared import split_transform
from reid_core.data.sidecars import SidecarError, Sidecars

#: Decoded images are kept in memory for splits up to this size (re-read every epoch).
CACHE_MAX_IMAGES = 30_000
#: At most this many bytes of prepared images (``ImageDataset(cache_prepared=True)``) per
#: dataset; beyond it, images are prepared per sample (same result, no memory).
PREPARED_CACHE_MAX_BYTES = 1 << 30

#: What PIL raises on a bad file: OSError (truncated, UnidentifiedImageError), and, from some
#: plugins, SyntaxError / ValueError / EOFError / struct.error; DecompressionBombError on an
#: absurd size.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)

# Serialises the rare decodes that must switch LOAD_TRUNCATED_IMAGES off (a process global).
_STRICT_LOCK = threading.Lock()


class CorruptImageError(DatasetError):
    """An image of the dataset cannot be decoded (missing, truncated, corrupt, not an image).

    ``path`` is the file. The message names it and the fix: re-extract the dataset, and run
    ``python -m reid_core datasets --name X --check`` to list every bad file at once. A single
    positional message keeps it re-raisable across DataLoader worker processes.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


def cache_decoded(num_items: int, workers: int) -> bool:
    """Whether an :class:`ImageDataset` should keep decoded images: only when loading happens in
    this process (a worker's cache would die with the worker every epoch) and the split is small."""
    return workers == 0 and num_items <= CACHE_MAX_IMAGES


def image_problem(path: str | Path) -> str | None:
    """What is wrong with the image file at ``path`` (None if it decodes completely).

    The whole file is decoded (``load()``), so truncation is found; used by the dataset check.
    """
    try:
        _decode(path).close()
    except FileNotFoundError:
        return "file not found"
    except IsADirectoryError:
        return "is a directory, not an image file"
    except _DECODE_ERRORS as e:
        return _describe(e)
    return None


def load_rgb(path: str | Path, dataset: str | None = None) -> Image.Image:
    """Decode the whole image at ``path`` as RGB.

    Raises:
        CorruptImageError: the file is missing, truncated, corrupt or not an image; the
            message names the file, says what to do and (given ``dataset``) the exact check
            command.
    """
    try:
        with _decode(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        problem = "file not found"
    except _DECODE_ERRORS as e:
        problem = _describe(e)
    raise CorruptImageError(corrupt_image_message(str(path), problem, dataset), str(path))


def corrupt_image_message(path: str, problem: str, dataset: str | None = None) -> str:
    """One line: the file, what is wrong, and what to do about it."""
    name = dataset or "<dataset>"
    return (f"cannot decode image {path} ({problem}): the dataset is damaged -- re-extract it "
            f"(synthetic datasets: delete the cache directory to regenerate it); "
            f"`python -m reid_core datasets --name {name} --check` lists every bad file")


def _decode(path: str | Path) -> Image.Image:
    """``Image.open`` + ``load()`` (full decode), truncation being an error whatever
    ``LOAD_TRUNCATED_IMAGES`` says. The caller closes the image."""
    with _truncation_is_an_error():
        im = Image.open(path)
        try:
            im.load()
        except BaseException:
            im.close()
            raise
    return im


@contextmanager
def _truncation_is_an_error() -> Iterator[None]:
    """Make PIL raise on truncated files for the duration; free when the flag is already off
    (the default), else switched under a lock so that concurrent threads restore it right."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _STRICT_LOCK:
        saved, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _describe(e: BaseException) -> str:
    """Short text of a decoding error: PIL's message, marked as truncation / non-image."""
    text = str(e).strip() or type(e).__name__
    if isinstance(e, Image.UnidentifiedImageError):
        return "not an image file PIL can read"
    if "truncated" in text.lower():
        return f"truncated: {text}"
    return text


class ImageDataset(Dataset):
    """One sample dict per ``(path, pid, camid)`` item (keys: :mod:`reid_core.data.batch`).

    A sample is ``{IMG: image, PID: pid, CAMID: camid}``, plus ``MASK`` / ``KEYPOINTS`` when
    ``sidecars`` provides them and ``VIEWS`` when ``views`` are asked for; ``default_collate``
    stacks samples into a batch of the shapes :mod:`reid_core.data.batch` documents.

    The image and its annotations are transformed together, as one dict: ``transform`` gets
    ``{IMG: RGB PIL image}`` and, with sidecars, ``MASK: tv_tensors.Mask (1, H, W)`` uint8 and
    ``KEYPOINTS: tv_tensors.KeyPoints (17, 2)`` with their ``KeypointVisibility``; it must
    accept such a dict (every torchvision v2 transform does, e.g. those of
    :mod:`reid_core.data.transforms`). Without ``transform`` ``IMG`` stays the PIL image.

    Decoded images (and loaded annotations) are cached in memory when ``cache=True`` (the
    synthetic and test sets are small; decoding is otherwise a noticeable share of a CPU step).
    A file that does not decode raises :class:`CorruptImageError` (``dataset``: the registry
    name quoted in its message).

    With ``cache_prepared=True`` the deterministic head of ``transform`` -- its resizes of the
    original image and the conversion to a normalised tensor -- is also kept per image, and
    only the random rest runs per sample (:mod:`reid_core.data.prepared`): the same tensors,
    bit for bit, from the same random draws, in a fraction of the time. It applies to
    image-only samples (no ``sidecars``) of a transform that :func:`~reid_core.data.prepared.
    split_transform` can split (every recipe of :mod:`reid_core.data.transforms`); otherwise,
    and beyond :data:`PREPARED_CACHE_MAX_BYTES`, samples are made as without it.

    Args:
        sidecars: load these per-image annotations (:class:`~reid_core.data.sidecars.Sidecars`,
            e.g. ``MarketSidecars(data.root)``); ``None`` = the image only.
        views: ``{name: (h, w)}``: also return the transformed image resized to each size
            (bilinear, antialiased, after augmentation and normalisation: the *same* flip, crop
            and erasing at another resolution) as ``sample[VIEWS][name]`` ``(3, h, w)``. Masks
            and keypoints stay at the main resolution.
    """

    def __init__(self, items: Sequence[ImageItem], transform: Callable | None = None,
                 cache: bool = False, dataset: str | None = None, *,
                 sidecars: Sidecars | None = None,
                 views: Mapping[str, tuple[int, int]] | None = None,
                 cache_prepared: bool = False) -> None:
        self.items = list(items)
        self.transform = transform
        self.dataset = dataset
        self.sidecars = sidecars
        self.views = _check_views(views, transform)
        self._cache: dict[int, Image.Image] | None = {} if cache else None
        self._sidecar_cache: dict[int, dict[str, np.ndarray]] | None = {} if cache else None
        self._split = (split_transform(transform)
                       if cache_prepared and sidecars is None else None)
        self._prepared: dict[tuple[int, Any], torch.Tensor] = {}
        self._prepared_bytes = 0

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, index: int) -> Image.Image:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        img = load_rgb(self.items[index][0], self.dataset)
        if self._cache is not None:
            self._cache[index] = img
        return img

    def _annotations(self, index: int) -> dict[str, np.ndarray]:
        if self._sidecar_cache is not None and index in self._sidecar_cache:
            return self._sidecar_cache[index]
        assert self.sidecars is not None
        ann = self.sidecars.load(self.items[index][0])
        if self._sidecar_cache is not None:
            self._sidecar_cache[index] = ann
        return ann

    def _prepared_image(self, index: int, key: Any) -> torch.Tensor:
        """``self._split.prepare(key, image)``, from the cache while it has room."""
        prepared = self._prepared.get((index, key))
        if prepared is None:
            prepared = self._split.prepare(key, self._load(index))
            size = prepared.untyped_storage().nbytes()
            if self._prepared_bytes + size <= PREPARED_CACHE_MAX_BYTES:
                self._prepared[(index, key)] = prepared
                self._prepared_bytes += size
        return prepared

    @property
    def prepares(self) -> bool:
        """Whether samples come from cached prepared images (``cache_prepared``)."""
        return self._split is not None

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, pid, camid = self.items[index]
        if self._split is not None:
            img = self._split(lambda key: self._prepared_image(index, key))
            return self._output({IMG: img}, pid, camid)
        img = self._load(index)
        sample: dict[str, Any] = {IMG: img}
        if self.sidecars is not None:
            sample.update(_tv_annotations(self._annotations(index), path, img.height, img.width))
        if self.transform is not None:
            sample = self.transform(sample)
        return self._output(sample, pid, camid)

    def _output(self, sample: dict[str, Any], pid: int, camid: int) -> dict[str, Any]:
        img = sample[IMG]
        # Plain tensors out: a batch is a dict of tensors, not of tv_tensors (same values).
        out: dict[str, Any] = {IMG: img.as_subclass(torch.Tensor)
                               if isinstance(img, torch.Tensor) else img, PID: pid, CAMID: camid}
        if MASK in sample:
            out[MASK] = sample[MASK].as_subclass(torch.Tensor).float()
        if KEYPOINTS in sample:
            out[KEYPOINTS] = to_batch_keypoints(sample[KEYPOINTS], sample[_VISIBILITY])
        if self.views:
            out[VIEWS] = {name: TF.resize(out[IMG], list(size), antialias=True)
                          for name, size in self.views.items()}
        return out


#: Where a sample being transformed keeps its keypoints' visibility (joined into
#: ``KEYPOINTS`` afterwards, never part of a batch).
_VISIBILITY = "keypoint_visibility"


def _tv_annotations(ann: dict[str, np.ndarray], path: str, height: int, width: int
                    ) -> dict[str, Any]:
    """Loaded annotations -> the tv_tensors a transform moves with the image."""
    out: dict[str, Any] = {}
    if MASK in ann:
        mask = np.asarray(ann[MASK])
        if mask.shape != (height, width):
            raise SidecarError(f"the person mask of {path} is {mask.shape[1]}x{mask.shape[0]} "
                               f"(WxH), the image {width}x{height}")
        # A copy: transforms may write into the mask, the cache must keep the original.
        out[MASK] = tv_tensors.Mask(torch.tensor(mask, dtype=torch.uint8)[None])
    if KEYPOINTS in ann:
        out[KEYPOINTS], out[_VISIBILITY] = to_tv_keypoints(ann[KEYPOINTS], (height, width))
    return out


def _check_views(views: Mapping[str, tuple[int, int]] | None, transform: Callable | None
                 ) -> dict[str, tuple[int, int]]:
    if not views:
        return {}
    if transform is None:
        raise ValueError("ImageDataset: views need a transform that makes the image a tensor")
    out = {}
    for name, size in views.items():
        hw = tuple(size)
        if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
            raise ValueError(f"ImageDataset views[{name!r}]: expected (height, width) in "
                             f"positive pixels, got {size!r}")
        out[str(name)] = (hw[0], hw[1])
    return out
