"""P x K identity sampler (Hermans et al. 2017; ``RandomIdentitySampler`` in BoT/RGA code)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from reid_core.data.base import ImageItem


class RandomIdentitySampler(Sampler[int]):
    """One epoch of indices in batches of P identities x K images.

    The BoT/RGA algorithm: for each identity, shuffle its images (sampling with replacement up
    to K if it has fewer) and cut them into chunks of K; then, while at least P identities have
    chunks left, pick P of them uniformly at random and emit one chunk of each. Leftover chunks
    are dropped.

    The epoch's order is drawn once, in the constructor, from ``generator``: build one sampler
    per epoch (with ``reid_core.utils.seed.epoch_generator``) so that ``len()`` is exact and an
    epoch's batches do not depend on earlier epochs (exact resume).

    Args:
        items: training items ``(path, pid, camid)``.
        batch_size: P x K.
        num_instances: K.
        generator: this epoch's randomness.
    """

    def __init__(
        self,
        items: Sequence[ImageItem],
        batch_size: int,
        num_instances: int,
        generator: torch.Generator | None = None,
    ) -> None:
        # Checked here as well as in the config: with P = 0 the loop below never ends.
        if batch_size < 1 or num_instances < 1:
            raise ValueError(f"batch_size ({batch_size}) and num_instances ({num_instances}) "
                             "must both be >= 1")
        if batch_size % num_instances:
            raise ValueError(f"batch_size {batch_size} is not a multiple of K={num_instances}")
        k, p = num_instances, batch_size // num_instances
        index_by_pid: dict[int, list[int]] = defaultdict(list)
        for i, (_, pid, _) in enumerate(items):
            index_by_pid[pid].append(i)
        pids = sorted(index_by_pid)
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

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
