"""The training batches of each epoch, drawn from (seed, epoch) by the config's sampler.

Every epoch gets its own generator (:func:`reid_core.utils.seed.epoch_generator`), so the
batches of epoch e do not depend on what ran before: a resumed run sees exactly the batches an
unbroken one would.

With several processes (``world_size`` > 1) every rank draws the same global epoch and reads
its contiguous chunk of each global batch (:class:`reid_core.data.sampler.RankShard`):
``batch_size`` stays the *global* batch, each rank's loader yields ``batch_size / world_size``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import DataLoader, Dataset

from reid_core.data.base import ImageItem
from reid_core.data.sampler import SAMPLERS, RankShard
from reid_core.utils.seed import epoch_generator


class EpochLoader:
    """``loader(epoch)`` -> a ``DataLoader`` of ``batch_size`` batch dicts.

    Args:
        dataset: the training dataset (returns sample dicts, see ``reid_core.data.batch``).
        items: its ``(path, pid, camid)`` items, which the identity samplers group by pid.
        num_instances: K, images per identity in a batch (identity samplers).
        sampler: a name in ``reid_core.data.sampler.SAMPLERS`` (``data.sampler``).
        world_size, rank: this process's place in a DDP run (1, 0: one process).
    """

    def __init__(self, dataset: Dataset, items: Sequence[ImageItem], *, batch_size: int,
                 num_instances: int, seed: int, workers: int = 0,
                 pin_memory: bool = False, sampler: str = "pk", world_size: int = 1,
                 rank: int = 0) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
        self.sampler_cls = SAMPLERS[sampler]
        self.dataset, self.items = dataset, items
        self.batch_size, self.num_instances = batch_size, num_instances
        self.seed, self.workers, self.pin_memory = seed, workers, pin_memory
        self.world_size, self.rank = world_size, rank

    def __call__(self, epoch: int) -> DataLoader:
        gen = epoch_generator(self.seed, epoch)
        sampler = self.sampler_cls(self.items, self.batch_size, self.num_instances,
                                   generator=gen)
        batch_size = self.batch_size
        if self.world_size > 1:
            sampler = RankShard(sampler, self.batch_size, self.world_size, self.rank)
            batch_size //= self.world_size
        return DataLoader(self.dataset, batch_size=batch_size, sampler=sampler,
                          num_workers=self.workers, drop_last=True, generator=gen,
                          pin_memory=self.pin_memory)
