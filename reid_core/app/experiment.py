"""One run, end to end: data -> model -> train -> evaluate -> record.

``run_experiment`` is what ``python -m reid_core train`` and the reproduce scripts call. A run
is identified by its config (name, seed, hash): a finished run's record is reused unless
``force``; an interrupted run continues from its checkpoint with ``resume``.

Under torchrun (several processes, inside :func:`reid_core.utils.distributed.session`) every
rank calls it: the checks run on rank 0 first, then on the others, and a failure on any rank
stops all of them with its message (:func:`reid_core.utils.distributed.main_first`); only rank 0
prints, writes the record and the checkpoints; the world size is part of the run id
(:mod:`reid_core.app.ddp`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from reid_core.config import ConfigError, RunConfig
from reid_core.data import DatasetError, ReIDData, build_dataset, resolve_dataset_root
from reid_core.data.base import DATASETS
from reid_core.data.transforms import build_train_transform
from reid_core.data.check import check_openable
from reid_core.engine.checkpoint import (
    LAST, RunClock, attempt_of, finalize, read_checkpoint, world_size_mismatch, world_size_of)
from reid_core.engine.trainer import NonFiniteLossError, StepHook
from reid_core.app.ddp import (
    check_distributed, distributed_identity, distributed_record)
from reid_core.app.training import train
from reid_core.losses import build_objective
from reid_core.metrics.evaluator import RetrievalEvaluator
from reid_core.models import (
    WeightMismatchError, build_model, check_pretrained_name, pretrained_source)
from reid_core.models.weights import UnreadableWeightsError
from reid_core.app import pretrain  # noqa: F401  (registers model.pretrained: synthetic)
from reid_core.results.claims import RunBusyError, RunLock
from reid_core.results.identity import make_run_id
from reid_core.results.record_types import RunRecord
from reid_core.results.records import command_line, software_versions, utc_now
from reid_core.results.store import RunPaths, RunStore
from reid_core.utils import distributed
from reid_core.utils.device import (
    DeviceSettings, peak_memory_mb, reset_peak_memory, resolve_device)
from reid_core.utils.io import OutputWriteError, file_sha256, remove_stale_temps
from reid_core.utils.seed import make_deterministic, seed_everything


class RunStateError(RuntimeError):
    """An unfinished run's checkpoint exists and neither resume nor force was given."""


class OutputDirError(ValueError):
    """The output directory cannot hold records and checkpoints (a file, read-only, ...)."""


#: Problems a user can fix (bad config, dataset layout, weights, run state, diverged loss, a
#: full or read-only disk): command-line entry points print their message instead of a
#: traceback. ConfigError, the dataset, device and checkpoint errors are ValueErrors.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, KeyError, WeightMismatchError, NonFiniteLossError, RunStateError, OSError,
    distributed.PeerFailedError, RunBusyError)


def describe_error(e: BaseException) -> str:
    """``Type: message`` for a user error (a KeyError's repr would add quotes around it; an
    OSError from the file system names its file and says what was expected there; another
    rank's error is described as that rank described it, and names the rank)."""
    if isinstance(e, distributed.PeerFailedError):
        return str(e)
    if isinstance(e, OSError) and not isinstance(e, OutputWriteError) and e.filename:
        what = {FileExistsError: "a file is in the way of a directory",
                NotADirectoryError: "a file is where a directory is expected",
                IsADirectoryError: "a directory is where a file is expected",
                FileNotFoundError: "no such file or directory",
                PermissionError: "permission denied"}.get(type(e), e.strerror or str(e))
        return f"{type(e).__name__}: {what}: {e.filename}"
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return f"{type(e).__name__}: {msg}"


def load_data(cfg: RunConfig, data_root: str | Path | None) -> ReIDData:
    """Resolve the dataset root (``--data-root`` > ``data.root`` > synthetic cache) and load."""
    root = data_root if data_root is not None else cfg.data.root
    return build_dataset(cfg.data.dataset, resolve_dataset_root(cfg.data.dataset, root),
                         split=cfg.data.split)


