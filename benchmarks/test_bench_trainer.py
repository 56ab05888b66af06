"""The data side of a training step: one P x K batch (32 samples of the RGA recipe at 64 x 32,
collated) from a warm cache, with the transform split into its cached deterministic head and
its random rest (``cache_prepared=True``, what training uses) and run whole by torchvision.

Measures, never asserts timings: ``python -m pytest benchmarks/test_bench_trainer.py
--benchmark-only``. The whole trainer next to a bare torchvision step is
``benchmarks/trainer_speed.py``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.data import default_collate

from reid_core.config import DataConfig
from reid_core.data import build_dataset, resolve_dataset_root
from reid_core.data.image_dataset import ImageDataset
from reid_core.data.transforms import build_train_transform

BATCH = 32


@pytest.fixture(scope="module")
def items():
    data = build_dataset("synthetic-small", resolve_dataset_root("synthetic-small", None))
    return data.train


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "torchvision"])
def test_training_batch_samples(benchmark, items, prepared):
    cfg = dataclasses.replace(DataConfig(augment="rga", erasing_value=[0.0]), height=64,
                              width=32)
    ds = ImageDataset(items, build_train_transform(cfg), cache=True, cache_prepared=prepared)
    torch.manual_seed(0)
    for _ in range(8):  # warm: decoded and (almost all) prepared images cached
        for i in range(len(ds)):
            ds[i]
    start = [0]

    def batch():
        first = start[0] % (len(ds) - BATCH)
        start[0] += BATCH
        return default_collate([ds[i] for i in range(first, first + BATCH)])

    benchmark.pedantic(batch, rounds=50, iterations=1, warmup_rounds=2)
    benchmark.extra_info.update({"batch": BATCH, "size": [64, 32], "recipe": "rga",
                                 "prepares": ds.prepares})
