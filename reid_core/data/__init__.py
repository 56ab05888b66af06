"""Data layer: dataset loaders (real layouts + embedded synthetic), sampling, transforms."""

from pathlib import Path

from reid_core.data.base import (
    DatasetError,
    DatasetLayoutError,
    ImageItem,
    MalformedNameError,
    ReIDData,
    available_datasets,
    build_dataset,
    register_dataset,
)

# Importing the loader modules registers them.
from reid_core.data import market1501, dukemtmc, cuhk03np, msmt17, synthetic  # noqa: E402,F401
from reid_core.data import cuhk03_mat, partial  # noqa: E402,F401



def resolve_dataset_root(name: str, root: str | Path | None) -> Path:
    """``root`` if given; for the synthetic datasets, default to their cache directory.

    Raises:
        ValueError: a real dataset without a root (the message says how to give one).
    """
    if root is not None:
        return Path(root)
    if name.startswith("synthetic"):
        return synthetic.default_cache_root()
    raise ValueError(f"dataset {name!r} needs a root: pass --data-root DIR "
                     f"or set data.root in the config")


__all__ = [
    "DatasetError",
    "DatasetLayoutError",
    "ImageItem",
    "MalformedNameError",
    "ReIDData",
    "available_datasets",
    "build_dataset",
    "register_dataset",
    "resolve_dataset_root",
]