def weights_identity(cfg: RunConfig) -> dict[str, str]:
    """When ``model.pretrained`` is a file, that file's SHA-256: other weights at the same path
    are another run, not a record to reuse. A named source's identity when it is one (the
    synthetic-pretrained trunks: ``synthetic-<backbone>:<digest of their specification>``,
    known without making them). Empty otherwise (random init; ImageNet, identified by its
    name in the config)."""
    pretrained = cfg.model.pretrained
    if pretrained in (None, "imagenet"):
        return {}
    source = pretrained_source(pretrained)
    if source is not None:
        return {"weights": source.identity(pretrained, cfg.model.backbone)}
    return {"weights": "sha256:" + file_sha256(Path(pretrained).expanduser())[:16]}


def pretrained_description(cfg: RunConfig) -> str | None:
    """What the backbone starts from, in words, for the record's ``pretrained_description``
    (None: random init). For a named source this makes its weights if they are missing (the
    synthetic trunk: minutes, with progress)."""
    pretrained, backbone = cfg.model.pretrained, cfg.model.backbone
    if pretrained is None:
        return None
    if pretrained == "imagenet":
        return f"initialised from torchvision's ImageNet weights of {backbone}"
    source = pretrained_source(pretrained)
    if source is not None:
        return source.describe(pretrained, backbone)
    return (f"initialised from the weights file {Path(pretrained).expanduser()} "
            f"({weights_identity(cfg)['weights']})")


def run_identity(cfg: RunConfig, data: ReIDData, world_size: int = 1) -> dict[str, str]:
    """What a run starts from besides its config: the data (:meth:`ReIDData.identity`), the
    pretrained file (:func:`weights_identity`) and, for several processes, their number
    (:func:`reid_core.app.ddp.distributed_identity`; one process adds nothing)."""
    return {**data.identity(), **weights_identity(cfg), **distributed_identity(world_size)}


def run_id_of(cfg: RunConfig, data: ReIDData, world_size: int = 1) -> str:
    """The run id of ``cfg`` trained on ``data`` by ``world_size`` processes
    (:func:`reid_core.results.identity.make_run_id`)."""
    return make_run_id(cfg.name, cfg.seed, cfg.config_hash(),
                       run_identity(cfg, data, world_size))


def check_buildable(cfg: RunConfig) -> None:
    """Names and options that only the registries know (dataset, model, backbone, attention,
    augmentation, pretrained file), checked before any data is read: a throwaway model is built
    (random init, 2 classes) so that a typo costs a second, not a dataset scan."""
    DATASETS.get(cfg.data.dataset)
    build_train_transform(cfg.data)
    check_pretrained_name(cfg.model.pretrained, cfg.model.backbone)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), 2,
                        (cfg.data.height, cfg.data.width))
    check_eval_features(cfg, model.head.feature_names)
    build_objective(cfg.loss, model)  # loss.terms: known, valid options, fed by this model


def check_eval_features(cfg: RunConfig, valid: tuple[str, ...]) -> None:
    """Every name in ``eval.features`` must be a test feature of the model's head (``valid``)."""
    for i, name in enumerate(cfg.eval.features):
        if name not in valid:
            raise ConfigError(f"eval.features[{i}]: model {cfg.model.name!r} has no test "
                              f"feature {name!r}; its features: {', '.join(valid)}")


def check_trainable(data: ReIDData) -> None:
    if not data.train:
        raise DatasetError(f"dataset {data.name!r} has no training images (a test-only set, "
                           f"e.g. the partial sets): train on another dataset and evaluate "
                           f"the run on this one with `python -m reid_core evaluate`")


