"""The training batches of each epoch, drawn from (seed, epoch) by the config's sampler.

Every epoch gets its own generator (:func:`reid_core.utils.seed.epoch_generator`), so the
batches of epoch e do not depend on what ran before: a resumed run sees exactly the batches an
unbroken one would.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import DataLoader, Dataset

from reid_core.data.base import ImageItem
from reid_core.data.sampler import SAMPLERS
from reid_core.utils.seed import epoch_generator


class EpochLoader:
    """``loader(epoch)`` -> a ``DataLoader`` of ``batch_size`` batch dicts.

    Args:
        dataset: the training dataset (returns sample dicts, see ``reid_core.data.batch``).
        items: its ``(path, pid, camid)`` items, which the identity samplers group by pid.
        num_instances: K, images per identity in a batch (identity samplers).
        sampler: a name in ``reid_core.data.sampler.SAMPLERS`` (``data.sampler``).
    """

    def __init__(self, dataset: Dataset, items: Sequence[ImageItem], *, batch_size: int,
                 num_instances: int, seed: int, workers: int = 0,
                 pin_memory: bool = False, sampler: str = "pk") -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
        self.sampler_cls = SAMPLERS[sampler]
        self.dataset, self.items = dataset, items
        self.batch_size, self.num_instances = batch_size, num_instances
        self.seed, self.workers, self.pin_memory = seed, workers, pin_memory

    def __call__(self, epoch: int) -> DataLoader:
        gen = epoch_generator(self.seed, epoch)
        sampler = self.sampler_cls(self.items, self.batch_size, self.num_instances,
                                   generator=gen)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.workers, drop_last=True, generator=gen,
                          pin_memory=self.pin_memory)
