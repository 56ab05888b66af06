"""Data layer: dataset loaders (real layouts + embedded synthetic), sampling, transforms."""

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

__all__ = [
    "DatasetError",
    "DatasetLayoutError",
    "ImageItem",
    "MalformedNameError",
    "ReIDData",
    "available_datasets",
    "build_dataset",
    "register_dataset",
]