def check_output_dir(out: Path) -> None:
    """Fail before any compute when ``out`` cannot take records and checkpoints."""
    store = RunStore(out)
    for sub in (out, store.runs_dir, store.checkpoints_dir):
        if sub.exists() and not sub.is_dir():
            raise OutputDirError(f"output directory {sub} is a file, not a directory; "
                                 f"pass another --out")
    try:
        for sub in (store.runs_dir, store.checkpoints_dir):
            sub.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=sub):
                pass
    except OSError as e:
        raise OutputDirError(f"output directory {out} is not writable "
                             f"({e.strerror or e}); pass another --out") from None


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """What the checks before compute found for a run to train."""

    settings: DeviceSettings
    data: ReIDData
    identity: dict[str, str]
    store: RunStore
    paths: RunPaths
    resuming: bool
    evaluator: RetrievalEvaluator
    description: str | None


def run_experiment(
    cfg: RunConfig,
    *,
    data_root: str | Path | None = None,
    out: str | Path = "results",
    device: str = "auto",
    resume: bool = False,
    force: bool = False,
    console: Console | None = None,
    profile: str | None = None,
    on_step: StepHook | None = None,
    note_fresh_start: bool = True,
) -> dict[str, Any]:
    """Train and evaluate ``cfg``; write and return its run record.

    Everything that can be checked before training is checked first (device, output
    directory, dataset layout, evaluation settings against the dataset, images readable).

    What happens to an existing run of the same id:

    ========================  ===============================================================
    ``force``                 train from scratch; an earlier record and ``final.pt`` stay
                              until the new attempt finishes and replaces them
    ``last.pt`` + ``resume``  continue that attempt (also an interrupted ``--force`` re-run)
    ``last.pt``, a record     skip (the record stands), saying an unfinished re-run exists
    ``last.pt``, no record    :class:`RunStateError`: pass ``resume`` or ``force``
    a record                  skip and return it
    ========================  ===============================================================

    Several processes (torchrun; see the module docstring): the world size is part of the run
    id, and ``resume`` of a run whose checkpoint was written with another world size is a
    :class:`RunStateError` naming both.

    Args:
        data_root: dataset root (see :func:`load_data`).
        out: records go to ``<out>/runs/<run_id>.json``, checkpoints to
            ``<out>/checkpoints/<run_id>/``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        resume: continue an interrupted run from its checkpoint.
        note_fresh_start: with ``resume`` and no checkpoint, say that the run starts afresh
            (for a user who asked for ``--resume``; a table sweep, which always resumes, passes
            False).
        force: re-run from scratch even if a record or a checkpoint exists.
        profile: the reproduce profile this run belongs to (``"smoke"``/``"paper"``), recorded.
        on_step: passed to :func:`~reid_core.engine.trainer.fit` (called after every step).
    """
    distributed.require_group_if_launched()
    with contextlib.ExitStack() as held:  # the run's lock, taken by _prepare (rank 0)
        main = distributed.is_main()
        console = (console or Console()) if main else Console(quiet=True)
        # Rank 0 first (it may generate the data, make the trunk, finalise or discard checkpoints),
        # then the others, reading what rank 0 left; a failure anywhere stops every rank.
        prep = distributed.main_first(
            lambda: _prepare(cfg, data_root=data_root, out=Path(out), device=device, resume=resume,
                             force=force, console=console, note_fresh_start=note_fresh_start,
                             held=held),
            describe=describe_error)
        if not isinstance(prep, _Prepared):  # the finished run's record: skipped
            return prep
        settings, data, paths, store = prep.settings, prep.data, prep.paths, prep.store
        evaluator, description, resuming = prep.evaluator, prep.description, prep.resuming
        world = distributed.world_size()

        seed_everything(cfg.seed)
        make_deterministic()
        reset_peak_memory(settings)
        model = build_model(cfg.model, data.num_train_pids, (cfg.data.height, cfg.data.width))
        started = utc_now()
        clock = RunClock.fresh()  # fit continues the checkpoint's attempt when resuming
        history = train(model, data.train, cfg, settings, paths.checkpoint, resume=resuming,
                        evaluate=evaluator, console=console, on_step=on_step, clock=clock,
                        sidecar_root=Path(data.root))
        final = evaluator(model, per_query=True)  # per-query AP / first hit: for the verdicts
        run_state = clock.state(cfg.optim.epochs)

        def write_record() -> dict[str, Any]:
            if not main:
                return {}
            run_record = RunRecord(
                run_id=paths.run_id,
                attempt=clock.attempt,
                config_name=cfg.name,
                config_hash=cfg.config_hash(),
                seed=cfg.seed,
                config=cfg.to_dict(),
                dataset={"name": data.name, "root": str(data.root), "identity": data.identity(),
                         "splits": data.summary()},
                run_identity=prep.identity,
                device=settings.describe(),
                distributed=distributed_record(cfg, world),
                versions=software_versions(),
                command=command_line(),
                started_at=started,
                finished_at=utc_now(),
                # All segments of the attempt (a resumed run adds the interrupted ones' time).
                wall_time_s=run_state["elapsed_s"],
                segments=run_state["segments"],
                peak_memory=peak_memory_mb(settings),
                resumed_from_epoch=clock.from_epoch if resuming else None,
                pretrained=cfg.model.pretrained,
                pretrained_description=description,
                profile=profile,
                metrics_unit="percent",
                history=history,
                final=final,
                # The feature a paper table is compared on: the first of eval.features.
                primary_feature=cfg.eval.features[0],
            )
            path = store.write_record(run_record)
            finalize(paths.checkpoint_dir)  # after the record: see reid_core.engine.checkpoint
            record = run_record.to_dict()
            console.print(summary_table(record))
            console.print(f"record written to {path}")
            return record

        # Rank 0 writes; the others wait for it, and fail with its message if it fails (a full
        # disk): no rank is left waiting. They return {} (the record is rank 0's).
        return distributed.main_first(write_record, describe=describe_error)


