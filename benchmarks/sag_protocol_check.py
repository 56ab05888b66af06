"""Check SAG's two evaluation protocols by hand on trained smoke runs.

For each run the script loads the trained weights, extracts the test features with the suite's
extractor (the model's own test feature, flip TTA as configured), then recomputes every metric
with plain per-query Python written from the protocol definitions, sharing no code with
:mod:`reid_core.metrics`, and compares it with the numbers the suite recorded:

* **Market-1501 multi query** (``multi_mean``, SAG's ``evaluate.py`` / the Market MATLAB code):
  each query's feature is the mean of the L2-normalised features of the ``gt_bbox`` images of
  its identity and camera, normalised again; the gallery is ranked by cosine similarity; junk
  (pid -1) and the query's own identity in its own camera are skipped; R-k from the first true
  match; AP by the trapezoid rule of ``compute_AP.m``. Compared with the run's multi-query
  evaluation record (``results/runs/evaluations``), and the single-query case with the run
  record itself.
* **CUHK03 classic** (single-shot, ``eval.cuhk03_repeats`` gallery samplings): (a) *replayed*:
  the same uniform draws as the suite (``numpy.random.default_rng(seed).random((queries,
  repeats, identities))``), one gallery image per identity picked, rank of the true match by
  counting the sampled impostors closer than it: must equal the record; (b) *expected*: the
  exact expectation over all samplings (per query, the number of impostor identities ranked
  before the sampled match is a Poisson-binomial variable, computed by dynamic programming),
  which the sampled estimate must approach within its sampling error.

    python benchmarks/sag_protocol_check.py            # the committed smoke runs (seed 0)
    python benchmarks/sag_protocol_check.py --runs <run id> ...

Writes ``results/benchmarks/sag_protocol_check.md``; needs the runs' checkpoints
(``results/checkpoints/``, kept locally by the runs that made them).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reid_core.app.experiment import build_evaluator
from reid_core.app.inspect_run import load_trained_model, resolve_run, run_checkpoint
from reid_core.config import config_from_dict
from reid_core.data import build_dataset, resolve_dataset_root
from reid_core.data.transforms import build_test_transform
from reid_core.engine.features import extract_features
from reid_core.resources import default_results_dir
from reid_core.results.store import RunStore, load_records, read_record
from reid_core.utils.device import resolve_device
from reid_core.utils.io import atomic_write_text

DEFAULT_RUNS = ("sag_d4-seed0-016bddb54180",   # synthetic-small (Market protocol)
                "sag_d4-seed0-3c12ee5b916a")   # synthetic-small-cuhk03-classic
RANKS = (1, 5, 10)


# --------------------------------------------------------------------------- Market, by hand


def cosine_distance(q: torch.Tensor, g_normalised: torch.Tensor) -> np.ndarray:
    """1 − cos in float32, the precision the suite ranks in: float32 distances tie where float64
    ones would not, and a tie is broken by gallery index, so another precision would move a few
    ranks (a few of ~10,000 sampled CUHK03 galleries here)."""
    return (1.0 - F.normalize(q.float(), dim=1) @ g_normalised.float().T).numpy()


def market_by_hand(dist: np.ndarray, q_ids: list[tuple[int, int]],
                   g_ids: list[tuple[int, int]]) -> dict[str, float]:
    """R-k and trapezoid mAP (percent) from a (Q, G) distance, one query at a time."""
    hits = {k: 0 for k in RANKS}
    ap_sum, valid = 0.0, 0
    for qi, (qp, qc) in enumerate(q_ids):
        order = sorted(range(len(g_ids)), key=lambda j: (dist[qi, j], j))
        kept = [j for j in order
                if g_ids[j][0] != -1 and not (g_ids[j][0] == qp and g_ids[j][1] == qc)]
        good = [r for r, j in enumerate(kept) if g_ids[j][0] == qp]  # 0-based ranks
        if not good:
            continue
        valid += 1
        for k in RANKS:
            hits[k] += good[0] < k
        # compute_AP.m: the trapezoid between the precision before and at each true match.
        ap, n = 0.0, len(good)
        for i, r in enumerate(good):
            old_precision = i / r if r else 1.0
            precision = (i + 1) / (r + 1)
            ap += (1 / n) * (old_precision + precision) / 2
        ap_sum += ap
    return {**{f"R{k}": 100 * hits[k] / valid for k in RANKS}, "mAP": 100 * ap_sum / valid}


def pooled_queries(q_ids: list[tuple[int, int]], bf: torch.Tensor,
                   b_ids: list[tuple[int, int]]) -> torch.Tensor:
    """Multi-query features: per query, the normalised mean of its (pid, camera) gt_bbox
    images' normalised features."""
    bf = F.normalize(bf, dim=1)
    rows = []
    for qp, qc in q_ids:
        members = [i for i, ids in enumerate(b_ids) if ids == (qp, qc)]
        rows.append(F.normalize(bf[members].mean(0), dim=0))
    return torch.stack(rows)


# --------------------------------------------------------------------------- CUHK03 classic


