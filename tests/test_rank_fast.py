"""The sort-free rank evaluator (numba and torch backends) against an independent reference.

The reference below sorts every gallery row (``np.argsort(kind="stable")``, the documented tie
rule) and walks the ranked list one query at a time, as the Market-1501 code does; it shares
nothing with :mod:`reid_core.metrics.rank`, which never sorts a row.
"""

from __future__ import annotations

import math
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from reid_core.metrics import RankMetrics, evaluate_rank, evaluate_rank_metrics
from reid_core.metrics.rank import _numba_kernels

HAS_NUMBA = _numba_kernels() is not None
BACKENDS = [
    pytest.param("numba", marks=pytest.mark.skipif(not HAS_NUMBA, reason="numba missing")),
    "torch",
]

# ---------------------------------------------------------------------------------------------
# Independent reference
# ---------------------------------------------------------------------------------------------


@dataclass
class Expected:
    cmc: np.ndarray
    map_standard: float
    map_trapezoid: float
    minp: float
    num_valid: int
    per_query_ap: np.ndarray  # standard AP, NaN for skipped queries


def reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank) -> Expected | None:
    """Plain per-query evaluation; None when no query has a true match."""
    dist = np.asarray(distmat, dtype=np.float64)  # exact for float16/32 and small ints
    g_pids, g_cams = np.asarray(g_pids), np.asarray(g_cams)
    cmc_rows, std_aps, trap_aps, inps = [], [], [], []
    per_query = np.full(len(q_pids), np.nan)
    for i, (q_pid, q_cam) in enumerate(zip(q_pids, q_cams)):
        order = np.argsort(dist[i], kind="stable")
        pids, cams = g_pids[order], g_cams[order]
        junk = (pids == -1) | ((pids == q_pid) & (cams == q_cam))
        relevant = (pids == q_pid)[~junk]  # ranked list without junk
        if not relevant.any():
            continue
        n_good = int(relevant.sum())
        hit_ranks = np.flatnonzero(relevant) + 1

        cmc_row = np.zeros(max_rank)
        if hit_ranks[0] <= max_rank:
            cmc_row[hit_ranks[0] - 1 :] = 1.0
        cmc_rows.append(cmc_row)

        std_aps.append(float(np.mean(np.arange(1, n_good + 1) / hit_ranks)))
        per_query[i] = std_aps[-1]

        # Market-1501 compute_AP.m: walk the list, trapezoid between consecutive precisions.
        ap, old_recall, old_precision, hits = 0.0, 0.0, 1.0, 0
        for position, is_hit in enumerate(relevant, start=1):
            hits += int(is_hit)
            recall, precision = hits / n_good, hits / position
            ap += (recall - old_recall) * (old_precision + precision) / 2
            old_recall, old_precision = recall, precision
            if hits == n_good:
                break
        trap_aps.append(ap)

        inps.append(n_good / hit_ranks[-1])  # hardest match's rank
    if not cmc_rows:
        return None
    return Expected(
        cmc=np.mean(cmc_rows, axis=0),
        map_standard=float(np.mean(std_aps)),
        map_trapezoid=float(np.mean(trap_aps)),
        minp=float(np.mean(inps)),
        num_valid=len(cmc_rows),
        per_query_ap=per_query,
    )


def random_problem(seed: int, dtype=np.float64, num_q: int | None = None,
                   num_g: int | None = None):
    """Ids with junk (-1), distractors (0), queries without matches; ties when quantised."""
    rng = np.random.default_rng(seed)
    num_q = num_q or int(rng.integers(1, 30))
    num_g = num_g or int(rng.integers(1, 60))
    num_ids = int(rng.integers(1, 8))
    num_cams = int(rng.integers(1, 4))
    g_pids = rng.integers(-1, num_ids + 1, num_g)
    q_pids = rng.integers(-1, num_ids + 2, num_q)  # num_ids + 1 never occurs in the gallery
    g_cams, q_cams = rng.integers(0, num_cams, num_g), rng.integers(0, num_cams, num_q)
    style = seed % 4
    if style == 0:
        distmat = rng.standard_normal((num_q, num_g))
    elif style == 3:
        # signed zeros and infinities among few levels
        levels = np.array([-np.inf, -1.0, -0.0, 0.0, 0.5, np.inf])
        distmat = rng.choice(levels, (num_q, num_g))
    else:
        # few discrete values -> many exact ties, broken by gallery index
        distmat = rng.integers(0, int(rng.integers(1, 6)), (num_q, num_g)) / 4.0
    return distmat.astype(dtype), q_pids, g_pids, q_cams, g_cams


