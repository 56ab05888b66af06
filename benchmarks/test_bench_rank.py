"""evaluate_rank at Market-1501 size (3,368 x 15,913) and MSMT17 size (11,659 x 82,161).

Measures, never asserts timings. Run with ``tox -e bench`` or
``python -m pytest benchmarks/test_bench_rank.py --benchmark-only`` (MSMT17 size is marked
``slow``: add ``-m slow``; it needs ~5 GB of memory for its 3.8 GB distance matrix).

Inputs: ``synthetic_features.make_problem`` (identity structure, distractors, random cameras),
Euclidean float32 distances from ``compute_distance_matrix``.

Peak memory (``extra_info["peak_mb"]``): measured in a **fresh subprocess** by
``compare_rank.py``'s worker: the distance matrix is loaded from a ``.npy`` file, a warm-up runs
on the first rows, the kernel's peak-RSS counter is reset (``/proc/self/clear_refs``) and one
full call runs; peak = VmHWM after the call minus VmRSS before it, so numba, torch and numpy
allocations all count and the input matrix does not. ``extra_info["memory_method"]`` says
which counter was used. The side-by-side table with torchreid's evaluators is
``benchmarks/compare_rank.py`` -> ``results/benchmarks/evaluate_rank.md``.

numba's compile time is kept out of the timed rounds (cache=True, and one warm-up round) and
measured on its own by ``test_numba_first_call``: a new process with an empty numba cache,
then a second process on that cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from compare_rank import run_worker, write_problem
from synthetic_features import MARKET, MSMT17, ProblemSize

from reid_core.metrics import compute_distance_matrix, evaluate_rank_metrics

BACKEND_WORKER = {"numba": "reid_core numba", "torch": "reid_core torch (cpu)"}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return _problem(MARKET, tmp_path_factory.mktemp("market"))


@pytest.fixture(scope="module")
def msmt(tmp_path_factory):
    return _problem(MSMT17, tmp_path_factory.mktemp("msmt17"))


def _problem(size: ProblemSize, data_dir: Path):
    """(distmat, ids...) of ``size`` and the directory holding them for subprocess workers."""
    write_problem(size, data_dir)
    ids = np.load(data_dir / "ids.npz")
    dist = np.load(data_dir / "distmat.npy")
    return data_dir, (dist, ids["q_pids"], ids["g_pids"], ids["q_cams"], ids["g_cams"])


def _bench(benchmark, problem, backend: str, ap_mode: str, rounds: int) -> None:
    data_dir, args = problem
    result = benchmark.pedantic(
        evaluate_rank_metrics, args=args, kwargs={"ap_mode": ap_mode, "backend": backend},
        rounds=rounds, iterations=1, warmup_rounds=1,
    )
    mem = run_worker(BACKEND_WORKER[backend], data_dir, rounds=1)
    benchmark.extra_info.update({
        "shape": list(args[0].shape), "backend": backend, "ap_mode": ap_mode,
        "R1": result.rank(1), "mAP": result.mAP, "mINP": result.mINP,
        "peak_mb": round(mem["peak_mb"], 1), "memory_method": mem["memory_method"],
        "load_avg_1min": os.getloadavg()[0],
    })


@pytest.mark.parametrize("ap_mode", ["standard", "trapezoid"])
def test_evaluate_rank_market_numba(benchmark, market, ap_mode):
    _bench(benchmark, market, "numba", ap_mode, rounds=7)


def test_evaluate_rank_market_torch_cpu(benchmark, market):
    _bench(benchmark, market, "torch", "standard", rounds=3)


def test_argsort_market(benchmark, market):
    """Reference point: the full row sort any sorting evaluator pays first."""
    dist = market[1][0]
    benchmark.pedantic(np.argsort, args=(dist,), kwargs={"axis": 1}, rounds=3, iterations=1)
    benchmark.extra_info.update({"shape": list(dist.shape), "what": "np.argsort(axis=1)"})


def test_numba_first_call(benchmark, market):
    """First call in a new process: empty numba cache (compiles), then the warm disk cache."""
    data_dir, args = market
    seconds = {}

    def first_calls():
        with tempfile.TemporaryDirectory(prefix="numba_cache_") as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            seconds["cold"] = run_worker("reid_core numba", data_dir, 1, True, env)
            seconds["warm"] = run_worker("reid_core numba", data_dir, 1, True, env)

    benchmark.pedantic(first_calls, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "shape": list(args[0].shape),
        "first_call_empty_cache_s": seconds["cold"]["first_call_s"],
        "first_call_warm_cache_s": seconds["warm"]["first_call_s"],
        "second_call_s": seconds["warm"]["second_call_s"],
        "note": "the benchmark time is both subprocesses (python + torch start-up included)",
    })


@pytest.mark.slow
def test_evaluate_rank_msmt17_numba(benchmark, msmt):
    _bench(benchmark, msmt, "numba", "standard", rounds=3)


@pytest.mark.slow
def test_evaluate_rank_msmt17_torch_cpu(benchmark, msmt):
    _bench(benchmark, msmt, "torch", "standard", rounds=1)


def test_compute_distance_then_evaluate_cuda_or_skip(benchmark):
    """End to end on CUDA (distances and ranks on the device), when there is one."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from synthetic_features import make_problem

    problem = make_problem(MARKET)
    qf, gf = torch.from_numpy(problem.qf).cuda(), torch.from_numpy(problem.gf).cuda()
    ids = (problem.q_pids, problem.g_pids, problem.q_cams, problem.g_cams)

    def run():
        result = evaluate_rank_metrics(compute_distance_matrix(qf, gf), *ids)
        torch.cuda.synchronize()
        return result

    result = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"R1": result.rank(1), "mAP": result.mAP,
                                 "device": torch.cuda.get_device_name()})
