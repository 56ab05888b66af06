"""The epoch samplers (``data.sampler``): what an epoch is under each, counted on a
CUHK03-NP-sized fixture, and which paper profile uses which."""

from __future__ import annotations

import typing
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from reid_core.app.reproduce import build_row_config, load_paper_configs
from reid_core.config import ConfigError, DataConfig, config_from_dict
from reid_core.data.sampler import (IdentityOnceSampler, RandomIdentitySampler, SAMPLERS,
                                    ShuffleSampler)
from reid_core.engine.loader import EpochLoader

#: CUHK03-NP (labeled) training split: 767 identities, 7,368 images (2 to ~19 per identity).
CUHK03_NP_IDS, CUHK03_NP_IMAGES = 767, 7368


def cuhk03np_sized_items() -> list[tuple[str, int, int]]:
    """767 identities with 7,368 images in all, between 2 and 19 each."""
    rng = np.random.default_rng(0)
    counts = np.full(CUHK03_NP_IDS, 2) + rng.multinomial(
        CUHK03_NP_IMAGES - 2 * CUHK03_NP_IDS, np.full(CUHK03_NP_IDS, 1 / CUHK03_NP_IDS))
    assert counts.sum() == CUHK03_NP_IMAGES and counts.min() >= 2
    return [(f"/x/{pid}_{i}.png", pid, i % 2) for pid, n in enumerate(counts) for i in range(n)]


class IndexDataset(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def batches_per_epoch(sampler: str, items, batch_size: int = 64, k: int = 4) -> list[list[int]]:
    loader = EpochLoader(IndexDataset(len(items)), items, batch_size=batch_size,
                         num_instances=k, seed=0, sampler=sampler)
    return [b.tolist() for b in loader(0)]


def test_identity_once_epoch_on_cuhk03np_is_47_batches_and_pk_about_twice():
    items = cuhk03np_sized_items()
    once = batches_per_epoch("identity_once", items)
    assert len(once) == CUHK03_NP_IDS * 4 // 64 == 47
    # Every batch is 16 identities x 4 images; no identity appears twice in the epoch.
    seen: Counter[int] = Counter()
    for batch in once:
        per_id = Counter(items[i][1] for i in batch)
        assert len(per_id) == 16 and set(per_id.values()) == {4}
        seen.update(per_id.keys())
    assert max(seen.values()) == 1 and len(seen) == 47 * 16
    pk = batches_per_epoch("pk", items)
    # BoT's sampler cuts every identity into floor(n / 4) chunks: ~95 batches here.
    assert 90 <= len(pk) <= 100, len(pk)


def test_identity_once_draws_without_replacement_unless_too_few():
    items = [(f"/x/{pid}_{i}", pid, 0) for pid, n in {0: 9, 1: 2, 2: 4, 3: 6}.items()
             for i in range(n)]
    for seed in range(20):
        s = IdentityOnceSampler(items, 8, 4, torch.Generator().manual_seed(seed))
        idx = list(s)
        assert len(idx) == len(s) == 16
        chunks = [idx[j:j + 4] for j in range(0, 16, 4)]
        assert sorted(items[c[0]][1] for c in chunks) == [0, 1, 2, 3]
        for c in chunks:
            assert len({items[i][1] for i in c}) == 1
            if items[c[0]][1] != 1:  # enough images: drawn without replacement
                assert len(set(c)) == 4
            else:  # pid 1 has 2 images: with replacement up to K
                assert set(c) <= {9, 10}


def test_samplers_are_deterministic_per_generator():
    items = cuhk03np_sized_items()[:400]
    for cls in (RandomIdentitySampler, IdentityOnceSampler, ShuffleSampler):
        a = list(cls(items, 16, 4, torch.Generator().manual_seed(1)))
        b = list(cls(items, 16, 4, torch.Generator().manual_seed(1)))
        c = list(cls(items, 16, 4, torch.Generator().manual_seed(2)))
        assert a == b and a != c, cls.__name__


def test_shuffle_is_a_permutation_of_all_images():
    items = cuhk03np_sized_items()
    s = ShuffleSampler(items, 64, 4, torch.Generator().manual_seed(0))
    assert sorted(s) == list(range(len(items)))
    assert len(batches_per_epoch("shuffle", items)) == len(items) // 64


def test_samplers_refuse_an_epoch_without_a_batch():
    items = [(f"/x/{pid}_{i}", pid, 0) for pid in range(3) for i in range(4)]
    with pytest.raises(ValueError, match="fewer than one batch"):
        IdentityOnceSampler(items, 16, 4)
    with pytest.raises(ValueError, match="fewer than one batch"):
        ShuffleSampler(items, 16, 4)


def test_sampler_names_are_the_config_literal():
    hints = typing.get_type_hints(DataConfig)
    assert set(typing.get_args(hints["sampler"])) == set(SAMPLERS)


def _raw(sampler: str, triplet_weight: float) -> dict:
    return {"name": "s", "data": {"sampler": sampler, "batch_size": 30, "num_instances": 4},
            "loss": {"terms": [{"name": "ce"},
                               {"name": "triplet", "weight": triplet_weight}]}}


def test_shuffle_with_a_triplet_term_is_a_config_error():
    with pytest.raises(ConfigError, match="data.sampler: 'shuffle'.*triplet"):
        config_from_dict(_raw("shuffle", 1.0))
    # Switched off (weight 0), it is fine; and P x K's multiple-of-K rule does not apply.
    assert config_from_dict(_raw("shuffle", 0.0)).data.sampler == "shuffle"
    with pytest.raises(ConfigError, match="multiple of"):
        config_from_dict(_raw("identity_once", 0.0))


@pytest.mark.parametrize("paper, profile, expected", [
    ("rga", "paper", "identity_once"), ("rga", "smoke", "pk"), ("rga", "scratch", "pk"),
    ("csa", "paper", "shuffle"), ("csa", "smoke", "pk"), ("csa", "scratch", "pk"),
])
def test_paper_profiles_use_the_authors_sampler(paper, profile, expected):
    source, raw = load_paper_configs(paper)
    for config_id in raw["variants"]:
        assert build_row_config(raw, source, config_id, profile, 0).data.sampler == expected