def _gallery_identities(g_ids: list[tuple[int, int]]) -> tuple[list[int], dict[int, list[int]]]:
    """Gallery pids in ascending order (the suite's draw order), and each one's images in
    gallery order."""
    pids = sorted({p for p, _ in g_ids})
    return pids, {p: [j for j, (gp, _) in enumerate(g_ids) if gp == p] for p in pids}


def classic_replayed(dist: np.ndarray, q_ids: list[tuple[int, int]],
                     g_ids: list[tuple[int, int]], repeats: int, seed: int) -> dict[str, float]:
    """The suite's sampling, replayed with its documented draws, one (query, repeat) at a time."""
    pids, by_id = _gallery_identities(g_ids)
    u = np.random.default_rng(seed).random((len(q_ids), repeats, len(pids)))
    ranks = []
    for qi, (qp, qc) in enumerate(q_ids):
        own = [j for j in by_id.get(qp, []) if g_ids[j][1] != qc]
        if not own:
            continue
        for r in range(repeats):
            picked = {}
            for k, p in enumerate(pids):
                pool = own if p == qp else by_id[p]
                picked[p] = pool[int(u[qi, r, k] * len(pool))]
            m = picked[qp]
            # ties: the lower gallery index ranks first
            before = sum(1 for p, j in picked.items() if p != qp
                         and (dist[qi, j] < dist[qi, m] or (dist[qi, j] == dist[qi, m] and j < m)))
            ranks.append(before + 1)
    return _classic_metrics(np.bincount(ranks), len(ranks))


def classic_expected(dist: np.ndarray, q_ids: list[tuple[int, int]],
                     g_ids: list[tuple[int, int]], repeats: int) -> dict[str, str]:
    """The exact expectation over all single-shot samplings (uniform per identity), with the
    standard error of a ``repeats``-sampling estimate: ``"48.6169 ± 0.1521"`` per metric."""
    pids, by_id = _gallery_identities(g_ids)
    per_query = []  # per valid query: the probability of each rank (index = rank)
    for qi, (qp, qc) in enumerate(q_ids):
        own = [j for j in by_id.get(qp, []) if g_ids[j][1] != qc]
        if not own:
            continue
        mass = np.zeros(len(pids) + 1)
        for m in own:  # the sampled true match, each with probability 1 / len(own)
            # P(impostor identity p's sample ranks before m) for each p; then the number
            # ranked before m is Poisson-binomial.
            before = np.array([1.0])
            for p in pids:
                if p == qp:
                    continue
                members = by_id[p]
                closer = sum(1 for j in members if dist[qi, j] < dist[qi, m]
                             or (dist[qi, j] == dist[qi, m] and j < m))
                prob = closer / len(members)
                before = np.append(before * (1 - prob), 0) + np.append(0, before * prob)
            mass[1 : len(before) + 1] += before / len(own)
        per_query.append(mass)
    masses = np.array(per_query)
    rank = np.arange(masses.shape[1], dtype=np.float64)
    rank[0] = 1.0
    values = {f"R{k}": (rank <= k) & (rank >= 1) for k in RANKS}
    values["mAP"] = np.where(rank == 1, 1.0, 0.5 / rank)
    values["mAP_standard"] = 1.0 / rank
    out = {}
    for metric, f in values.items():
        f = np.asarray(f, dtype=np.float64)
        f[0] = 0.0
        mean_q, square_q = masses @ f, masses @ f**2
        # Queries are fixed; each is averaged over `repeats` independent samplings.
        se = np.sqrt(np.sum(square_q - mean_q**2) / repeats) / len(masses)
        out[metric] = f"{100 * mean_q.mean():.4f} ± {100 * se:.4f}"
    return out


def _classic_metrics(mass: np.ndarray, n: float) -> dict[str, float]:
    """R-k and mAP (percent) from the count of each rank (index = rank, 1-based)."""
    mass = np.asarray(mass, dtype=np.float64)
    r = np.arange(len(mass), dtype=np.float64)
    r[0] = 1.0
    out = {f"R{k}": 100 * mass[1 : k + 1].sum() / n for k in RANKS}
    out["mAP"] = 100 * float((mass * np.where(r == 1, 1.0, 0.5 / r))[1:].sum()) / n
    out["mAP_standard"] = 100 * float((mass / r)[1:].sum()) / n
    return out


# --------------------------------------------------------------------------- driver


def _features(model: torch.nn.Module, items: list, cfg: Any, settings: Any, name: str
              ) -> torch.Tensor:
    """The test feature ``name`` of ``items`` as the suite extracts it (transform, flip TTA)."""
    feats, _, _ = extract_features(model, items, build_test_transform(cfg.data), device=settings,
                                   batch_size=cfg.eval.batch_size, flip=cfg.eval.flip,
                                   features=[name])
    return feats[name]


def _fmt(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.4f}"


