"""Dataset containers, the dataset registry, and the errors loaders raise.

Every loader returns a :class:`ReIDData`: three lists of ``(path, pid, camid)`` items.

Conventions shared by all loaders (and relied upon by the evaluation code):

* ``path`` is an absolute path string to an image file.
* ``camid`` is **0-based** (Market ``c1`` -> 0).
* ``train`` pids are relabelled to ``0..N-1`` in ascending order of the original id.
* ``query`` / ``gallery`` keep the original ids; junk images (id ``-1``) are dropped at load
  time (equivalent to the per-query junk rule of the Market-1501 protocol); distractors
  (id ``0``) are kept in the gallery as negatives.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reid_core.config import ConfigError
from reid_core.data.names import RECORD_DATASETS
from reid_core.utils.registry import Registry

ImageItem = tuple[str, int, int]  # (absolute image path, person id, 0-based camera id)


class DatasetError(ValueError):
    """Base class for dataset problems the user can fix (layout, file names, list files)."""


class DatasetLayoutError(DatasetError, FileNotFoundError):
    """The dataset root is missing or does not have the expected directory layout."""


class MalformedNameError(DatasetError):
    """An image file name (or list-file line) does not follow the dataset's naming scheme."""


@dataclass
class ReIDData:
    """A re-ID dataset split into train / query / gallery.

    Attributes:
        name: registry name, e.g. ``"market1501"``.
        root: the directory the split directories were read from.
        train: ``(path, pid, camid)`` with pids relabelled ``0..num_train_pids-1``.
        query: ``(path, pid, camid)`` with original pids.
        gallery: ``(path, pid, camid)`` with original pids; id 0 = distractor.
        extras: loader-specific metadata (e.g. the original train pid of each label).
    """

    name: str
    root: Path
    train: list[ImageItem]
    query: list[ImageItem]
    gallery: list[ImageItem]
    extras: dict = field(default_factory=dict)
    _identity: dict | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_train_pids(self) -> int:
        return len({pid for _, pid, _ in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({cam for _, _, cam in self.train})

    def identity(self) -> dict[str, str]:
        """What a run ran on, for its run id: the dataset name, the evaluation protocol, and a
        fingerprint of the data itself, so that the same config on another dataset tree (a
        re-extracted copy, another version, a different split file) is a different run.

        The fingerprint is ``extras["fingerprint"]`` when the loader knows one (a synthetic
        preset: the digest of its generator parameters, so it does not change with the JPEG
        encoder); otherwise the SHA-256 of every split's (path relative to the root, pid,
        camid, file size) -- one ``stat`` per image, no decoding.
        """
        if self._identity is None:  # one stat per image: computed once per loaded dataset
            fingerprint = self.extras.get("fingerprint") or self.content_fingerprint()
            self._identity = {"dataset": self.name,
                              "protocol": str(self.extras.get("protocol", "market")),
                              "fingerprint": fingerprint}
        return dict(self._identity)

    def content_fingerprint(self) -> str:
        h = hashlib.sha256()
        root = str(self.root)
        for split in ("train", "query", "gallery"):
            h.update(f"[{split}]".encode())
            for path, pid, cam in getattr(self, split):
                rel = os.path.relpath(path, root) if path.startswith(root) else path
                try:
                    size = os.stat(path).st_size
                except OSError:
                    size = -1  # unreadable: the preflight check reports it by name
                h.update(f"{rel}\t{pid}\t{cam}\t{size}\n".encode())
        return "sha256:" + h.hexdigest()[:16]

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts per split: images, identities, cameras."""
        out = {}
        for split in ("train", "query", "gallery"):
            items = getattr(self, split)
            out[split] = {
                "images": len(items),
                "ids": len({p for _, p, _ in items}),
                "cameras": len({c for _, _, c in items}),
            }
        return out


def relabel_train(items: Sequence[ImageItem]) -> tuple[list[ImageItem], dict[int, int]]:
    """Map train pids to ``0..N-1`` in ascending order of the original pid.

    Returns the relabelled items and the ``{original_pid: label}`` mapping.
    """
    mapping = {pid: label for label, pid in enumerate(sorted({p for _, p, _ in items}))}
    return [(path, mapping[pid], cam) for path, pid, cam in items], mapping


def layout_error(name: str, root: Path, expected: str, problem: str) -> DatasetLayoutError:
    """Build a :class:`DatasetLayoutError` whose message shows the expected layout."""
    return DatasetLayoutError(
        f"{name}: {problem}\n  dataset root given: {root}\n  expected layout:\n{expected.rstrip()}"
    )


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

DatasetLoader = Callable[[Path], ReIDData]
DATASETS: Registry[DatasetLoader] = Registry("dataset")


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator: register ``fn(root: Path) -> ReIDData`` under ``name``.

    ``name`` must be declared in :mod:`reid_core.data.names` (with the paper-table column its
    records fill): the loaders, the paper tables and the reports then spell it the same way.
    """
    declared = RECORD_DATASETS.names()
    if name not in declared or not RECORD_DATASETS.get(name).has_loader:
        raise KeyError(f"dataset {name!r} is not declared in reid_core/data/names.py; add it "
                       f"there with the paper-table column its records fill (declared: "
                       f"{', '.join(declared)})")
    return DATASETS.register(name)


def available_datasets() -> list[str]:
    return DATASETS.names()


def build_dataset(name: str, root: str | Path, split: int = 0) -> ReIDData:
    """Load dataset ``name`` from ``root``.

    Args:
        name: one of :func:`available_datasets` (e.g. ``"market1501"``, ``"synthetic"``).
        root: directory holding the dataset (see each loader's docstring for accepted layouts).
        split: ``data.split``, for datasets with several standard splits (CUHK03 classic:
            0-19; their loaders take a ``split`` keyword). Any other dataset has one split, 0.

    Raises:
        KeyError: unknown ``name`` (the message lists the valid names).
        DatasetLayoutError: ``root`` is missing or laid out differently (the message shows
            the expected layout).
        MalformedNameError: a file name does not follow the dataset's scheme (names the file).
    """
    loader = DATASETS.get(name)
    if "split" in inspect.signature(loader).parameters:
        return loader(Path(root).expanduser(), split=split)
    if split != 0:
        raise ConfigError(f"data.split: dataset {name!r} has a single split (0), got {split}")
    return loader(Path(root).expanduser())
