"""evaluate_rank side by side: the sort-free evaluator vs the widely used sorting ones.

Usage::

    python benchmarks/compare_rank.py                          # Market size + MSMT17 size
    python benchmarks/compare_rank.py --skip-msmt
    python benchmarks/compare_rank.py --torchreid-cy /tmp/trreid/cy

Writes ``results/benchmarks/evaluate_rank.md`` and ``evaluate_rank.csv`` (atomically).

Inputs: ``benchmarks/synthetic_features`` problems (identity centres + noise, 256-d float32
features, distractors with pid 0, random cameras), Euclidean distances from
:func:`reid_core.metrics.compute_distance_matrix` as a float32 (Q, G) matrix.

Implementations:

* ``reid_core numba`` / ``reid_core torch (cpu)``: :func:`reid_core.metrics.evaluate_rank_metrics`
  with ``backend="numba"`` (default) / ``"torch"``, default ``chunk_size``.
* ``np.argsort`` (``np.argsort(distmat, axis=1)``, not an evaluator): what any evaluator that
  sorts the rows pays before it starts. At MSMT17 size it runs 256 rows at a time (the whole
  int64 index matrix would be 7.7 GB).
* ``torchreid python (port)``: an independent port, in this file, of torchreid's python
  ``eval_market1501`` (full ``argsort``, a ``matches`` matrix, then a python loop over queries
  with cumulative sums). Market size only.
* ``torchreid cython``: torchreid's ``rank_cy.evaluate_cy`` itself, when ``--torchreid-cy DIR``
  names a directory holding the compiled ``rank_cy`` module (built outside this repository
  from torchreid's ``rank_cylib/rank_cy.pyx``; nothing of it is vendored here). Market size
  only: at MSMT17 size it would allocate three (Q, G) int64 matrices (argsort indices, gathered
  pids, matches), ~23 GB on top of the 3.8 GB input, more than this 24 GB machine.
  To build it (PyPI's torchreid 0.2.5 sdist ships no ``.pyx``): put ``rank_cy.pyx`` from the
  deep-person-reid repository in DIR with a three-line ``setup.py`` (one ``Extension`` with
  ``numpy.get_include()``, ``cythonize``), ``pip install --target DIR/_cy cython``, then
  ``PYTHONPATH=DIR/_cy python setup.py build_ext --inplace`` in DIR.
* ``reid_core numba, first call`` rows: the first call in a new process, with an empty numba
  cache (compilation) and with the on-disk cache that ``cache=True`` leaves behind.

Measurement: every row runs in a **fresh subprocess** that loads the distance matrix from a
``.npy`` file (fully, so it is part of the baseline), makes one untimed warm-up call on the
first rows only (imports, numba cache load, thread pools; a full-size warm-up would leave freed
temporaries in the allocator and hide them from the peak), ``gc``, resets the peak-RSS counter
(``echo 5 > /proc/self/clear_refs`` sets VmHWM to the current VmRSS), reads VmRSS as the
baseline and makes one call: **peak memory = VmHWM after the call minus the baseline**, i.e.
what the evaluator itself made resident (numpy, numba and torch allocations alike; tracemalloc
would see only numpy's). Then the timed rounds (wall clock, ``time.perf_counter``; CPU time of
the process alongside). If clear_refs is unavailable the script falls back to ``ru_maxrss``
minus the baseline and says so. The machine is a shared 2-core VM: the 1-minute load average
before and after is recorded, and the min over rounds is the most load-robust number.
Agreement: R1 and mAP of each evaluator next to the numba backend's (torchreid accumulates in
float32, and breaks exact ties with an unstable sort; these inputs have no exact ties).
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_memory import reset_peak_rss, status_kb  # noqa: E402
from synthetic_features import MARKET, MSMT17, ProblemSize, make_problem  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: name -> (size, feature noise). "market-random": noise so large that features carry no
#: identity (R1 at chance): most gallery items precede a query's last true match, the fast
#: evaluator's worst case.
SIZES = {"market": (MARKET, 1.5), "market-random": (MARKET, 1000.0), "msmt17": (MSMT17, 1.5)}
FIELDS = [
    "size", "implementation", "rounds", "wall_min_s", "wall_median_s", "cpu_per_wall",
    "peak_mb", "memory_method", "R1", "mAP", "abs_dmAP_vs_numba", "speedup_vs_cython",
    "speedup_vs_argsort", "note",
]


# ---------------------------------------------------------------------------------------------
# Implementations. Each takes (distmat, q_pids, g_pids, q_cams, g_cams) and returns (R1, mAP)
# or None (not an evaluator).
# ---------------------------------------------------------------------------------------------


def torchreid_python_port(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid's python ``eval_market1501`` algorithm: sort every row, then loop."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    order = np.argsort(distmat, axis=1)
    is_match = (g_pids[order] == q_pids[:, None]).astype(np.int32)
    cmc_rows, aps = [], []
    for i in range(num_q):
        ranked = order[i]
        # drop gallery items of the query's identity seen by the query's camera
        keep = ~((g_pids[ranked] == q_pids[i]) & (g_camids[ranked] == q_camids[i]))
        hits = is_match[i][keep]
        if not np.any(hits):
            continue  # identity absent from the gallery
        found = hits.cumsum()
        cmc_rows.append(np.minimum(found, 1)[:max_rank])
        precision_at_hits = found / np.arange(1.0, len(hits) + 1.0) * hits
        aps.append(precision_at_hits.sum() / hits.sum())
    cmc = np.asarray(cmc_rows, dtype=np.float32).sum(0) / len(cmc_rows)
    return float(cmc[0]), float(np.mean(aps))


def _reid_core(backend: str) -> Callable:
    def run(distmat, q_pids, g_pids, q_cams, g_cams):
        from reid_core.metrics import evaluate_rank_metrics

        result = evaluate_rank_metrics(distmat, q_pids, g_pids, q_cams, g_cams, backend=backend)
        return result.rank(1), result.mAP
    return run


def _argsort(distmat, *ids):
    if distmat.size * 8 <= 2 << 30:  # index matrix up to 2 GB: one call, as evaluators do
        np.argsort(distmat, axis=1)
    else:
        for start in range(0, distmat.shape[0], 256):
            np.argsort(distmat[start : start + 256], axis=1)
    return None


def _torchreid_cython(distmat, q_pids, g_pids, q_cams, g_cams):
    import rank_cy  # found through --torchreid-cy (sys.path)

    cmc, mAP = rank_cy.evaluate_cy(distmat, q_pids, g_pids, q_cams, g_cams, 50, False)
    return float(cmc[0]), float(mAP)


IMPLEMENTATIONS: dict[str, Callable] = {
    "reid_core numba": _reid_core("numba"),
    "reid_core torch (cpu)": _reid_core("torch"),
    "np.argsort": _argsort,
    "torchreid python (port)": torchreid_python_port,
    "torchreid cython": _torchreid_cython,
}


# ---------------------------------------------------------------------------------------------
# Worker (one fresh process per row)
# ---------------------------------------------------------------------------------------------


def peak_call(fn: Callable[[], object]) -> tuple[object, float, str]:
    """(result, extra peak resident MB of the call, method)."""
    gc.collect()
    reset = reset_peak_rss()
    base_kb = status_kb("VmRSS")
    ru_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fn()
    if reset:
        return result, (status_kb("VmHWM") - base_kb) / 1024, "VmHWM-reset"
    # ru_maxrss is a lifetime high-water mark: a lower bound when an earlier peak hides it.
    ru_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result, max(ru_after - max(ru_before, base_kb), 0) / 1024, "ru_maxrss"


def worker(impl: str, data_dir: Path, rounds: int, first_call: bool) -> dict:
    distmat = np.load(data_dir / "distmat.npy")
    ids = np.load(data_dir / "ids.npz")
    args = (distmat, ids["q_pids"], ids["g_pids"], ids["q_cams"], ids["g_cams"])
    fn = IMPLEMENTATIONS[impl]
    out: dict = {"impl": impl}
    if first_call:
        # The first call in this process pays numba's import and compilation (or cache load);
        # the second is a normal call. reid_core (and torch) are imported before either.
        import reid_core.metrics  # noqa: F401

        for key in ("first_call_s", "second_call_s"):
            start = time.perf_counter()
            fn(*args)
            out[key] = time.perf_counter() - start
        return out
    # Warm-up on a slice (imports, numba cache load incl. the parallel kernel, thread pools),
    # so that the measured call is the first at full size: temporaries freed by an earlier
    # full-size call could stay in the allocator and hide from the RSS peak.
    head = max(64, -(-(1 << 20) // distmat.shape[1]))
    q_pids, g_pids, q_cams, g_cams = args[1:]
    fn(distmat[:head], q_pids[:head], g_pids, q_cams[:head], g_cams)
    result, out["peak_mb"], out["memory_method"] = peak_call(lambda: fn(*args))
    walls, cpus = [], []
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        result = fn(*args)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    out.update(walls=walls, cpus=cpus, result=result)
    return out


def run_worker(impl: str, data_dir: Path, rounds: int, first_call: bool = False,
               env: dict | None = None, cy_dir: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--data", str(data_dir),
           "--rounds", str(rounds)]
    if first_call:
        cmd.append("--first-call")
    if cy_dir:
        cmd += ["--torchreid-cy", cy_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {impl!r} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def write_problem(size: ProblemSize, noise: float, data_dir: Path,
                  block: int = 1024) -> tuple[int, int]:
    """Distance matrix (float32, computed in query blocks) and ids of ``size`` to data_dir."""
    import torch

    from reid_core.metrics import compute_distance_matrix

    problem = make_problem(size, noise=noise)
    gf = torch.from_numpy(problem.gf)
    dist = np.empty((len(problem.qf), len(problem.gf)), dtype=np.float32)
    for start in range(0, len(problem.qf), block):
        qf = torch.from_numpy(problem.qf[start : start + block])
        dist[start : start + block] = compute_distance_matrix(qf, gf).numpy()
    np.save(data_dir / "distmat.npy", dist)
    np.savez(data_dir / "ids.npz", q_pids=problem.q_pids, g_pids=problem.g_pids,
             q_cams=problem.q_cams, g_cams=problem.g_cams)
    return dist.shape


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def measure_size(name: str, rounds: dict[str, int], cy_dir: str | None) -> list[dict]:
    size, noise = SIZES[name]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix=f"rank_bench_{name}_") as tmp:
        data_dir = Path(tmp)
        shape = write_problem(size, noise, data_dir)
        print(f"[{name}] distmat {shape} float32 written", flush=True)
        for impl, n in rounds.items():
            if impl == "torchreid cython" and not cy_dir:
                continue
            print(f"[{name}] {impl} ...", flush=True)
            res = run_worker(impl, data_dir, n, cy_dir=cy_dir)
            walls, cpus = res["walls"], res["cpus"]
            r1, m_ap = res["result"] if res["result"] else (None, None)
            rows.append({
                "size": f"{name} {shape[0]}x{shape[1]}", "implementation": impl, "rounds": n,
                "wall_min_s": min(walls), "wall_median_s": float(np.median(walls)),
                "cpu_per_wall": sum(cpus) / sum(walls), "peak_mb": res["peak_mb"],
                "memory_method": res["memory_method"], "R1": r1, "mAP": m_ap, "note": "",
            })
        if name == "market" and "reid_core numba" in rounds:  # compile time: size-independent
            with tempfile.TemporaryDirectory(prefix="numba_cache_") as cache:
                env = {"NUMBA_CACHE_DIR": cache}
                cold = run_worker("reid_core numba", data_dir, 1, True, env)
                warm = run_worker("reid_core numba", data_dir, 1, True, env)
            for label, res in (("empty numba cache: compiles", cold),
                               ("warm on-disk cache", warm)):
                rows.append({
                    "size": f"{name} {shape[0]}x{shape[1]}",
                    "implementation": "reid_core numba, first call", "rounds": 1,
                    "wall_min_s": res["first_call_s"], "wall_median_s": res["first_call_s"],
                    "note": f"new process, {label}; includes importing numba; the second "
                            f"call took {res['second_call_s']:.3f} s",
                })
    base = next((r for r in rows if r["implementation"] == "reid_core numba"), None)
    cython = next((r for r in rows if r["implementation"] == "torchreid cython"), None)
    argsort = next((r for r in rows if r["implementation"] == "np.argsort"), None)
    for row in rows:
        if base and row.get("mAP") is not None:
            row["abs_dmAP_vs_numba"] = abs(row["mAP"] - base["mAP"])
        if cython and row["implementation"] != "torchreid cython" and "first call" not in row[
                "implementation"]:
            row["speedup_vs_cython"] = cython["wall_min_s"] / row["wall_min_s"]
        if argsort and row["implementation"] != "np.argsort" and "first call" not in row[
                "implementation"]:
            row["speedup_vs_argsort"] = argsort["wall_min_s"] / row["wall_min_s"]
    return rows


def _fmt(value, spec: str) -> str:
    return "" if value is None or value == "" else format(value, spec)


def render(rows: list[dict], header: dict) -> str:
    out = io.StringIO()
    out.write("# evaluate_rank: time and peak memory side by side\n\n")
    out.write(f"Command: `{header['command']}`\n\n")
    out.write(
        f"Machine: {header['machine']}; numba {header['numba']} ({header['numba_threads']} "
        f"threads), numpy {header['numpy']}, torch {header['torch']}; {header['date']}. "
        f"1-minute load average {header['load_before']:.1f} before, {header['load_after']:.1f} "
        "after (a shared 2-core VM: other jobs ran meanwhile, so medians are noisy; min is the "
        "most robust).\n\n"
        "Inputs: `benchmarks/synthetic_features` (identity centres + noise, 256-d), Euclidean "
        "float32 distance matrix. Each row is a fresh process: untimed warm-up on the first "
        "rows, then one full call "
        "for peak memory (VmHWM after the call minus VmRSS before it, after resetting the peak "
        "via /proc/self/clear_refs: everything the evaluator made resident, the input matrix "
        "excluded), then the timed rounds. cpu/wall > 1 means several threads worked. "
        "R1 / mAP: of each evaluator, on the same input; |dmAP| against the numba backend.\n\n"
    )
    out.write("| size | implementation | rounds | wall min (s) | wall median (s) | cpu/wall | "
              "peak memory (MB) | R1 | mAP | abs dmAP vs numba | x faster than torchreid "
              "cython | x faster than np.argsort | note |\n")
    out.write("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| --- |\n")
    for r in rows:
        out.write(
            f"| {r['size']} | {r['implementation']} | {r['rounds']} | "
            f"{_fmt(r.get('wall_min_s'), '.3f')} | {_fmt(r.get('wall_median_s'), '.3f')} | "
            f"{_fmt(r.get('cpu_per_wall'), '.2f')} | {_fmt(r.get('peak_mb'), ',.1f')} | "
            f"{_fmt(r.get('R1'), '.6f')} | {_fmt(r.get('mAP'), '.8f')} | "
            f"{_fmt(r.get('abs_dmAP_vs_numba'), '.1e')} | "
            f"{_fmt(r.get('speedup_vs_cython'), '.1f')} | "
            f"{_fmt(r.get('speedup_vs_argsort'), '.1f')} | {r.get('note', '')} |\n"
        )
    for note in header["notes"]:
        out.write(f"\n{note}\n")
    return out.getvalue()


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in FIELDS})
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-msmt", action="store_true")
    parser.add_argument("--torchreid-cy", default=None,
                        help="directory holding torchreid's compiled rank_cy module")
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--first-call", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torchreid_cy:
        sys.path.insert(0, os.path.abspath(args.torchreid_cy))
    if args.worker:
        res = worker(args.worker, Path(args.data), args.rounds, args.first_call)
        print(json.dumps(res))
        return

    import numba
    import torch

    from reid_core.utils.io import atomic_write_text

    load_before = os.getloadavg()[0]
    rows = measure_size("market", {
        "reid_core numba": 9, "reid_core torch (cpu)": 3, "np.argsort": 3,
        "torchreid cython": 3, "torchreid python (port)": 1,
    }, args.torchreid_cy)
    rows += measure_size("market-random", {
        "reid_core numba": 5, "reid_core torch (cpu)": 1, "np.argsort": 1, "torchreid cython": 1,
    }, args.torchreid_cy)
    notes = ["market-random: the same sizes with feature noise 1000 (no identity structure, "
             "R1 at chance): nearly every gallery item precedes a query's last true match, the "
             "worst case of the fast evaluator (a count against the sorted true matches per "
             "item)."]
    if args.torchreid_cy:
        import rank_cy

        notes.append(f"torchreid cython: `rank_cy.evaluate_cy` compiled from torchreid's "
                     f"`rank_cylib/rank_cy.pyx` outside the repository "
                     f"(`{Path(rank_cy.__file__).name}`); called as torchreid's "
                     "`evaluate_rank(..., use_cython=True)` does.")
    else:
        notes.append("torchreid's Cython evaluator was not measured (no --torchreid-cy).")
    if not args.skip_msmt:
        rows += measure_size("msmt17", {
            "reid_core numba": 3, "reid_core torch (cpu)": 1, "np.argsort": 1,
        }, None)
        notes.append(
            "MSMT17 size: torchreid's evaluators are not run: both start with "
            "`np.argsort(distmat, axis=1)` and an int64 `matches` matrix, three 11,659 x 82,161 "
            "int64 matrices (~23 GB) on top of the 3.8 GB input on a 24 GB machine; "
            "np.argsort runs 256 rows at a time there."
        )
    header = {
        "command": "python benchmarks/compare_rank.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "numba": numba.__version__, "numba_threads": numba.get_num_threads(),
        "numpy": np.__version__, "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"), "load_before": load_before,
        "load_after": os.getloadavg()[0], "notes": notes,
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "evaluate_rank.md", render(rows, header))
    atomic_write_text(out_dir / "evaluate_rank.csv", to_csv(rows))
    print(render(rows, header))


if __name__ == "__main__":
    main()