def run(backend, distmat, *ids, **kwargs) -> RankMetrics:
    if backend == "torch":
        distmat = torch.as_tensor(distmat)
    return evaluate_rank_metrics(distmat, *ids, backend=backend, **kwargs)


def assert_matches(got: RankMetrics, expected: Expected, ap_mode: str) -> None:
    np.testing.assert_array_equal(got.cmc, expected.cmc)
    want = expected.map_standard if ap_mode == "standard" else expected.map_trapezoid
    assert got.mAP == pytest.approx(want, rel=0, abs=1e-12)
    assert got.mINP == pytest.approx(expected.minp, rel=0, abs=1e-12)
    assert got.num_valid_queries == expected.num_valid


def same_bits(a: RankMetrics, b: RankMetrics) -> None:
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert (a.mAP, a.mINP, a.num_valid_queries) == (b.mAP, b.mINP, b.num_valid_queries)
    np.testing.assert_array_equal(a.per_query_ap, b.per_query_ap)
    np.testing.assert_array_equal(a.first_match_rank, b.first_match_rank)


# ---------------------------------------------------------------------------------------------
# Random problems: every backend, dtype and chunk size equals the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numba_matches_reference(dtype):
    if not HAS_NUMBA:
        pytest.skip("numba missing")
    checked = skipped_all = 0
    for seed in range(80):
        case = random_problem(seed, dtype)
        num_g = case[0].shape[1]
        for max_rank in (1, num_g + 3):
            expected = reference(*case, max_rank)
            if expected is None:
                with pytest.raises(ValueError, match="no valid query"):
                    evaluate_rank_metrics(*case, max_rank=max_rank, backend="numba")
                skipped_all += 1
                continue
            for ap_mode in ("standard", "trapezoid"):
                first = None
                for chunk in (1, 7, 256):
                    got = evaluate_rank_metrics(*case, max_rank=max_rank, ap_mode=ap_mode,
                                                chunk_size=chunk, backend="numba")
                    assert_matches(got, expected, ap_mode)
                    if first is None:
                        first = got
                    else:
                        same_bits(got, first)  # chunking changes no bit
            checked += 1
    assert checked > 100 and skipped_all > 0  # both branches exercised


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_backend_matches_numba_and_reference(dtype):
    # torch ops have a fixed per-call cost (~ms), so fewer problems than for numba.
    for seed in range(24):
        case = random_problem(seed, np.float64)
        dist = torch.from_numpy(case[0]).to(dtype)
        dist64 = dist.double().numpy()  # the values the evaluator actually sees
        expected = reference(dist64, *case[1:], 10)
        if expected is None:
            continue
        for ap_mode, chunk in (("standard", 1), ("trapezoid", 5), ("standard", 256)):
            got = evaluate_rank_metrics(dist, *case[1:], max_rank=10, ap_mode=ap_mode,
                                        chunk_size=chunk, backend="torch")
            assert_matches(got, expected, ap_mode)
            if HAS_NUMBA:
                same_bits(got, evaluate_rank_metrics(dist, *case[1:], max_rank=10,
                                                     ap_mode=ap_mode, backend="numba"))


def test_numpy_input_on_torch_backend_and_float16():
    for seed in (1, 2, 5):
        case = random_problem(seed, np.float16, num_q=12, num_g=40)
        expected = reference(*case, 5)
        if expected is None:
            continue
        assert_matches(evaluate_rank_metrics(*case, max_rank=5, backend="torch"), expected,
                       "standard")


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_matches_per_query(backend):
    # One identity with ~150 gallery images: the kernel's sort of the match keys takes its
    # mergesort branch (> 32 keys) and the torch path pads to a wide key matrix.
    rng = np.random.default_rng(3)
    num_q, num_g = 9, 400
    g_pids = np.where(rng.random(num_g) < 0.4, 0, rng.integers(1, 5, num_g))
    q_pids = rng.integers(0, 3, num_q)
    g_cams, q_cams = rng.integers(0, 3, num_g), rng.integers(0, 3, num_q)
    distmat = rng.integers(0, 50, (num_q, num_g)).astype(np.float32)  # ties across matches
    expected = reference(distmat, q_pids, g_pids, q_cams, g_cams, 20)
    for ap_mode in ("standard", "trapezoid"):
        got = run(backend, distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20,
                  ap_mode=ap_mode, chunk_size=4)
        assert_matches(got, expected, ap_mode)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_sized_chunk_with_identity_structure(backend):
    # Large enough that the numba backend takes its parallel kernel (>= 2**20 distances per
    # chunk), with features that have identity structure like a trained model's.
    rng = np.random.default_rng(7)
    num_q, num_g, num_ids = 70, 16_000, 300
    centres = rng.standard_normal((num_ids + 1, 16))
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = np.concatenate([rng.integers(1, num_ids + 1, num_g - 500), np.zeros(500, int)])
    g_pids[rng.random(num_g) < 0.01] = -1
    q_cams, g_cams = rng.integers(0, 6, num_q), rng.integers(0, 6, num_g)
    qf = centres[q_pids] + rng.standard_normal((num_q, 16))
    gf = centres[np.maximum(g_pids, 0)] + rng.standard_normal((num_g, 16))
    distmat = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1).astype(np.float32)
    expected = reference(distmat, q_pids, g_pids, q_cams, g_cams, 50)
    got = run(backend, distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50, chunk_size=70)
    assert_matches(got, expected, "standard")
    np.testing.assert_allclose(got.per_query_ap, expected.per_query_ap, rtol=0, atol=1e-12)
    assert 0 < got.cmc[0] < 1 and 0 < got.mINP < got.mAP < 1  # a non-degenerate problem