def _prepare(cfg: RunConfig, *, data_root: str | Path | None, out: Path, device: str,
             resume: bool, force: bool, console: Console, note_fresh_start: bool,
             held: contextlib.ExitStack) -> _Prepared | dict[str, Any]:
    """The checks before compute and the decision what to do with an existing run (see
    :func:`run_experiment`): the run to train, or the record of a finished run to skip.
    Several processes: rank 0 runs it first and alone changes files (stale temporary files,
    finalising or discarding checkpoints); the others then see the state it left and come to
    the same decision."""
    main = distributed.is_main()
    world = distributed.world_size()
    settings = distributed.rank_device(resolve_device(device))
    check_distributed(cfg, settings, world)
    check_output_dir(out)
    check_buildable(cfg)
    data = load_data(cfg, data_root)
    check_trainable(data)
    identity = run_identity(cfg, data, world)
    store = RunStore(out)
    paths: RunPaths = store.run(make_run_id(cfg.name, cfg.seed, cfg.config_hash(), identity))
    if main:  # before any file of the run is touched: another process may be training it
        held.enter_context(RunLock(out, paths.run_id))
        for directory in (store.runs_dir, paths.checkpoint_dir):
            remove_stale_temps(directory)
    if paths.record.exists() and not paths.record.is_file():
        raise OutputDirError(f"{paths.record} is a directory where the run's record goes; "
                             f"remove it")
    existing = store.find_record(paths.run_id)
    unfinished = paths.checkpoint.is_file()
    if unfinished and existing is not None and not force:
        # A finished attempt whose record was written but whose last.pt was not yet renamed.
        ckpt = read_checkpoint(paths.checkpoint, expected_hash=cfg.config_hash(), mmap=True)
        if attempt_of(ckpt) == existing.get("attempt") and ckpt["epoch"] == cfg.optim.epochs:
            if main:
                finalize(paths.checkpoint_dir)
            unfinished = False
    if force:
        if main:
            paths.checkpoint.unlink(missing_ok=True)
    elif unfinished and not resume:
        if existing is None:
            raise RunStateError(
                f"an unfinished run of this config has a checkpoint at {paths.checkpoint}; "
                f"pass --resume to continue it or --force to start over")
        console.print(f"[yellow]skip[/] {paths.run_id}: record exists ({paths.record}); an "
                      f"unfinished re-run's checkpoint is at {paths.checkpoint} (--resume "
                      f"continues it, --force starts over)")
        return existing
    elif existing is not None and not unfinished:
        console.print(f"[yellow]skip[/] {paths.run_id}: record exists ({paths.record}); "
                      f"--force re-runs it")
        return existing
    resuming = resume and not force and unfinished
    if resuming:
        saved = world_size_of(read_checkpoint(paths.checkpoint, mmap=True))
        if saved != world:
            raise RunStateError(world_size_mismatch(paths.checkpoint, saved, world))
    elif resume and not force and note_fresh_start:
        other = _checkpoint_of_other_world_size(cfg, data, store, world)
        if other is not None:
            raise RunStateError(world_size_mismatch(*other, world))

    evaluator = build_evaluator(data, cfg, settings)
    evaluator.preflight()
    if main:  # every image decoded once, by rank 0 (the ranks read the same files)
        check_openable(data)
    console.print(f"[bold]{paths.run_id}[/] on {data.name} ({data.root}): "
                  f"{len(data.train)} train images / {data.num_train_pids} ids, "
                  f"{len(data.query)} query, {len(data.gallery)} gallery; device {settings.device}"
                  + (f" x {world} processes" if world > 1 else ""))
    if cfg.model.pretrained is None:
        console.print("[yellow]note[/]: backbone starts from random init (model.pretrained: null)")
    # Before seeding: a named source may make its weights first (the synthetic trunk: on
    # rank 0 alone, as one process, while the others wait; they then find it made).
    with distributed.local_only():
        description = pretrained_description(cfg)
    if description is not None:
        console.print(f"[bold]backbone[/] {description}", highlight=False, soft_wrap=True)
    if resume and not resuming and not force and note_fresh_start:
        console.print(f"[yellow]note[/]: --resume, but {paths.run_id} has no checkpoint to "
                      f"continue (a changed --set or config is another run id): training "
                      f"from scratch")
    return _Prepared(settings, data=data, identity=identity, store=store, paths=paths,
                     resuming=resuming, evaluator=evaluator, description=description)


