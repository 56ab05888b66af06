"""Multi-process training (DDP) in one place: the launch environment, the process group, the
collectives the suite needs, and the rules that keep a failing rank from leaving the others
waiting.

One run may be trained by ``torchrun --nproc-per-node N -m reid_core train ...``: torchrun
starts N processes and sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`session` joins them into one process group (``env://``) with the
backend of the device (:data:`BACKENDS`: gloo on CPU, NCCL on CUDA, one GPU per local rank).

**Everything here is a no-op without a process group** (a plain ``python -m reid_core train``,
or ``torchrun --nproc-per-node 1``): :func:`world_size` is 1, the reductions return their input
unchanged and :func:`gather_rows` its argument, so a single-process run executes exactly the
code it always did, bit for bit. :func:`local_only` makes them no-ops inside a group too, for
work that one rank does alone (making the synthetic-pretrained trunk on rank 0).

**No hang on a user error.** Every pre-training check runs on every rank inside
:func:`main_first` / :func:`agree`: each rank's outcome is exchanged, and if any rank failed,
*every* rank raises (the failing rank its own error, the others :class:`PeerFailedError`
carrying its message), so all stop at the same point, none waits in a collective for a rank
that has left. Rank 0 prints the message once (the others' copies are marked
``reported_by_main``). A failure during training that is not collective (a bug, an
out-of-memory) ends its process; torchrun's agent then stops the other ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from reid_core.utils.device import DeviceError, DeviceSettings

T = TypeVar("T")

#: Device type -> process-group backend (timm's rule: NCCL for CUDA, gloo otherwise).
BACKENDS: Final[dict[str, str]] = {"cpu": "gloo", "cuda": "nccl"}

#: How long a collective may wait for the other ranks. Longer than torch's defaults (NCCL: 10
#: min) because rank 0 alone does the slow one-off work while the others wait: decoding every
#: image of a large dataset (``check_openable``), making the synthetic trunk on first use (4.5
#: min on 2 CPU cores), computing the metrics of an evaluation. A rank that dies does not make
#: the others wait this long: torchrun's agent stops them.
PROCESS_GROUP_TIMEOUT: Final[timedelta] = timedelta(minutes=60)

#: BatchNorm modes of a run (the record's ``distributed.bn_mode``) -> what they mean.
BN_MODES: Final[dict[str, str]] = {
    "single_process": "one process: BN sees the whole batch",
    "per_rank_bn_averaged": "BN statistics per rank during training (each rank's share of the "
                            "batch); running mean/var averaged over the ranks after every "
                            "epoch, before evaluation and checkpoint (timm's distribute_bn)",
    "sync_bn": "SyncBatchNorm: BN statistics over the whole global batch (CUDA only)",
}

#: Attribute set on an exception that rank 0 also raised and printed (see :func:`agree`).
REPORTED_BY_MAIN: Final[str] = "reported_by_main"


class PeerFailedError(RuntimeError):
    """Another rank failed a check every rank runs (:func:`agree`); ``description`` is its
    error as that rank describes it, ``rank`` the rank."""

    def __init__(self, description: str, rank: int) -> None:
        super().__init__(f"{description} (on rank {rank})")
        self.description, self.rank = description, rank


class DistributedLaunchError(ValueError):
    """Started by torchrun with several processes, but not by a command that trains one run
    on them (only ``train`` does), or the launch environment is inconsistent."""


@dataclass(frozen=True)
class LaunchEnv:
    """What torchrun told this process (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); a plain
    ``python`` start is world size 1, rank 0."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LaunchEnv:
        env = os.environ if environ is None else environ
        try:
            values = {key: int(env.get(var, default)) for key, var, default in (
                ("world_size", "WORLD_SIZE", "1"), ("rank", "RANK", "0"),
                ("local_rank", "LOCAL_RANK", "0"))}
        except ValueError:
            raise DistributedLaunchError(
                f"WORLD_SIZE / RANK / LOCAL_RANK must be integers, got "
                f"{env.get('WORLD_SIZE')!r} / {env.get('RANK')!r} / {env.get('LOCAL_RANK')!r}"
            ) from None
        launch = cls(**values)
        if launch.world_size < 1 or not 0 <= launch.rank < launch.world_size:
            raise DistributedLaunchError(f"RANK {launch.rank} is not in [0, WORLD_SIZE "
                                         f"{launch.world_size})")
        return launch

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_rank() -> int:
    """``RANK`` as torchrun set it (0 when absent or malformed): valid for messages also before
    the group exists and after it is gone."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


# --------------------------------------------------------------------------- the process group

_local_depth = 0  # > 0 inside local_only(): this process acts as if alone


def is_initialized() -> bool:
    """A process group of more than one process is active (and not masked by
    :func:`local_only`)."""
    return (_local_depth == 0 and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the one process that prints, writes records and checkpoints."""
    return rank() == 0


