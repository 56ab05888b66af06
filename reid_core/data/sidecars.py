"""Per-image annotations stored beside a dataset's images ("sidecars"): person masks and
COCO-17 keypoints, loaded for :class:`~reid_core.data.image_dataset.ImageDataset` only when
it is given a :class:`Sidecars` source.

A source implements :class:`Sidecars` (``keys`` it provides, ``load(path)``); a real dataset
with masks or keypoints (e.g. from a parser / pose estimator run offline) adds one for its own
file layout. :class:`MarketSidecars` reads the layout the synthetic dataset writes
(:mod:`reid_core.data.synthetic`), which suits any Market-style dataset::

    <dataset>/masks/<split dir>/<image stem>.png    uint8, 255 (> 127) = person
    <dataset>/keypoints/<split dir>.json            {"format": "coco17", "images":
                                                     {file name: [[x, y, v] x 17]}}

Keypoint files hold continuous image coordinates in which pixel ``(row, col)`` covers
``[col, col+1) x [row, row+1)`` (the renderer's convention); they are loaded in torchvision's
convention (integer = pixel centre, :mod:`reid_core.data.keypoints`) by subtracting 0.5.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from reid_core.data.base import DatasetError
from reid_core.data.batch import KEYPOINTS, MASK
from reid_core.data.keypoints import NUM_KEYPOINTS

#: The ``format`` of a keypoint file: COCO-17 keypoints (``reid_core.data.keypoints``).
KEYPOINT_FORMAT = "coco17"

#: The keys a source may provide.
SIDECAR_KEYS: tuple[str, ...] = (MASK, KEYPOINTS)


class SidecarError(DatasetError):
    """A sidecar file is missing or malformed (the message names it and the image)."""


class Sidecars(Protocol):
    """A source of per-image annotations.

    Attributes:
        keys: what :meth:`load` returns, a subset of :data:`SIDECAR_KEYS`.
    """

    keys: tuple[str, ...]

    def load(self, path: str) -> dict[str, np.ndarray]:
        """The annotations of the image at ``path``.

        Returns:
            ``{MASK: (H, W) uint8 in {0, 1}, KEYPOINTS: (17, 3) float32 (x, y, v)}`` restricted
            to :attr:`keys`; ``(H, W)`` is the image's size, keypoints are in torchvision's
            pixel convention with COCO visibility.

        Raises:
            SidecarError: the annotation of ``path`` is missing or malformed.
        """
        ...


class MarketSidecars:
    """Masks and keypoints in the synthetic dataset's layout (see the module docstring).

    Args:
        root: the dataset directory holding the split directories (``ReIDData.root``).
        keys: which annotations to load (default both).
    """

    MASK_DIR = "masks"
    KEYPOINT_DIR = "keypoints"
    #: Subtracted from file coordinates: pixel-area convention -> pixel-centre convention.
    PIXEL_CENTRE = 0.5

    def __init__(self, root: str | Path, keys: Sequence[str] = SIDECAR_KEYS) -> None:
        unknown = [k for k in keys if k not in SIDECAR_KEYS]
        if unknown or not keys:
            raise ValueError(f"sidecar keys must be a non-empty subset of {SIDECAR_KEYS}, "
                             f"got {tuple(keys)}")
        self.root = Path(root)
        self.keys = tuple(keys)
        self._keypoints: dict[str, dict[str, list]] = {}  # split dir -> file name -> points

    def load(self, path: str) -> dict[str, np.ndarray]:
        split, name = self._locate(path)
        out: dict[str, np.ndarray] = {}
        if MASK in self.keys:
            out[MASK] = self._mask(path, split, name)
        if KEYPOINTS in self.keys:
            out[KEYPOINTS] = self._points(path, split, name)
        return out

    def _locate(self, path: str) -> tuple[str, str]:
        """(split directory relative to the root, file name) of an image path."""
        p = Path(path)
        try:
            rel = p.parent.relative_to(self.root)
        except ValueError:
            raise SidecarError(f"image {path} is not inside the dataset directory {self.root} "
                               f"whose sidecars were asked for") from None
        return rel.as_posix(), p.name

    # The layout, for the reader below and the writer (reid_core.data.synthetic).

    @classmethod
    def mask_file(cls, root: Path, split: str, name: str) -> Path:
        """``<root>/masks/<split>/<image stem>.png``: the mask of image ``name`` in ``split``."""
        return Path(root) / cls.MASK_DIR / split / (Path(name).stem + ".png")

    @classmethod
    def keypoint_file(cls, root: Path, split: str) -> Path:
        """``<root>/keypoints/<split>.json``: the keypoints of every image of ``split``."""
        return Path(root) / cls.KEYPOINT_DIR / f"{split}.json"

    def _mask(self, path: str, split: str, name: str) -> np.ndarray:
        file = self.mask_file(self.root, split, name)
        try:
            with Image.open(file) as im:
                mask = np.asarray(im.convert("L"))
        except (OSError, ValueError) as e:
            raise SidecarError(f"no readable person mask for image {path}: expected {file} "
                               f"(uint8 PNG, 255 = person) ({e})") from None
        return (mask > 127).astype(np.uint8)

    def _points(self, path: str, split: str, name: str) -> np.ndarray:
        if split not in self._keypoints:
            self._keypoints[split] = self._read_keypoint_file(split)
        try:
            pts = np.asarray(self._keypoints[split][name], dtype=np.float32)
        except KeyError:
            raise SidecarError(f"no keypoints for image {path} in "
                               f"{self.keypoint_file(self.root, split)}") from None
        if pts.shape != (NUM_KEYPOINTS, 3):
            raise SidecarError(f"keypoints of image {path}: expected {NUM_KEYPOINTS} x [x, y, v], "
                               f"got shape {pts.shape}")
        pts[:, :2] -= self.PIXEL_CENTRE
        return pts

    def _read_keypoint_file(self, split: str) -> dict[str, list]:
        file = self.keypoint_file(self.root, split)
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise SidecarError(f"cannot read keypoints file {file} ({e})") from None
        if not isinstance(data, dict) or data.get("format") != KEYPOINT_FORMAT or not isinstance(
                data.get("images"), dict):
            raise SidecarError(f"{file}: expected {{\"format\": \"coco17\", \"images\": "
                               f"{{file name: [[x, y, v] x 17]}}}}")
        return data["images"]


__all__ = ["MarketSidecars", "SIDECAR_KEYS", "SidecarError", "Sidecars"]
