"""Data layer: dataset loaders (real layouts + embedded synthetic), sampling, transforms."""

from pathlib import Path

from reid_core.data.base import (
    DATASETS,
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
    DATASETS.get(name)  # an unknown name is a KeyError listing the valid ones, root or not
    if root is not None:
        path = Path(root).expanduser()
        if path.exists() and not path.is_dir():
            raise DatasetLayoutError(f"dataset root {path} is a file, not a directory")
        return path
    if name.startswith("synthetic"):
        cache = synthetic.default_cache_root()
        if cache.exists() and not cache.is_dir():
            raise DatasetLayoutError(f"synthetic cache {cache} is a file, not a directory "
                                     f"(set $REID_BENCH_CACHE to a directory)")
        return cache
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