def backend() -> str | None:
    """The process group's backend (``gloo`` / ``nccl``), None in one process."""
    return str(dist.get_backend()) if is_initialized() else None


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Inside, every helper acts as in one process (world size 1), although a group exists:
    for work one rank does alone while the others wait (making the synthetic trunk)."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def backend_for(device_name: str) -> str:
    """The backend for ``--device`` (``auto`` = CUDA when available). A name that is no device
    gets gloo: the device check, run on every rank inside :func:`agree`, reports it."""
    kind = device_name.split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return BACKENDS.get(kind, BACKENDS["cpu"])


def init_from_env(device_name: str = "auto") -> bool:
    """Join the processes torchrun started (``env://``); True if this call made the group.

    Nothing happens with world size 1 or when a group exists already. On NCCL, this process's
    GPU is ``cuda:LOCAL_RANK`` (set before the group, as NCCL requires).
    """
    launch = LaunchEnv.from_env()
    if not launch.distributed or (dist.is_available() and dist.is_initialized()):
        return False
    name = backend_for(device_name)
    if name == "nccl":
        torch.cuda.set_device(launch.local_rank)
    dist.init_process_group(backend=name, init_method="env://", world_size=launch.world_size,
                            rank=launch.rank, timeout=PROCESS_GROUP_TIMEOUT)
    return True


@contextlib.contextmanager
def session(device_name: str = "auto") -> Iterator[LaunchEnv]:
    """The process group of a torchrun launch, for the duration of a command (a no-op in one
    process). The group is destroyed on a normal exit; after an error it is left to the
    process's end (destroying a group with a peer gone can block on NCCL)."""
    made = init_from_env(device_name)
    yield LaunchEnv.from_env()
    if made and dist.is_initialized():
        dist.destroy_process_group()


def require_group_if_launched() -> None:
    """Refuse to run as one process when torchrun started several: each would train and write
    the same run (only ``train`` joins the processes into one run)."""
    launch = LaunchEnv.from_env()
    if launch.distributed and not (dist.is_available() and dist.is_initialized()):
        raise DistributedLaunchError(
            f"started by torchrun with WORLD_SIZE={launch.world_size}, but no process group: "
            f"only `python -m reid_core train` trains one run on several processes; run other "
            f"commands in one process (Python API: call run_experiment inside "
            f"reid_core.utils.distributed.session(device))")


def rank_device(settings: DeviceSettings) -> DeviceSettings:
    """This rank's device: ``cuda:LOCAL_RANK`` on CUDA (one GPU per process), the CPU as is.

    Raises:
        DeviceError: an explicit ``cuda:N`` under torchrun (each process takes the GPU of its
            local rank), or fewer GPUs than processes on this node.
    """
    if world_size() == 1 or not settings.is_cuda:
        return settings
    launch = LaunchEnv.from_env()
    if settings.device.index is not None:
        raise DeviceError(f"--device {settings.device} under torchrun: every process uses the "
                          f"GPU of its LOCAL_RANK; pass --device cuda (or auto)")
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise DeviceError(f"local rank {launch.local_rank} needs cuda:{launch.local_rank}, but "
                          f"this node has {count} CUDA device(s): lower --nproc-per-node")
    return dataclasses.replace(settings, device=torch.device("cuda", launch.local_rank))