def check_run(run: str, runs_dir: Path) -> tuple[list[list[str]], list[str]]:
    """The table lines of one run (protocol, metric, recorded, by hand on the suite's
    distances, by hand on by-hand distances) and notes (the distances' largest difference)."""
    path = resolve_run(run, runs_dir)
    record = read_record(path)
    cfg = config_from_dict(record["config"], str(path))
    settings = resolve_device("cpu")
    dataset = record["dataset"]["name"]
    data = build_dataset(dataset, resolve_dataset_root(dataset, None), split=cfg.data.split)
    model, _ = load_trained_model(cfg, run_checkpoint(path, record),
                                  record["dataset"]["splits"]["train"]["ids"], settings,
                                  record["config_hash"])
    name = record["primary_feature"]
    ids = lambda items: [(int(p), int(c)) for _, p, c in items]  # noqa: E731
    q_ids, g_ids = ids(data.query), ids(data.gallery)
    qf = _features(model, list(data.query), cfg, settings, name)
    gn = F.normalize(_features(model, list(data.gallery), cfg, settings, name), dim=1)

    def suite_distances(query_mode: str) -> np.ndarray:
        mode_cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval,
                                                                     query_mode=query_mode))
        dists, _ = build_evaluator(data, mode_cfg, settings).distances(model)
        return np.asarray(dists[name], dtype=np.float32)

    def compare(protocol: str, recorded: dict[str, float], on_suite: dict[str, Any],
                by_hand: dict[str, Any]) -> list[list[str]]:
        return [[run, protocol, metric, f"{recorded[metric]:.4f}", _fmt(on_suite[metric]),
                 _fmt(by_hand[metric])] for metric in on_suite]

    def spread(protocol: str, hand: np.ndarray, suite: np.ndarray) -> str:
        return (f"{run}, {protocol}: largest |distance by hand − the suite's| = "
                f"{float(np.abs(hand - suite).max()):.2e}")

    recorded = record["final"][name]
    if data.extras.get("protocol") == "cuhk03_classic":
        suite, hand = suite_distances("single"), cosine_distance(qf, gn)
        repeats, seed = cfg.eval.cuhk03_repeats, cfg.seed
        protocol = f"CUHK03 classic, {repeats} samplings replayed"
        lines = compare(protocol, recorded, classic_replayed(suite, q_ids, g_ids, repeats, seed),
                        classic_replayed(hand, q_ids, g_ids, repeats, seed))
        lines += compare("CUHK03 classic, exact expectation over all samplings (± standard "
                         f"error of {repeats} samplings)", recorded,
                         classic_expected(suite, q_ids, g_ids, repeats),
                         classic_expected(hand, q_ids, g_ids, repeats))
        return lines, [spread("CUHK03 classic", hand, suite)]
    suite, hand = suite_distances("single"), cosine_distance(qf, gn)
    lines = compare("Market single query", recorded, market_by_hand(suite, q_ids, g_ids),
                    market_by_hand(hand, q_ids, g_ids))
    notes = [spread("single query", hand, suite)]
    multi = [e for e in load_records(RunStore.holding(path).evaluations_dir)
             if e.get("run_id") == record["run_id"] and e.get("attempt") == record.get("attempt")
             and (e.get("eval") or {}).get("query_mode") == "multi_mean"
             and not (e.get("eval") or {}).get("rerank")]
    if not multi:
        return lines, notes + [f"{run}: no multi-query evaluation record; multi query not checked"]
    boxes = list(data.extras["gt_bbox"])
    pooled = pooled_queries(q_ids, _features(model, boxes, cfg, settings, name), ids(boxes))
    suite, hand = suite_distances("multi_mean"), cosine_distance(pooled, gn)
    lines += compare("Market multi query (mean over the query's gt_bbox track)",
                     multi[0]["final"][name], market_by_hand(suite, q_ids, g_ids),
                     market_by_hand(hand, q_ids, g_ids))
    return lines, notes + [spread("multi query", hand, suite)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS))
    p.add_argument("--out", default=str(default_results_dir()))
    args = p.parse_args(argv)
    out = Path(args.out)
    lines: list[list[str]] = []
    notes: list[str] = []
    for run in args.runs:
        print(f"checking {run} ...", flush=True)
        more, more_notes = check_run(run, out / "runs")
        lines, notes = lines + more, notes + more_notes
    header = ["run", "protocol", "metric", "recorded", "by hand, on the suite's distances",
              "by hand, on by-hand distances"]
    table = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    table += ["| " + " | ".join(line) + " |" for line in lines]
    text = "\n".join([
        "# SAG protocols checked by hand on trained smoke runs", "",
        "`python benchmarks/sag_protocol_check.py` (its docstring says what is recomputed and "
        "how). *On the suite's distances*: the by-hand protocol applied to the distance matrix "
        "the suite's evaluator ranks (features, multi-query pooling and cosine distance as "
        "the suite computes them): it checks the protocol (exclusions, sampling, ranks, AP) "
        "and must equal the record to its 4 decimals; the CUHK03 *exact expectation* must "
        "come within the sampling error of the recorded repeats. *On by-hand distances*: "
        "features pooled and distances computed by hand too (float32); a distance that "
        "differs in the last float32 bits can swap two nearly tied gallery images, so a "
        "metric may move by one query or sampled gallery.", "",
        *table, "", *(f"- {note}" for note in notes), ""])
    target = out / "benchmarks" / "sag_protocol_check.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, text)
    print(text)
    print(f"written: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