def _checkpoint_of_other_world_size(cfg: RunConfig, data: ReIDData, store: RunStore,
                                    world: int) -> tuple[Path, int] | None:
    """An unfinished checkpoint of this config and data written with another world size
    (its run id is the one ``cfg`` would have with that many processes), or None."""
    for path in sorted(store.checkpoints_dir.glob(f"{cfg.name}-seed{cfg.seed}-*/{LAST}")):
        try:
            ckpt = read_checkpoint(path, expected_hash=cfg.config_hash(), mmap=True)
        except (UnreadableWeightsError, WeightMismatchError):
            continue  # another config under the same name, or damage: not this run
        saved = world_size_of(ckpt)
        if saved != world and path.parent.name == run_id_of(cfg, data, saved):
            return path, saved
    return None


def build_evaluator(data: ReIDData, cfg: RunConfig, settings: DeviceSettings) -> RetrievalEvaluator:
    """The evaluator of ``data``'s protocol (CUHK03 classic or Market-style), with its
    gt_bbox images for multi-query; the classic protocol's gallery sampling uses the run seed."""
    return RetrievalEvaluator(data.query, data.gallery, cfg.data, cfg.eval, settings,
                              gt_bbox=data.extras.get("gt_bbox"),
                              protocol=data.extras.get("protocol", "market"), seed=cfg.seed)


def summary_table(record: dict[str, Any]) -> Table:
    """A readable table of a record's final metrics."""
    table = Table(title=f"{record['run_id']}  ({record['dataset']['name']}, "
                        f"{record['wall_time_s']:.0f} s, seed {record['seed']})")
    final = record["final"]
    metrics = [k for k, v in next(iter(final.values())).items() if isinstance(v, (int, float))]
    table.add_column("feature")
    for m in metrics:
        table.add_column(m, justify="right")
    for feat, vals in final.items():
        table.add_row(feat, *(f"{vals[m]:.2f}" for m in metrics))
    return table