def rank_seed(seed: int, rank_: int) -> int:
    """The seed of rank ``rank_``'s augmentation RNG after the (shared) model init: distinct per
    rank, so that the ranks do not draw the same flips and crops for different images."""
    return int(np.random.SeedSequence([seed, rank_]).generate_state(1)[0])


# --------------------------------------------------------------------------- agreement


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def agree(fn: Callable[[], T], describe: Callable[[BaseException], str] = _describe) -> T:
    """``fn()`` on every rank, then every rank raises if any rank failed (see the module
    docstring); in one process just ``fn()``.

    The failing rank re-raises its own exception; the others raise :class:`PeerFailedError`
    with the first failing rank's ``describe(error)``. Errors on ranks other than 0 are marked
    ``reported_by_main`` (rank 0 raises and prints the same message).
    """
    if not is_initialized():
        return fn()
    error: Exception | None = None
    result: Any = None
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 -- exchanged, then re-raised below
        error = e
    outcomes = all_gather_object(None if error is None else describe(error))
    failed = [(r, d) for r, d in enumerate(outcomes) if d is not None]
    if not failed:
        return result
    first_rank, first = failed[0]
    raised = error if error is not None else PeerFailedError(first, first_rank)
    if rank() != 0:
        setattr(raised, REPORTED_BY_MAIN, True)
    raise raised


def main_first(fn: Callable[[], T], describe: Callable[[BaseException], str] = _describe) -> T:
    """``fn()`` on rank 0 first, then (if it succeeded) on the other ranks, with
    :func:`agree`'s failure rule: for work whose first run creates what the others reuse
    (generating the synthetic data, making a trunk) or whose side effects belong to rank 0."""
    if not is_initialized():
        return fn()
    result: Any = None
    error: Exception | None = None
    if rank() == 0:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 -- broadcast, then re-raised below
            error = e
    first = broadcast_object(None if error is None else describe(error))
    if first is not None:
        if error is not None:
            raise error
        failure = PeerFailedError(first, 0)
        setattr(failure, REPORTED_BY_MAIN, True)
        raise failure
    return agree((lambda: result) if rank() == 0 else fn, describe)


# --------------------------------------------------------------------------- collectives


