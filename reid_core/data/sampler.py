"""The samplers that define a training epoch, by name in :data:`SAMPLERS` (``data.sampler``).

* ``pk``: BoT's P x K identity sampler (Hermans et al. 2017): every image about once per epoch,
  in batches of P identities x K images (:class:`RandomIdentitySampler`).
* ``identity_once``: open-reid's sampler, which RGA's official code uses: every *identity* once
  per epoch with K images, so an epoch is ``#ids * K / batch_size`` batches (CUHK03-NP:
  767 * 4 / 64 = 47; BoT's sampler gives ~95 there) (:class:`IdentityOnceSampler`).
* ``shuffle``: all images in random order, no identity structure (PCB's official training;
  :class:`ShuffleSampler`).

Every sampler draws its epoch once, in the constructor, from the epoch's ``generator``: build
one per epoch (``reid_core.utils.seed.epoch_generator``) so that ``len()`` is exact and an
epoch's batches do not depend on earlier epochs (exact resume). Batches are consecutive runs of
``batch_size`` indices; the last incomplete one is dropped (``drop_last``).

**Several processes (DDP)** share each batch the fast-reid way (:class:`RankShard`): every rank
draws the same *global* epoch from the shared (seed, epoch) generator, cuts it into the same
global batches, and takes its contiguous chunk of each: with P x K sampling, rank r of W gets
identities ``[r * P / W, (r + 1) * P / W)`` of every batch, K images each, so an identity is
never split across ranks (the triplet term mines within a rank's chunk).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import torch
from torch.utils.data import Sampler

from reid_core.data.base import ImageItem


def _index_by_pid(items: Sequence[ImageItem]) -> dict[int, list[int]]:
    index_by_pid: dict[int, list[int]] = defaultdict(list)
    for i, (_, pid, _) in enumerate(items):
        index_by_pid[pid].append(i)
    return dict(sorted(index_by_pid.items()))


def _check_sizes(batch_size: int, num_instances: int) -> None:
    # Checked here as well as in the config: with P = 0 the P x K loop never ends.
    if batch_size < 1 or num_instances < 1:
        raise ValueError(f"batch_size ({batch_size}) and num_instances ({num_instances}) "
                         "must both be >= 1")
    if batch_size % num_instances:
        raise ValueError(f"batch_size {batch_size} is not a multiple of K={num_instances}")


class _EpochSampler(Sampler[int]):
    """An epoch's indices, drawn in the constructor (``self.indices``).

    ``groups_identities``: every batch is P identities x K consecutive images (so a DDP rank's
    contiguous chunk holds whole identities when P is divisible by the world size)."""

    indices: list[int]
    groups_identities: ClassVar[bool] = False

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class RandomIdentitySampler(_EpochSampler):
    """One epoch of indices in batches of P identities x K images.

    The BoT/RGA algorithm: for each identity, shuffle its images (sampling with replacement up
    to K if it has fewer) and cut them into chunks of K; then, while at least P identities have
    chunks left, pick P of them uniformly at random and emit one chunk of each. Leftover chunks
    are dropped.

    Args:
        items: training items ``(path, pid, camid)``.
        batch_size: P x K.
        num_instances: K.
        generator: this epoch's randomness.
    """

    groups_identities: ClassVar[bool] = True

    def __init__(
        self,
        items: Sequence[ImageItem],
        batch_size: int,
        num_instances: int,
        generator: torch.Generator | None = None,
    ) -> None:
        _check_sizes(batch_size, num_instances)
        k, p = num_instances, batch_size // num_instances
        index_by_pid = _index_by_pid(items)
        pids = list(index_by_pid)
        if len(pids) < p:
            raise ValueError(
                f"P x K sampling needs at least P={p} identities, the training set has "
                f"{len(pids)}; lower data.batch_size or raise data.num_instances"
            )
        chunks: dict[int, list[list[int]]] = {}
        for pid in pids:
            ix = torch.tensor(index_by_pid[pid])
            if len(ix) < k:
                ix = ix[torch.randint(len(ix), (k,), generator=generator)]
            ix = ix[torch.randperm(len(ix), generator=generator)].tolist()
            chunks[pid] = [ix[j * k:(j + 1) * k] for j in range(len(ix) // k)]
        available = list(pids)
        self.indices: list[int] = []
        while len(available) >= p:
            pick = torch.randperm(len(available), generator=generator)[:p].tolist()
            selected = [available[i] for i in pick]
            for pid in selected:
                self.indices.extend(chunks[pid].pop(0))
            available = [pid for pid in available if chunks[pid]]


class IdentityOnceSampler(_EpochSampler):
    """Every identity once per epoch, K images each (open-reid's ``RandomIdentitySampler``,
    used by RGA's official code).

    The identities are visited in random order; each contributes K of its images drawn without
    replacement (with replacement if it has fewer than K). Consecutive batches of
    ``batch_size`` therefore hold P = batch_size / K identities x K images, and an epoch has
    ``floor(#ids * K / batch_size)`` batches, about half of what :class:`RandomIdentitySampler`
    yields at 4-8 images per identity: a schedule in epochs means twice the iterations there.

    Args:
        items: training items ``(path, pid, camid)``.
        batch_size: P x K (a multiple of K, so that no identity straddles two batches).
        num_instances: K.
        generator: this epoch's randomness.
    """

    groups_identities: ClassVar[bool] = True

    def __init__(self, items: Sequence[ImageItem], batch_size: int, num_instances: int,
                 generator: torch.Generator | None = None) -> None:
        _check_sizes(batch_size, num_instances)
        index_by_pid = _index_by_pid(items)
        pids = list(index_by_pid)
        if len(pids) * num_instances < batch_size:
            raise ValueError(
                f"identity-once sampling yields {len(pids)} ids x K={num_instances} = "
                f"{len(pids) * num_instances} images per epoch, fewer than one batch of "
                f"{batch_size}; lower data.batch_size")
        k = num_instances
        self.indices = []
        for j in torch.randperm(len(pids), generator=generator).tolist():
            ix = torch.tensor(index_by_pid[pids[j]])
            if len(ix) >= k:
                pick = torch.randperm(len(ix), generator=generator)[:k]
            else:
                pick = torch.randint(len(ix), (k,), generator=generator)
            self.indices.extend(ix[pick].tolist())


class ShuffleSampler(_EpochSampler):
    """All training images once per epoch in random order (PCB's official training).

    Batches have no identity structure, so losses that need positives in the batch (triplet)
    do not apply; the config check refuses that combination.

    Args:
        items: training items.
        batch_size: images per batch (at least one full batch must fit).
        num_instances: unused (the signature is the samplers' common one).
        generator: this epoch's randomness.
    """

    def __init__(self, items: Sequence[ImageItem], batch_size: int, num_instances: int,
                 generator: torch.Generator | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(items) < batch_size:
            raise ValueError(f"the training set has {len(items)} images, fewer than one batch "
                             f"of {batch_size}; lower data.batch_size")
        self.indices = torch.randperm(len(items), generator=generator).tolist()


def shard_batches(indices: Sequence[int], batch_size: int, world_size: int,
                  rank: int) -> list[int]:
    """Rank ``rank``'s chunk of every full global batch of ``indices``, concatenated: global
    batch j is ``indices[j * batch_size:(j + 1) * batch_size]`` (an incomplete last one is
    dropped, as one process drops it), and its chunk r is the r-th of ``world_size`` equal,
    contiguous parts."""
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size "
                         f"{world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    share = batch_size // world_size
    out: list[int] = []
    for start in range(0, len(indices) - batch_size + 1, batch_size):
        out.extend(indices[start + rank * share:start + (rank + 1) * share])
    return out


class RankShard(_EpochSampler):
    """One rank's share of another sampler's epoch (:func:`shard_batches`): read in batches of
    ``batch_size // world_size`` it yields, step by step, this rank's chunk of the global batch
    the single-process sampler would yield."""

    def __init__(self, sampler: _EpochSampler, batch_size: int, world_size: int,
                 rank: int) -> None:
        self.indices = shard_batches(sampler.indices, batch_size, world_size, rank)


#: ``data.sampler`` name -> sampler class, called as ``cls(items, batch_size, K, generator)``.
SAMPLERS: dict[str, Callable[..., _EpochSampler]] = {
    "pk": RandomIdentitySampler,
    "identity_once": IdentityOnceSampler,
    "shuffle": ShuffleSampler,
}
