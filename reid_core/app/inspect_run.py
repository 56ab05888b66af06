"""Reload a finished run for inspection: record -> model -> features -> distances.

``python -m reid_core visualize`` draws from what :func:`load_run` returns. A run is found by
its record (``<out>/runs/<run_id>.json``); its model is rebuilt from the record's config, the
weights come from ``<out>/checkpoints/<run_id>/last.pt`` (read with ``weights_only=True``,
loaded strictly), and query/gallery features are extracted with the record's eval settings
(feature, L2 normalisation, flip, distance, AP definition), as the evaluator did.

A record without its checkpoint (checkpoints are not in git) still yields its CMC curve when
the record stores one (``final[feature]["CMC"]``); ranked lists then fail with a
:class:`MissingCheckpointError` saying where the checkpoint was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_core.config import RunConfig, config_from_dict
from reid_core.data.base import ImageItem
from reid_core.engine.checkpoint import finished_checkpoint, read_checkpoint
from reid_core.app.experiment import build_evaluator, load_data
from reid_core.metrics.rank import evaluate_rank
from reid_core.models import build_model, head_feature_names, load_state_strict
from reid_core.results.store import RunStore, read_record, record_file, record_ids
from reid_core.utils.device import DeviceSettings, resolve_device

#: Length of a recomputed CMC curve (the evaluator stores ranks 1..50 too).
CMC_MAX_RANK = 50
#: Recomputed metrics further than this (percentage points) from the record get a note:
#: CPU evaluation is deterministic, CUDA/AMP may move a rank by a hair.
METRIC_TOLERANCE = 0.1


class RunNotFoundError(FileNotFoundError):
    """No run record matches the given run id or path."""


class MissingCheckpointError(FileNotFoundError):
    """The run's checkpoint is not where ``train`` writes it."""


@dataclass
class Retrieval:
    """Everything a ranked-list figure needs, for one feature of one run."""

    feature: str
    query: list[ImageItem]
    gallery: list[ImageItem]
    distmat: np.ndarray  #: (num_query, num_gallery) float32, the evaluator's distances
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray
    ap_mode: str


@dataclass
class RunView:
    """A run loaded for inspection (see :func:`load_run`)."""

    run_id: str
    record_path: Path
    record: dict[str, Any]
    config: RunConfig
    feature: str  #: the feature of :attr:`retrieval` and of the single-curve plots
    checkpoint: Path  #: where the checkpoint is (or was expected)
    #: ``{feature: CMC in percent, ranks 1..}``; recomputed from the checkpoint when it was
    #: loaded, else taken from the record (which may hold none).
    cmc: dict[str, list[float]] = field(default_factory=dict)
    cmc_source: str = "none"  #: ``"checkpoint"``, ``"record"`` or ``"none"``
    retrieval: Retrieval | None = None
    notes: list[str] = field(default_factory=list)  #: things the user should know

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def require_retrieval(self) -> Retrieval:
        """The ranked-list data, or a :class:`MissingCheckpointError` saying why not."""
        if self.retrieval is None:
            raise missing_checkpoint_error(self.run_id, self.checkpoint, self.record_path)
        return self.retrieval

    def require_cmc(self, feature: str | None = None) -> list[float]:
        """The CMC curve (percent) of ``feature`` (default: :attr:`feature`)."""
        feature = feature or self.feature
        if feature in self.cmc:
            return self.cmc[feature]
        if not self.has_checkpoint:
            raise missing_checkpoint_error(
                self.run_id, self.checkpoint, self.record_path,
                extra=f"and its record holds no CMC curve for {feature!r} (only the summary "
                      f"ranks in final.{feature}), so there is nothing to draw")
        raise KeyError(f"run {self.run_id}: no CMC curve for feature {feature!r}; "
                       f"available: {', '.join(self.cmc) or 'none'}")


def missing_checkpoint_error(run_id: str, checkpoint: Path, record_path: Path,
                             extra: str = "") -> MissingCheckpointError:
    msg = (f"run {run_id}: no checkpoint at {checkpoint} "
           f"(expected beside its record {record_path}, in <out>/checkpoints/<run_id>/final.pt)"
           + (f", {extra}" if extra else "")
           + ". `python -m reid_core train` writes it there; checkpoints are not in git, so "
             "re-train this config (train --force) or copy final.pt from the machine that "
             "trained it.")
    return MissingCheckpointError(msg)