def _comm_device() -> torch.device:
    """Where tensors go for a collective: NCCL works on this rank's GPU, gloo on the CPU."""
    if backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (picklable objects)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def _all_reduce(values: Sequence[float]) -> list[float]:
    t = torch.tensor(list(values), dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """The sums over the ranks (float64); ``values`` unchanged in one process."""
    if not is_initialized():
        return list(values)
    return _all_reduce(values)


def all_reduce_mean(values: Sequence[float]) -> list[float]:
    """The means over the ranks (float64); ``values`` unchanged in one process."""
    if not is_initialized():
        return list(values)
    n = world_size()
    return [v / n for v in _all_reduce(values)]


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (``(n_r, *rest)``, the same ``rest`` and dtype on every rank that has
    rows; ``n_r`` may differ and be 0) concatenated in rank order, on every rank, on the CPU.

    ``all_gather`` needs equal shapes, so each rank pads its rows to the longest and the padding
    is cut off again. A rank without rows may not know ``rest`` (no feature was computed):
    shapes are exchanged first and an empty rank contributes zeros of the agreed shape.
    """
    if not is_initialized():
        return t
    device = _comm_device()
    shape = torch.tensor([t.shape[0], *t.shape[1:]], dtype=torch.int64, device=device)
    shapes = [torch.zeros_like(shape) for _ in range(world_size())]
    dist.all_gather(shapes, shape)
    counts = [int(s[0]) for s in shapes]
    rest = [int(v) for v in torch.stack(shapes).amax(dim=0)[1:].tolist()]
    longest = max(counts)
    padded = torch.zeros((longest, *rest), dtype=t.dtype, device=device)
    if t.shape[0]:
        padded[:t.shape[0]] = t.to(device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts)]).cpu()


def shard_bounds(n: int, batch_size: int) -> tuple[int, int]:
    """This rank's ``[start, stop)`` of ``n`` items cut in *whole batches* of ``batch_size``:
    every rank runs exactly batches the single process would run (the last, shorter batch
    included), so features come out bit-identical to a one-process extraction."""
    batches = -(-n // batch_size)
    w, r = world_size(), rank()
    first, last = r * batches // w, (r + 1) * batches // w
    return min(first * batch_size, n), min(last * batch_size, n)


# --------------------------------------------------------------------------- models


def average_batchnorm_stats(model: nn.Module) -> int:
    """Replace every BatchNorm's running mean and variance by their mean over the ranks (timm's
    ``distribute_bn(reduce=True)``); returns how many layers were averaged (0 in one process).

    Training never reads running statistics (train-mode BN uses the batch's), so averaging
    after an epoch does not change the gradients; it makes the ranks' models identical for
    evaluation and the checkpoint. (The mean of per-rank variances leaves out the spread of the
    per-rank means: a rank's share of the batch is large enough for it to be small.)
    """
    if not is_initialized():
        return 0
    n, layers = world_size(), 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buf in (module.running_mean, module.running_var):
                if buf is not None:
                    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                    buf.div_(n)
            layers += 1
    return layers


def convert_sync_batchnorm(model: nn.Module) -> None:
    """Turn the model's BatchNorm layers into SyncBatchNorm, in place (CUDA only: torch refuses
    SyncBatchNorm on CPU modules, 'SyncBatchNorm layers only work with GPU modules')."""
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model, "the model's top module is not itself a BatchNorm layer"


#: The DDP option that turns off the buffer broadcast at every forward (renamed in torch 2.14).
_NO_FORWARD_BUFFER_SYNC: Final[str] = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
    else "broadcast_buffers")


class DDPForward(nn.Module):
    """The training forward of ``model`` through ``DistributedDataParallel``.

    DDP averages the gradients over the ranks during ``backward`` (each rank's loss is the mean
    over its share of the batch; the shares are equal, so the average is the gradient of the
    global batch's mean loss). Settings:

    * no buffer broadcast at every forward (fast-reid's ``broadcast_buffers=False``; torch >=
      2.14 spells it ``forward_sync_buffers=False``, which still syncs them once when wrapping):
      BN buffers stay per rank during an epoch and are averaged after it
      (:func:`average_batchnorm_stats`), instead of rank 0's overwriting the others' at every
      forward;
    * ``find_unused_parameters=True``: a loss term of weight 0 is not computed, PCB-RPP's
      parts change at an epoch, so some parameters get no gradient in some steps; DDP then
      leaves them untouched, as one process does (a graph traversal per step is the cost).

    The model returns a :class:`~reid_core.models.ModelOutput` dataclass, which torch's pytree
    (how DDP finds the output tensors that need its backward hook) sees as one opaque leaf;
    the wrapped forward returns its fields as a dict and this module rebuilds the dataclass.
    The wrapped model's parameters are the model's: checkpoints keep saving ``model``.
    """

    def __init__(self, model: nn.Module, settings: DeviceSettings) -> None:
        super().__init__()
        self._fields = _FieldsOutput(model)
        device_ids = [settings.device.index] if settings.is_cuda else None
        self.ddp = nn.parallel.DistributedDataParallel(
            self._fields, device_ids=device_ids, find_unused_parameters=True,
            **{_NO_FORWARD_BUFFER_SYNC: False})

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.ddp(*args, **kwargs)
        cls = self._fields.output_type
        return cls(**out) if cls is not None else out


class _FieldsOutput(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.output_type: type | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.model(*args, **kwargs)
        if dataclasses.is_dataclass(out) and not isinstance(out, type):
            self.output_type = type(out)
            return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
        self.output_type = None
        return out


__all__ = [
    "BACKENDS", "BN_MODES", "DDPForward", "DistributedLaunchError", "LaunchEnv",
    "PROCESS_GROUP_TIMEOUT", "PeerFailedError", "REPORTED_BY_MAIN", "agree",
    "all_gather_object", "all_reduce_mean", "all_reduce_sum", "average_batchnorm_stats",
    "backend", "backend_for", "broadcast_object", "convert_sync_batchnorm",
    "gather_rows", "init_from_env", "is_initialized", "is_main", "launch_rank", "local_only",
    "main_first", "rank", "rank_device", "rank_seed", "require_group_if_launched", "session",
    "shard_bounds", "world_size",
]