def test_integer_distances_and_lists():
    distmat = [[3, 1, 2, 1], [0, 0, 5, 5]]
    ids = ([1, 2], [1, 1, 2, 2], [0, 0], [1, 1, 1, 1])
    expected = reference(distmat, *ids, 4)
    for backend in ("numba", "torch") if HAS_NUMBA else ("torch",):
        assert_matches(evaluate_rank_metrics(distmat, *ids, max_rank=4, backend=backend),
                       expected, "standard")


# ---------------------------------------------------------------------------------------------
# Closed-form cases
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_at_every_other_rank(backend):
    # Query pid 1 (cam 0); gallery sorted by distance alternates negative, match, negative, ...
    # so the n matches sit at ranks 2, 4, ..., 2n:
    #   standard AP = mean_k k / 2k = 1/2;   INP = n / 2n = 1/2;   CMC = [0, 1, 1, ...]
    #   trapezoid AP = (1/n) sum_k ((k-1)/(2k-1) + 1/2) / 2
    n = 40
    num_g = 2 * n
    g_pids = np.tile([7, 1], n)
    g_cams = np.ones(num_g, dtype=int)
    distmat = np.arange(num_g, dtype=np.float64)[None, :]
    got = run(backend, distmat, [1], g_pids, [0], g_cams, max_rank=5)
    np.testing.assert_array_equal(got.cmc, [0, 1, 1, 1, 1])
    assert got.mAP == 0.5 and got.mINP == 0.5
    trap = run(backend, distmat, [1], g_pids, [0], g_cams, max_rank=5, ap_mode="trapezoid")
    closed = sum(((k - 1) / (2 * k - 1) + 0.5) / 2 for k in range(1, n + 1)) / n
    assert trap.mAP == pytest.approx(closed, rel=0, abs=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_match_deep_in_a_large_gallery(backend):
    # 20,000 gallery items at distinct distances; the only match is at rank r, behind r - 1
    # negatives, with junk sprinkled in front of it that must not count.
    rng = np.random.default_rng(0)
    num_g, r = 20_000, 1234
    distmat = rng.permutation(num_g).astype(np.float64)[None, :]
    by_distance = np.argsort(distmat[0])
    g_pids = np.full(num_g, 5)
    g_cams = np.zeros(num_g, dtype=int)
    junk = by_distance[: r + 99 : 11]  # some same-camera copies of the query pid, some -1
    g_pids[junk[::2]], g_pids[junk[1::2]] = -1, 3
    match = by_distance[r - 1 + len(junk)]
    g_pids[match], g_cams[match] = 3, 1
    got = run(backend, distmat, [3], g_pids, [0], g_cams, max_rank=2000)
    assert got.first_match_rank.tolist() == [r]
    assert got.mAP == 1 / r and got.mINP == 1 / r
    assert got.cmc[r - 2] == 0 and got.cmc[r - 1] == 1
    assert got.rank(r) == 1.0 and got.rank(1) == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_first_and_skipped_query(backend):
    # q0's 3 matches follow one negative; q1 has only a same-camera image of its pid (junk),
    # so it is skipped and counted nowhere.
    distmat = np.array([[0.1, 0.2, 0.3, 0.05, 0.9], [0.1, 0.2, 0.3, 0.4, 0.5]])
    got = run(backend, distmat, [1, 2], [1, 1, 1, 9, 2], [0, 0], [1, 2, 1, 1, 0], max_rank=3)
    # g3 (pid 9, d=.05) is a negative ranked first: matches at ranks 2, 3, 4.
    np.testing.assert_array_equal(got.cmc, [0, 1, 1])
    assert got.mAP == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3, abs=1e-15)
    assert got.mINP == 3 / 4
    assert got.num_valid_queries == 1 and got.num_queries == 2
    assert math.isnan(got.per_query_ap[1]) and got.first_match_rank[1] == 0


