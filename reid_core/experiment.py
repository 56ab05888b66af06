"""One run, end to end: data -> model -> train -> evaluate -> record.

``run_experiment`` is what ``python -m reid_core train`` and the reproduce scripts call. A run
is identified by its config (name, seed, hash): a finished run's record is reused unless
``force``; an interrupted run continues from its checkpoint with ``resume``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from reid_core.config import RunConfig
from reid_core.data import ReIDData, build_dataset, resolve_dataset_root
from reid_core.engine.trainer import NonFiniteLossError, fit
from reid_core.metrics.evaluator import RetrievalEvaluator
from reid_core.models import WeightMismatchError, build_model
from reid_core.results.records import (
    RECORD_FORMAT, command_line, find_record, software_versions, utc_now, write_record)
from reid_core.utils.device import (
    DeviceSettings, peak_memory_mb, reset_peak_memory, resolve_device)
from reid_core.utils.seed import make_deterministic, seed_everything


class RunStateError(RuntimeError):
    """An unfinished run's checkpoint exists and neither resume nor force was given."""


#: Problems a user can fix (bad config, dataset layout, weights, run state, diverged loss):
#: command-line entry points print their message instead of a traceback. ConfigError and the
#: dataset errors are ValueErrors.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, KeyError, FileNotFoundError, WeightMismatchError, NonFiniteLossError,
    RunStateError)


def describe_error(e: BaseException) -> str:
    """``Type: message`` for a user error (a KeyError's repr would add quotes around it)."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return f"{type(e).__name__}: {msg}"


@dataclass
class RunPaths:
    out: Path
    run_id: str

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoints" / self.run_id / "last.pt"


def load_data(cfg: RunConfig, data_root: str | Path | None) -> ReIDData:
    """Resolve the dataset root (``--data-root`` > ``data.root`` > synthetic cache) and load."""
    root = data_root if data_root is not None else cfg.data.root
    return build_dataset(cfg.data.dataset, resolve_dataset_root(cfg.data.dataset, root),
                         split=cfg.data.split)


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
) -> dict[str, Any]:
    """Train and evaluate ``cfg``; write and return its run record.

    Args:
        data_root: dataset root (see :func:`load_data`).
        out: records go to ``<out>/runs/<run_id>.json``, checkpoints to
            ``<out>/checkpoints/<run_id>/last.pt``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        resume: continue an interrupted run from its checkpoint.
        force: re-run even if a record exists (and discard an old checkpoint).
        profile: the reproduce profile this run belongs to (``"smoke"``/``"paper"``), recorded.
    """
    console = console or Console()
    paths = RunPaths(Path(out), cfg.run_id)
    existing = find_record(paths.out, cfg.run_id)
    if existing is not None and not force:
        console.print(f"[yellow]skip[/] {cfg.run_id}: record exists "
                      f"({paths.out / 'runs' / (cfg.run_id + '.json')}); --force re-runs it")
        return existing
    if paths.checkpoint.is_file() and not resume:
        if not force:
            raise RunStateError(
                f"an unfinished run of this config has a checkpoint at {paths.checkpoint}; "
                f"pass --resume to continue it or --force to start over")
        shutil.rmtree(paths.checkpoint.parent)

    settings = resolve_device(device)
    seed_everything(cfg.seed)
    make_deterministic()
    reset_peak_memory(settings)
    data = load_data(cfg, data_root)
    console.print(f"[bold]{cfg.run_id}[/] on {data.name} ({data.root}): "
                  f"{len(data.train)} train images / {data.num_train_pids} ids, "
                  f"{len(data.query)} query, {len(data.gallery)} gallery; device {settings.device}")
    if cfg.model.pretrained is None:
        console.print("[yellow]note[/]: backbone starts from random init (model.pretrained: null)")

    model = build_model(cfg.model, data.num_train_pids, (cfg.data.height, cfg.data.width))
    evaluator = build_evaluator(data, cfg, settings)
    started, t0 = utc_now(), time.perf_counter()
    resumed_from = _checkpoint_epoch(paths.checkpoint) if resume else None
    history = fit(model, data.train, cfg, settings, paths.checkpoint, resume=resume,
                  evaluate=evaluator, console=console)
    final = evaluator(model)
    wall = time.perf_counter() - t0

    record = {
        "format_version": RECORD_FORMAT,
        "run_id": cfg.run_id,
        "config_name": cfg.name,
        "config_hash": cfg.config_hash(),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "dataset": {"name": data.name, "root": str(data.root), "splits": data.summary()},
        "device": settings.describe(),
        "versions": software_versions(),
        "command": command_line(),
        "started_at": started,
        "finished_at": utc_now(),
        "wall_time_s": round(wall, 2),
        "peak_memory": peak_memory_mb(settings),
        "resumed_from_epoch": resumed_from,
        "pretrained": cfg.model.pretrained,
        "profile": profile,
        "metrics_unit": "percent",
        "history": history,
        "final": final,
        # The feature a paper table is compared on: the first of eval.features.
        "primary_feature": cfg.eval.features[0],
    }
    path = write_record(paths.out, record)
    console.print(summary_table(record))
    console.print(f"record written to {path}")
    return record


def _checkpoint_epoch(path: Path) -> int | None:
    if not path.is_file():
        return None
    from reid_core.engine.checkpoint import read_checkpoint
    return int(read_checkpoint(path)["epoch"])


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