def resolve_run(run: str | Path, runs_dir: str | Path = "results/runs") -> Path:
    """The record file of ``run``: a path to a ``.json`` record, a run id in ``runs_dir``, or
    an unambiguous prefix of one (e.g. ``rga_sc-seed0``; when it matches several records of the
    same config and seed, the newest).

    Raises:
        RunNotFoundError: no such record (the message lists close matches), or an ambiguous
            prefix (it lists the candidates).
    """
    as_path = Path(run)
    if as_path.suffix == ".json" or as_path.is_file():
        if not as_path.is_file():
            raise RunNotFoundError(f"run record not found: {as_path}")
        return as_path
    runs_dir = Path(runs_dir)
    exact = record_file(runs_dir, str(run))
    if exact.is_file():
        return exact
    ids = record_ids(runs_dir)
    if not ids:
        raise RunNotFoundError(
            f"unknown run {str(run)!r}: no run records in {runs_dir} "
            f"(`python -m reid_core train --out OUT` writes them to OUT/runs; pass --runs)")
    # "name-seed0" -> "name-seed0-<hash>"; a whole-component prefix wins over a partial one
    # (so "rga_s" means rga_s-seed*, not also rga_s_par_c-*).
    prefixed = ([i for i in ids if i.startswith(f"{run}-")]
                or [i for i in ids if i.startswith(str(run))])
    if len(prefixed) == 1:
        return record_file(runs_dir, prefixed[0])
    newest = _newest_of_one_run(runs_dir, prefixed)
    if newest is not None:
        return newest
    if len(prefixed) > 1:
        more = " ..." if len(prefixed) > 10 else ""
        raise RunNotFoundError(f"run {str(run)!r} is ambiguous in {runs_dir}: matches "
                               f"{', '.join(prefixed[:10])}{more}")
    close = difflib.get_close_matches(str(run), ids, n=5, cutoff=0.5)
    hint = (f"close matches: {', '.join(close)}" if close
            else f"{len(ids)} records there, e.g. {', '.join(ids[:5])}")
    raise RunNotFoundError(f"unknown run {str(run)!r} in {runs_dir}; {hint}")


def _newest_of_one_run(runs_dir: Path, ids: list[str]) -> Path | None:
    """When every match is a record of the same config name and seed (the same row re-run on
    newer data or a changed recipe: the report keeps only the newest), the newest of them;
    else None (a real ambiguity between rows or seeds)."""
    if len(ids) < 2:
        return None
    found = []
    for run_id in ids:
        path = record_file(runs_dir, run_id)
        try:
            rec = read_record(path)
        except ValueError:
            return None
        found.append(((rec.get("config_name"), rec.get("seed")), str(rec.get("finished_at", "")),
                      path))
    if len({key for key, _, _ in found}) != 1:
        return None
    return max(found, key=lambda f: f[1])[2]


def load_run(
    record_path: str | Path,
    *,
    feature: str | None = None,
    ranked: bool = True,
    device: str = "auto",
    data_root: str | Path | None = None,
) -> RunView:
    """Load a run from its record; recompute features and distances when useful.

    Args:
        record_path: the run's record (see :func:`resolve_run`).
        feature: a test feature of the run's head (BNNeck ``after_bn`` / ``before_bn``, PCB
            ``parts_pooled`` / ``parts_reduced``); default: the record's primary feature.
        ranked: ranked lists are wanted, so load the model when its checkpoint exists. With
            ``False`` the record's CMC is used when it has one (nothing is recomputed).
        device: for feature extraction (``"auto"``, ``"cpu"``, ``"cuda"``...).
        data_root: dataset root; default: the root the run used (from the record) when it
            still exists, else the config's / the synthetic cache.

    Returns:
        a :class:`RunView`. A missing checkpoint is not an error here: ``retrieval`` is then
        ``None`` and :meth:`RunView.require_retrieval` raises.
    """
    record_path = Path(record_path)
    record = read_record(record_path)
    for key in ("run_id", "config", "final"):
        if key not in record:
            raise ValueError(f"{record_path}: not a run record (no {key!r} key); expected a "
                             f"file written by `python -m reid_core train`")
    cfg = config_from_dict(record["config"], str(record_path))
    run_id = record["run_id"]
    feature = feature or record.get("primary_feature") or cfg.eval.features[0]
    features = head_feature_names(cfg.model.name)  # what the run's model returns
    if feature not in features:
        raise ValueError(f"feature {feature!r} is not one of {', '.join(features)} (the "
                         f"features of model {cfg.model.name!r})")
    checkpoint = run_checkpoint(record_path, record)
    view = RunView(run_id=run_id, record_path=record_path, record=record, config=cfg,
                   feature=feature, checkpoint=checkpoint)

    record_cmc = _record_cmcs(record)
    if checkpoint.is_file() and (ranked or feature not in record_cmc):
        _recompute(view, data_root, device)
    else:
        view.cmc, view.cmc_source = record_cmc, "record" if record_cmc else "none"
        if not checkpoint.is_file():
            view.notes.append(f"no checkpoint at {checkpoint}: "
                              + ("CMC from the record; no ranked lists" if record_cmc
                                 else "no CMC curve in the record, no ranked lists"))
    return view


