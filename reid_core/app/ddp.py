"""One run on several processes (``torchrun ... -m reid_core train``): what a config must
satisfy, which BatchNorm mode it trains with, what its identity and its record say.

The mechanics (process group, collectives, DDP wrapper, BN averaging) are in
:mod:`reid_core.utils.distributed`; this module holds the rules that involve the config.

**Identity.** A run of W > 1 processes is another run than the one-process run of the same
config: each rank's BatchNorm and triplet mining see a W-th of the batch, so the results differ.
Its ``run_identity`` gains ``world_size`` (hence another run id and another recipe); a
one-process run's identity is unchanged, so every existing record keeps its id.
"""

from __future__ import annotations

from typing import Any

from reid_core.config import ConfigError, RunConfig
from reid_core.data.sampler import SAMPLERS
from reid_core.utils import distributed
from reid_core.utils.device import DeviceSettings

__all__ = ["bn_mode", "check_distributed", "distributed_identity", "distributed_record"]


def bn_mode(cfg: RunConfig, world_size: int) -> str:
    """The run's BatchNorm mode, a key of :data:`reid_core.utils.distributed.BN_MODES`."""
    if world_size == 1:
        return "single_process"
    return "sync_bn" if cfg.model.sync_bn else "per_rank_bn_averaged"


def check_distributed(cfg: RunConfig, settings: DeviceSettings, world_size: int) -> None:
    """The config's constraints of a ``world_size``-process run, before any data is read.

    Raises:
        ConfigError: ``model.sync_bn`` off CUDA; ``data.batch_size`` (the *global* batch) not
            divisible by the world size, or, with an identity sampler, its P identities not
            divisible by it (a rank takes whole identities).
    """
    if cfg.model.sync_bn and not settings.is_cuda:
        raise ConfigError(
            "model.sync_bn: SyncBatchNorm needs CUDA (torch: 'SyncBatchNorm layers only work "
            "with GPU modules'); on CPU use BN per rank (model.sync_bn: false): its running "
            "statistics are averaged over the ranks before every evaluation")
    if world_size == 1:
        return
    b, k = cfg.data.batch_size, cfg.data.num_instances
    launch = f"{world_size} processes (torchrun --nproc-per-node {world_size})"
    if b % world_size:
        raise ConfigError(
            f"data.batch_size: {b} cannot be split over {launch}: it is the global batch and "
            f"every process takes an equal share; use a multiple of {world_size}")
    if getattr(SAMPLERS[cfg.data.sampler], "groups_identities", False) and (b // k) % world_size:
        step = world_size * k
        raise ConfigError(
            f"data.batch_size: {b} = {b // k} identities x K={k} (data.num_instances) cannot be "
            f"split over {launch} in whole identities (each identity's K images stay on one "
            f"process); use a multiple of {step}, e.g. data.batch_size: {-(-b // step) * step}")


def distributed_identity(world_size: int) -> dict[str, str]:
    """What the world size adds to a run's identity: nothing for one process."""
    return {"world_size": str(world_size)} if world_size > 1 else {}


def distributed_record(cfg: RunConfig, world_size: int) -> dict[str, Any]:
    """The record's ``distributed`` field: world size, per-rank batch, backend, BN mode."""
    return {"world_size": world_size, "per_rank_batch": cfg.data.batch_size // world_size,
            "backend": distributed.backend() if world_size > 1 else None,
            "bn_mode": bn_mode(cfg, world_size)}
