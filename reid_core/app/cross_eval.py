"""Evaluate a trained run on another dataset's query/gallery split (no training).

DAAF Table 3 evaluates a model trained on Market-1501 on Partial-REID and Partial-iLIDS; the
same applies to any transfer setting (Market -> Duke, ...). The run's checkpoint is loaded
strictly, the run's own eval settings are used (features, distance, normalisation, flip,
AP formula), except what the user sets: the ranks reported (DAAF: 1 and 3), multi-query and
re-ranking; the protocol is the target dataset's (CUHK03 classic for a classic split). The result
is an ``evaluation`` record next to the run records::

    <out>/evaluations/<run_id>--on--<dataset>[--multi_mean|--multi_max][--rerank].json

    python -m reid_core evaluate RUN --dataset partial-reid --data-root ~/datasets --ranks 1 3
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from reid_core.config import check_ranks, config_from_dict
from reid_core.data import build_dataset, resolve_dataset_root
from reid_core.data.check import check_openable
from reid_core.app.experiment import build_evaluator
from reid_core.app.inspect_run import (
    load_trained_model, missing_checkpoint_error, resolve_run, run_checkpoint)
from reid_core.results.record_types import EvaluationRecord
from reid_core.results.records import software_versions, utc_now
from reid_core.results.store import RunStore, read_record
from reid_core.utils.device import resolve_device


def evaluate_run_on(run: str | Path, dataset: str, *, data_root: str | Path | None = None,
                    runs_dir: str | Path = "results/runs", ranks: list[int] | None = None,
                    query_mode: str | None = None, rerank: bool | None = None,
                    device: str = "auto", console: Console | None = None) -> dict[str, Any]:
    """Evaluate the trained ``run`` (record path, run id or unique prefix) on ``dataset``;
    write and return the evaluation record (metrics in percent, as in run records).

    ``ranks``, ``query_mode`` (``eval.query_mode``) and ``rerank`` (``eval.rerank``, with the
    run's k1/k2/lambda) override the run's eval settings when given; ``dataset`` may be the
    run's own (e.g. to add multi-query or re-ranked numbers to a finished run)."""
    console = console or Console()
    if ranks is not None:
        ranks = check_ranks(ranks, "--ranks")
    settings = resolve_device(device)
    record_path = resolve_run(run, runs_dir)
    record = read_record(record_path)
    cfg = config_from_dict(record["config"], str(record_path))
    checkpoint = run_checkpoint(record_path, record)
    if not checkpoint.is_file():
        raise missing_checkpoint_error(record["run_id"], checkpoint, record_path)

    t0 = time.perf_counter()
    target = build_dataset(dataset, resolve_dataset_root(dataset, data_root))
    check_openable(target)
    num_classes = record["dataset"]["splits"]["train"]["ids"]
    model, epoch = load_trained_model(cfg, checkpoint, num_classes, settings,
                                      record["config_hash"])

    eval_cfg = dataclasses.replace(
        cfg.eval, ranks=list(ranks or cfg.eval.ranks),
        query_mode=query_mode or cfg.eval.query_mode,
        rerank=cfg.eval.rerank if rerank is None else rerank)
    run_cfg = dataclasses.replace(cfg, eval=eval_cfg,
                                  data=dataclasses.replace(cfg.data, dataset=dataset))
    console.print(f"[bold]{record['run_id']}[/] (trained on {record['dataset']['name']}) "
                  f"on {target.name} ({target.root}): {len(target.query)} query, "
                  f"{len(target.gallery)} gallery images")
    evaluator = build_evaluator(target, run_cfg, settings)
    evaluator.preflight()
    final = evaluator(model, per_query=True)
    evaluation = EvaluationRecord(
        run_id=record["run_id"], config_name=record["config_name"],
        config_hash=record["config_hash"], seed=record["seed"],
        trained_on=record["dataset"]["name"], attempt=record.get("attempt"),
        dataset={"name": target.name, "root": str(target.root), "identity": target.identity(),
                 "splits": target.summary()},
        protocol=target.extras.get("protocol", "market"), eval=dataclasses.asdict(eval_cfg),
        checkpoint_epoch=epoch, device=settings.describe(),
        versions=software_versions(), finished_at=utc_now(),
        wall_time_s=round(time.perf_counter() - t0, 2), metrics_unit="percent", final=final)
    out = evaluation.to_dict()
    tags = [t for t, on in ((eval_cfg.query_mode, eval_cfg.query_mode != "single"),
                            ("rerank", eval_cfg.rerank)) if on]
    store = RunStore.holding(record_path)  # evaluations go beside the run's record
    path = _evaluation_path(store.evaluation_path(record["run_id"], target.name, tags), out,
                            console)
    store.write_evaluation(path, evaluation)
    for feat, vals in final.items():
        shown = "  ".join(f"{k} {v:.2f}" for k, v in vals.items() if isinstance(v, float))
        console.print(f"  {feat}: {shown}")
    console.print(f"evaluation record: {path}")
    return out


def _evaluation_path(path: Path, new: dict[str, Any], console: Console) -> Path:
    """Where ``new`` goes: ``path``, unless the evaluation there was made on another copy of the
    data (then beside it, ``--data-<digest>``: never written over); a replaced evaluation is
    named in a note saying what changed (ranks, re-trained weights)."""
    old = _stored(path)
    if old is None:
        return path
    old_data, new_data = old.get("dataset") or {}, new["dataset"]
    if old_data.get("identity") not in (None, new_data["identity"]):
        digest = hashlib.sha256(json.dumps(new_data["identity"], sort_keys=True)
                                .encode()).hexdigest()[:8]
        moved = RunStore.data_variant(path, digest)
        console.print(f"[yellow]note[/]: {path} holds an evaluation on other data "
                      f"({old_data.get('root')}); this one goes to {moved.name}",
                      highlight=False, soft_wrap=True)
        return _evaluation_path(moved, new, console)
    changes = []
    if (old.get("eval") or {}).get("ranks") != new["eval"]["ranks"]:
        changes.append(f"ranks {(old.get('eval') or {}).get('ranks')} -> {new['eval']['ranks']}")
    if old.get("attempt") != new.get("attempt"):
        changes.append("weights of another training attempt")
    console.print(f"[yellow]note[/]: replacing the earlier evaluation at {path}"
                  + (f" ({'; '.join(changes)})" if changes else " (same settings)"),
                  highlight=False, soft_wrap=True)
    return path


def _stored(path: Path) -> dict[str, Any] | None:
    """The evaluation record at ``path``; None if there is none (an unreadable one counts as
    an evaluation to replace: ``{}``)."""
    if not path.is_file():
        return None
    try:
        return read_record(path)
    except (OSError, ValueError):  # RecordError is a ValueError
        return {}