def run_checkpoint(record_path: Path, record: dict[str, Any]) -> Path:
    """The checkpoint holding the weights ``record`` was evaluated with, or where ``final.pt``
    is expected when there is none (see :func:`~reid_core.engine.checkpoint.finished_checkpoint`:
    a checkpoint of an unfinished later re-run is an error, never used in its place)."""
    paths = RunStore.holding(record_path).run(record["run_id"])
    if not paths.final_checkpoint.is_file() and not paths.checkpoint.is_file():
        return paths.final_checkpoint
    return finished_checkpoint(paths.checkpoint_dir, record)


def _record_cmcs(record: dict[str, Any]) -> dict[str, list[float]]:
    """``final[feature]["CMC"]`` lists (percent, ranks 1..) the evaluator may have stored."""
    out = {}
    for feat, vals in record.get("final", {}).items():
        curve = vals.get("CMC") if isinstance(vals, dict) else None
        if isinstance(curve, list) and curve:
            out[feat] = [float(v) for v in curve]
    return out


def load_trained_model(cfg: RunConfig, checkpoint: Path, num_classes: int,
                       settings: DeviceSettings, config_hash: str | None) -> tuple[nn.Module, int]:
    """The model of ``cfg`` with the weights of ``checkpoint`` (strict, ``weights_only``; the
    checkpoint must have been written by ``config_hash``), on ``settings.device``; and the
    epoch the checkpoint was written after."""
    # The checkpoint overwrites every weight, so the ImageNet init is skipped (no download).
    model_cfg = dataclasses.replace(cfg.model, pretrained=None)
    model = build_model(model_cfg, num_classes, (cfg.data.height, cfg.data.width))
    ckpt = read_checkpoint(checkpoint, expected_hash=config_hash)
    load_state_strict(model, ckpt["model"], str(checkpoint))
    return model.to(settings.device), int(ckpt.get("epoch", -1))


def _recompute(view: RunView, data_root: str | Path | None, device: str) -> None:
    """Rebuild the model, load the checkpoint, extract features, compute distances + CMC."""
    cfg, record = view.config, view.record
    settings = resolve_device(device)
    data = load_data(cfg, _data_root(record, data_root))
    _check_same_splits(view, data.summary())

    model, _ = load_trained_model(cfg, view.checkpoint, data.num_train_pids, settings,
                                      record.get("config_hash"))
    ev = cfg.eval
    if view.feature not in ev.features:
        raise ValueError(f"--feature {view.feature}: run {record['run_id']} evaluated "
                         f"{', '.join(ev.features)} (eval.features)")
    # The evaluator's own distances: multi-query pooling and re-ranking included, as evaluated.
    evaluator = build_evaluator(data, cfg, settings)
    dists, (q_pids, g_pids, q_cams, g_cams) = evaluator.distances(model)
    for feat, dist in dists.items():
        dist = dist.numpy() if isinstance(dist, torch.Tensor) else np.asarray(dist)
        cmc, m_ap = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams,
                                  max_rank=CMC_MAX_RANK, ap_mode=ev.ap_mode)
        view.cmc[feat] = [round(100 * float(v), 4) for v in cmc]
        _compare_with_record(view, feat, view.cmc[feat], 100 * m_ap)
        if feat == view.feature:
            view.retrieval = Retrieval(feat, list(data.query), list(data.gallery), dist,
                                       q_pids, g_pids, q_cams, g_cams, ev.ap_mode)
    view.cmc_source = "checkpoint"


def _data_root(record: dict[str, Any], data_root: str | Path | None) -> str | Path | None:
    if data_root is not None:
        return data_root
    used = record.get("dataset", {}).get("root")
    return used if used and Path(used).is_dir() else None


def _check_same_splits(view: RunView, summary: dict[str, dict[str, int]]) -> None:
    recorded = view.record.get("dataset", {}).get("splits")
    if recorded and recorded != summary:
        raise ValueError(
            f"run {view.run_id}: the dataset found now differs from the one it was evaluated "
            f"on (record {view.record_path}: {recorded}; now: {summary}); pass --data-root "
            f"pointing at the run's dataset ({view.record.get('dataset', {}).get('root')})")


def _compare_with_record(view: RunView, feat: str, cmc: list[float], m_ap: float) -> None:
    """Note any recomputed metric that does not match the record (wrong checkpoint/data?)."""
    recorded = view.record.get("final", {}).get(feat)
    if not isinstance(recorded, dict):
        return
    now = {"mAP": m_ap, **{f"R{r}": cmc[r - 1] for r in range(1, len(cmc) + 1)}}
    off = [f"{k} {float(v):.2f} -> {now[k]:.2f}" for k, v in recorded.items()
           if k in now and isinstance(v, (int, float)) and abs(now[k] - v) > METRIC_TOLERANCE]
    if off:
        view.notes.append(f"{feat}: recomputed metrics differ from the record ("
                          + ", ".join(off) + "); the checkpoint or dataset may not be the "
                          "ones the record was made with")
