"""k-reciprocal re-ranking side by side: the widely used dense implementations vs the lean one.

Usage::

    python benchmarks/compare_rerank.py            # Market size (all) + MSMT17 size (lean)
    python benchmarks/compare_rerank.py --skip-msmt

Writes ``results/benchmarks/rerank.md`` and ``rerank.csv`` (atomically).

Implementations (all k1 = 20, k2 = 6, lambda = 0.3, on ``benchmarks/synthetic_features``
problems: identity centres + noise, 256-d float32 features):

* ``dense-ranklist``: a faithful dense numpy port of zhunzhong07 ``re_ranking_ranklist.py``
  (also torchreid's ``re_ranking``): joint ``(Q+G)^2`` float32 matrix, full ``argsort``, dense
  ``V`` / ``V_qe`` and a dense Jaccard, same array operations in the same order so that its
  allocations are those of the original. Fed Euclidean distances from
  ``compute_distance_matrix`` (torch), as torchreid-style pipelines do.
* ``dense-ranklist-stable``: the same with ``np.argsort(..., kind="stable")`` -- only the
  order of exactly tied distances changes (the original's default argsort leaves it
  unspecified; the lean implementation documents the stable order).
* ``dense-bot``: the same port with BoT's ``utils/re_ranking.py`` front end (squared
  Euclidean of the joint features by one torch ``addmm``, not squared again) and BoT's float16
  storage of ``V``, ``V_qe`` and the Jaccard matrix.
* ``lean-features``: :func:`reid_core.metrics.rerank.re_ranking` from the features.
* ``lean-matrices``: :func:`reid_core.metrics.rerank.re_ranking_from_distances` on the same
  three float32 matrices as ``dense-ranklist`` (identical inputs: checks the algorithm at
  scale without GEMM rounding differences).

Measurement: each implementation runs in a **fresh subprocess**. It loads the features, runs a
warm-up on a 200 + 800 subset (numba compilation / caches, BLAS thread pools), ``gc``, then
resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``, which sets VmHWM to
the current VmRSS), reads VmRSS as the baseline, and times one call **including the distance
computation** (GEMM). Peak memory = VmHWM after the call minus that baseline, i.e. everything
the call itself made resident (distance matrices, output, temporaries); the absolute VmHWM
is reported too. (If clear_refs is unavailable the script falls back to ``ru_maxrss`` minus
the baseline, and says so.) The GEMM share is timed separately in the same process: the
dense ones time their distance calls inside the run; the lean one re-runs only its GEMM strips
(the upper block triangle of the joint Gram matrix) after the measured call. Wall times are
single runs on a shared 2-core machine; the 1-minute load average before/after is recorded.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_memory import reset_peak_rss, status_kb  # noqa: E402
from synthetic_features import MARKET, MSMT17, ProblemSize, make_problem  # noqa: E402

from reid_core.metrics.distance import compute_distance_matrix  # noqa: E402
from reid_core.metrics.rerank import (  # noqa: E402
    _BLOCK_ELEMENTS,
    re_ranking,
    re_ranking_from_distances,
)
from reid_core.utils.io import atomic_write_text  # noqa: E402

K1, K2, LAMBDA = 20, 6, 0.3
SIZES = {"market": MARKET, "msmt17": MSMT17}
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# the widely used dense algorithm (independent port; same dense arrays as the originals)
# ---------------------------------------------------------------------------------------------


def dense_core(holder: list, num_query: int, k1: int, k2: int, lam: float, v_dtype: type,
               scaled_copy: bool, argsort_kind: str | None = None) -> np.ndarray:
    """Zhong et al.'s algorithm on the joint (N, N) float32 original-distance matrix, dense.

    Mirrors the reference's allocations: normalised copy (ranklist: ``1. * x / max``, one more
    temporary; BoT: ``x / max``), zeros V then ``astype``, int64 argsort then int32, dense V_qe,
    a per-column inverted index, a dense (Q, N) Jaccard. The matrix comes in a one-element
    list so that this frame holds its only reference (as the reference rebinds its name).
    ``argsort_kind`` None is the reference's default (unstable) argsort.
    """
    original = holder.pop()
    n = original.shape[0]
    if scaled_copy:
        work = np.transpose(1.0 * original / np.max(original, axis=0))
    else:
        work = np.transpose(original / np.max(original, axis=0))
    del original
    V = np.zeros_like(work).astype(v_dtype)
    rank = np.argsort(work, kind=argsort_kind).astype(np.int32)
    half = int(np.around(k1 / 2.0))

    def recip(i: int, k: int) -> np.ndarray:
        fwd = rank[i, :k + 1]
        hits = np.where(rank[fwd, :k + 1] == i)[0]
        return fwd[hits]

    for i in range(n):
        core = recip(i, k1)
        expanded = core
        for c in core:
            cand = recip(c, half)
            if len(np.intersect1d(cand, core)) > 2.0 / 3 * len(cand):
                expanded = np.append(expanded, cand)
        expanded = np.unique(expanded)
        w = np.exp(-work[i, expanded])
        V[i, expanded] = w / np.sum(w)
    work = work[:num_query, ]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=v_dtype)
        for i in range(n):
            V_qe[i, :] = np.mean(V[rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del rank
    inv_index = [np.where(V[:, k] != 0)[0] for k in range(n)]
    jaccard = np.zeros_like(work, dtype=v_dtype)
    for i in range(num_query):
        acc = np.zeros(shape=[1, n], dtype=v_dtype)
        support = np.where(V[i, :] != 0)[0]
        for k in support:
            rows = inv_index[k]
            acc[0, rows] = acc[0, rows] + np.minimum(V[i, k], V[rows, k])
        jaccard[i] = 1 - acc / (2.0 - acc)
    final = jaccard * (1 - lam) + work * lam
    del work, V, jaccard
    return final[:num_query, num_query:]


def dense_ranklist(qf: np.ndarray, gf: np.ndarray, timings: dict,
                   argsort_kind: str | None = None) -> np.ndarray:
    t0 = time.perf_counter()
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    q_g = compute_distance_matrix(q, g).numpy()
    q_q = compute_distance_matrix(q, q).numpy()
    g_g = compute_distance_matrix(g, g).numpy()
    timings["gemm_s"] = time.perf_counter() - t0
    joint = np.concatenate([np.concatenate([q_q, q_g], axis=1),
                            np.concatenate([q_g.T, g_g], axis=1)], axis=0)
    holder = [np.power(joint, 2).astype(np.float32)]
    del joint  # the inputs stay alive, as in a caller of the reference function
    return dense_core(holder, q_g.shape[0], K1, K2, LAMBDA, np.float32, scaled_copy=True,
                      argsort_kind=argsort_kind)


def dense_ranklist_stable(qf: np.ndarray, gf: np.ndarray, timings: dict) -> np.ndarray:
    """dense-ranklist with ``np.argsort(..., kind="stable")``: only the tie rule changes."""
    return dense_ranklist(qf, gf, timings, argsort_kind="stable")


def dense_bot(qf: np.ndarray, gf: np.ndarray, timings: dict) -> np.ndarray:
    t0 = time.perf_counter()
    feat = torch.cat([torch.from_numpy(qf), torch.from_numpy(gf)])
    n = feat.size(0)
    sq = feat.pow(2).sum(dim=1, keepdim=True)
    distmat = sq.expand(n, n) + sq.expand(n, n).t()
    distmat.addmm_(feat, feat.t(), beta=1, alpha=-2)
    timings["gemm_s"] = time.perf_counter() - t0
    del feat
    # BoT keeps `distmat` alive to the end; its numpy view is the original distance
    return dense_core([distmat.numpy()], qf.shape[0], K1, K2, LAMBDA, np.float16,
                      scaled_copy=False)


def lean_features(qf: np.ndarray, gf: np.ndarray, timings: dict) -> np.ndarray:
    return re_ranking(qf, gf, K1, K2, LAMBDA)


def lean_matrices(qf: np.ndarray, gf: np.ndarray, timings: dict) -> np.ndarray:
    t0 = time.perf_counter()
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    mats = [compute_distance_matrix(a, b).numpy() for a, b in ((q, g), (q, q), (g, g))]
    timings["gemm_s"] = time.perf_counter() - t0
    return re_ranking_from_distances(*mats, K1, K2, LAMBDA)


def lean_gemm_only(qf: np.ndarray, gf: np.ndarray) -> float:
    """Time of just the GEMM strips re_ranking runs (same block size, same buffer reuse)."""
    feats = np.concatenate([qf, gf])
    n = feats.shape[0]
    block = max(1, _BLOCK_ELEMENTS // n)
    buf = np.empty(block * n, dtype=feats.dtype)
    t0 = time.perf_counter()
    for a in range(0, n, block):
        b = min(a + block, n)
        np.matmul(feats[a:b], feats[a:].T, out=buf[:(b - a) * (n - a)].reshape(b - a, n - a))
    return time.perf_counter() - t0


IMPLS = {"dense-ranklist": dense_ranklist, "dense-ranklist-stable": dense_ranklist_stable,
         "dense-bot": dense_bot,
         "lean-features": lean_features, "lean-matrices": lean_matrices}


# ---------------------------------------------------------------------------------------------
# fresh-process worker
# ---------------------------------------------------------------------------------------------


def worker(impl: str, size: ProblemSize, out_path: str | None) -> dict:
    problem = make_problem(size)
    qf, gf = problem.qf, problem.gf
    fn = IMPLS[impl]
    fn(qf[:200], gf[:800], {})  # warm-up: numba compilation/cache load, BLAS pools
    gc.collect()
    load_before = os.getloadavg()[0]
    hwm_reset = reset_peak_rss()
    baseline_kb = status_kb("VmRSS")
    timings: dict = {}
    t0 = time.perf_counter()
    result = fn(qf, gf, timings)
    total = time.perf_counter() - t0
    peak_kb = status_kb("VmHWM") if hwm_reset else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    load_after = os.getloadavg()[0]
    if impl == "lean-features":
        timings["gemm_s"] = lean_gemm_only(qf, gf)
    if out_path:
        np.save(out_path, np.ascontiguousarray(result, dtype=np.float32))
    return {
        "impl": impl, "size": size.name, "num_query": size.num_query,
        "num_gallery": size.num_gallery, "dim": int(qf.shape[1]), "total_s": total,
        "gemm_s": timings.get("gemm_s", float("nan")),
        "peak_delta_gib": (peak_kb - baseline_kb) / 1024 ** 2,
        "peak_abs_gib": peak_kb / 1024 ** 2, "baseline_gib": baseline_kb / 1024 ** 2,
        "peak_method": "VmHWM after clear_refs" if hwm_reset else "ru_maxrss",
        "load_before": load_before, "load_after": load_after,
    }


def run_in_subprocess(impl: str, size_key: str, out_path: str | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, size_key]
    if out_path:
        cmd.append(out_path)
    print(f"[compare_rerank] {impl} @ {size_key} ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"    {row['total_s']:.1f} s, peak +{row['peak_delta_gib']:.2f} GiB", flush=True)
    return row


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def _diff(a_path: str, b_path: str) -> tuple[float, float, float]:
    """max |a - b|, mean |a - b|, fraction of query rows with some |a - b| > 1e-4."""
    a, b = np.load(a_path, mmap_mode="r"), np.load(b_path, mmap_mode="r")
    d = np.abs(a - b)
    return float(d.max()), float(d.mean()), float((d > 1e-4).any(axis=1).mean())


def write_report(rows: list[dict], dest: Path, command: str) -> None:
    fields = ["impl", "size", "num_query", "num_gallery", "dim", "total_s", "gemm_s",
              "rerank_s", "peak_delta_gib", "peak_abs_gib", "baseline_gib", "max_abs_diff",
              "mean_abs_diff", "rows_diff_gt_1e-4", "max_abs_diff_stable",
              "mean_abs_diff_stable", "rows_diff_gt_1e-4_stable", "peak_method",
              "load_before", "load_after"]
    for r in rows:
        r["rerank_s"] = r["total_s"] - r["gemm_s"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(dest / "rerank.csv", buf.getvalue())

    def fmt(v: float, spec: str) -> str:
        return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)

    market = {r["impl"]: r for r in rows if r["size"] == MARKET.name}
    base = market.get("dense-ranklist")
    lines = [
        "# k-reciprocal re-ranking: dense reference implementations vs lean",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs; "
        f"1-min load average before/after each run in the CSV), numpy {np.__version__}, "
        f"torch {torch.__version__}. Parameters k1 = {K1}, k2 = {K2}, lambda = {LAMBDA}. "
        "Inputs: `benchmarks/synthetic_features.make_problem` (identity centres + noise, "
        "256-d float32, seed 0).",
        "",
        "Each row is one call in a fresh process after a warm-up on a subset. **Time includes "
        "the distance computation (GEMM)**; the GEMM share is listed separately (dense and "
        "lean-matrices: `compute_distance_matrix` x 3 in torch; dense-bot: one torch `addmm` "
        "on the joint features; lean-features: its own upper-triangle GEMM strips in numpy/"
        "OpenBLAS, re-timed alone). **Peak memory** = VmHWM (peak RSS, reset via "
        "`/proc/self/clear_refs`) after the call minus VmRSS just before it: everything the "
        "call made resident, including distance matrices and the output. Differences are "
        "against dense-ranklist (default argsort, as published) and dense-ranklist-stable "
        "(stable argsort) on the same problem; 'queries off' = share of query rows with some "
        "|diff| > 1e-4.",
        "",
        "| implementation | size (Q + G) | time, s | of which GEMM, s | re-ranking only, s "
        "| peak memory added, GiB | speed-up vs dense-ranklist | max abs diff (queries off) vs "
        "dense-ranklist | max abs diff (queries off) vs dense-ranklist-stable |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        speed = base["total_s"] / r["total_s"] if base and r["size"] == MARKET.name else None
        lines.append(
            f"| {r['impl']} | {r['size']} ({r['num_query']:,} + {r['num_gallery']:,}) "
            f"| {r['total_s']:.1f} | {fmt(r['gemm_s'], '.1f')} | {fmt(r['rerank_s'], '.1f')} "
            f"| {r['peak_delta_gib']:.2f} | {fmt(speed, '.1f')} "
            f"| {fmt(r.get('max_abs_diff'), '.1e')} ({fmt(r.get('rows_diff_gt_1e-4'), '.1%')}) "
            f"| {fmt(r.get('max_abs_diff_stable'), '.1e')} "
            f"({fmt(r.get('rows_diff_gt_1e-4_stable'), '.1%')}) |")
    lines += [
        "",
        "Notes:",
        "",
        "* Ties: the published code ranks with numpy's default (unstable) argsort, so when "
        "two points are at exactly the same float32 normalised distance across a cut-off "
        "(k1 + 1, round(k1/2) + 1, k2) it is unspecified which one is a neighbour; the lean "
        "implementation takes the lower index (stable argsort). Such a tie changes that "
        "point's V row and thereby the Jaccard term of the queries that share support with "
        "it -- this is the whole of the lean-vs-dense-ranklist difference when the inputs "
        "are identical (lean-matrices), as the stable column shows.",
        "* lean-features computes its own float32 distances (OpenBLAS GEMM, `|x|^2 + |y|^2 - "
        "2 x.y`, without the square root the dense pipeline takes and then undoes); rounding "
        "differences can decide a near-tie at a cut-off differently in the same way.",
        "* dense-bot stores V, V_qe and the Jaccard in float16 (about 3 significant digits), "
        "hence differences on every query row.",
        "* Most of the lean peak is the Q x G float32 output itself (4 Q G bytes: 0.20 GiB at "
        "Market size, 3.57 GiB at MSMT17 size); the rest is one strip of at most 2**25 "
        "distances, the neighbour lists and sparse V. lean-matrices additionally holds its "
        "three input matrices (1.2 GiB, computed inside the timed call). The dense algorithm "
        "would need several (Q + G)^2 arrays at MSMT17 size (33 GiB each in float32), so it "
        "is not run there.",
    ]
    atomic_write_text(dest / "rerank.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-msmt", action="store_true")
    parser.add_argument("--impls", nargs="*", default=list(IMPLS))
    parser.add_argument("--dest", type=Path, default=ROOT / "results" / "benchmarks")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, size_key, *out = args.worker
        print(json.dumps(worker(impl, SIZES[size_key], out[0] if out else None)))
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="compare_rerank_") as tmp:
        outputs = {}
        for impl in args.impls:
            outputs[impl] = os.path.join(tmp, f"{impl}.npy")
            rows.append(run_in_subprocess(impl, "market", outputs[impl]))
        for ref, tag in (("dense-ranklist", ""), ("dense-ranklist-stable", "_stable")):
            if ref in outputs:
                for r in rows:
                    mx, mean, frac = _diff(outputs[ref], outputs[r["impl"]])
                    r.update({f"max_abs_diff{tag}": mx, f"mean_abs_diff{tag}": mean,
                              f"rows_diff_gt_1e-4{tag}": frac})
    if not args.skip_msmt:
        rows.append(run_in_subprocess("lean-features", "msmt17", None))
    command = "python benchmarks/compare_rerank.py" + (" " + " ".join(argv) if argv else "")
    write_report(rows, args.dest, command.strip())
    print(f"[compare_rerank] wrote {args.dest / 'rerank.md'} and rerank.csv")


if __name__ == "__main__":
    main(sys.argv[1:])