# ---------------------------------------------------------------------------------------------
# API, validation, memory
# ---------------------------------------------------------------------------------------------


def test_call_splitting_changes_no_bit(monkeypatch):
    # The numba path reads contiguous float32/64 rows in place, many chunks per kernel call,
    # but splits calls by a budget of true matches; force tiny budgets.
    if not HAS_NUMBA:
        pytest.skip("numba missing")
    from reid_core.metrics import rank

    case = random_problem(10, np.float32, num_q=40, num_g=50)  # 37 valid queries, ties
    whole = evaluate_rank_metrics(*case, max_rank=20, backend="numba")
    bounds = rank._call_bounds(np.array([5, 0, 2, 9, 1, 4]), max_rows=3)
    monkeypatch.setattr(rank, "_CALL_MATCHES", 6)
    assert rank._call_bounds(np.array([5, 0, 2, 9, 1, 4]), max_rows=3) == [
        (0, 2), (2, 3), (3, 4), (4, 6)]  # a row over budget still gets its own call
    assert bounds == [(0, 3), (3, 6)]
    monkeypatch.setattr(rank, "_CALL_ITEMS", 120)
    split = evaluate_rank_metrics(*case, max_rank=20, chunk_size=3, backend="numba")
    same_bits(split, whole)


def test_evaluate_rank_is_the_pair_of_evaluate_rank_metrics():
    case = random_problem(4, np.float32)
    full = evaluate_rank_metrics(*case, max_rank=10, ap_mode="trapezoid")
    cmc, mAP = evaluate_rank(*case, max_rank=10, ap_mode="trapezoid")
    np.testing.assert_array_equal(cmc, full.cmc)
    assert mAP == full.mAP and isinstance(mAP, float) and cmc.dtype == np.float64


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_rejected_even_in_skipped_rows(backend):
    distmat = np.array([[0.1, 0.2], [np.nan, 0.3]])
    # q1 (pid 8) has no match, but its NaN must still be reported.
    with pytest.raises(ValueError, match="NaN"):
        run(backend, distmat, [1, 8], [1, 2], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="NaN"):  # NaN at a true match's distance
        run(backend, np.array([[np.nan, 0.3]]), [1], [1, 2], [0], [1, 1])


def test_bad_backend_and_rank_accessor():
    case = random_problem(4, np.float32)
    with pytest.raises(ValueError, match="auto, numba, torch"):
        evaluate_rank_metrics(*case, backend="cython")
    metrics = evaluate_rank_metrics(*case, max_rank=3)
    with pytest.raises(ValueError, match="rank"):
        metrics.rank(4)
    with pytest.raises(ValueError, match="complex|real"):
        evaluate_rank_metrics(case[0].astype(np.complex64), *case[1:])


def test_float16_input_widened_one_chunk_at_a_time():
    if not HAS_NUMBA:
        pytest.skip("numba missing")
    # The numba kernel reads float32; a float16 matrix is widened chunk by chunk, so the
    # temporaries stay near chunk_size x G x 4 bytes (numpy reports to tracemalloc; a whole
    # float32 copy would be num_q x num_g x 4 = 8 MB here).
    rng = np.random.default_rng(1)
    num_q, num_g = 1000, 2000
    distmat = rng.random((num_q, num_g)).astype(np.float16)
    g_pids, g_cams = rng.integers(0, 50, num_g), rng.integers(0, 6, num_g)
    q_pids, q_cams = rng.integers(0, 50, num_q), rng.integers(0, 6, num_q)
    evaluate_rank_metrics(distmat[:2], q_pids[:2], g_pids, q_cams[:2], g_cams)  # compile
    tracemalloc.start()
    try:
        evaluate_rank_metrics(distmat, q_pids, g_pids, q_cams, g_cams, chunk_size=16,
                              backend="numba")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < num_q * num_g  # < 1 byte per matrix entry; one float32 chunk is 128 kB


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensor_stays_on_device_and_matches():
    case = random_problem(9, np.float32, num_q=20, num_g=50)
    expected = reference(*case, 10)
    got = evaluate_rank_metrics(torch.from_numpy(case[0]).cuda(), *case[1:], max_rank=10)
    assert_matches(got, expected, "standard")
