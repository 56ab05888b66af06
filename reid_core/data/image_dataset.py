"""A torch ``Dataset`` over ``(path, pid, camid)`` items, and strict image decoding.

A truncated or corrupt image (an interrupted extraction, a bad disk) must stop a run with a
message naming the file and the fix, not with a PIL traceback from inside a DataLoader worker
-- and must never be decoded half grey without a word: :func:`load_rgb` always decodes the
whole file and treats truncation as an error even when some imported library has set PIL's
``ImageFile.LOAD_TRUNCATED_IMAGES``.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image, ImageFile
from torch.utils.data import Dataset

from reid_core.data.base import DatasetError, ImageItem

#: Decoded images are kept in memory for splits up to this size (re-read every epoch).
CACHE_MAX_IMAGES = 30_000

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
    """Returns ``(image, pid, camid)``; ``image`` is what ``transform`` makes of the RGB PIL image.

    Decoded images are cached in memory when ``cache=True`` (the synthetic and test sets are
    small; decoding is otherwise a noticeable share of a CPU step). A file that does not
    decode raises :class:`CorruptImageError` (``dataset``: the registry name quoted in its
    message).
    """

    def __init__(self, items: Sequence[ImageItem], transform: Callable | None = None,
                 cache: bool = False, dataset: str | None = None) -> None:
        self.items = list(items)
        self.transform = transform
        self.dataset = dataset
        self._cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, index: int) -> Image.Image:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        img = load_rgb(self.items[index][0], self.dataset)
        if self._cache is not None:
            self._cache[index] = img
        return img

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        _, pid, camid = self.items[index]
        img = self._load(index)
        if self.transform is not None:
            img = self.transform(img)
        return img, pid, camid
