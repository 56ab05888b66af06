"""Tests for reid_core.metrics: evaluate_rank against a literal loop-based reference, hand
examples, validation errors, and compute_distance_matrix against direct formulas."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from reid_core.metrics import compute_distance_matrix, evaluate_rank
from reid_core.metrics.rank import evaluate_rank_metrics, stable_argsort_rows

# ---------------------------------------------------------------------------------------------
# Reference implementation: one query at a time, plain Python, written from the definitions.
# ---------------------------------------------------------------------------------------------


def ref_ranked_list(row: list[float]) -> list[int]:
    """Gallery indices by ascending distance, ties by gallery index (the documented rule)."""
    return sorted(range(len(row)), key=lambda j: (row[j], j))


def ref_good_junk(q_pid, q_cam, g_pids, g_cams) -> tuple[set[int], set[int]]:
    """As in the official evaluation.m: good = same pid, other camera; junk = pid -1 or
    same pid and same camera."""
    good, junk = set(), set()
    for j, (p, c) in enumerate(zip(g_pids, g_cams)):
        if p == -1 or (p == q_pid and c == q_cam):
            junk.add(j)
        elif p == q_pid:
            good.add(j)
    return good, junk


def ref_compute_ap_matlab(good: set[int], junk: set[int], index: list[int]):
    """Line-by-line port of Market-1501 compute_AP.m (0-based). Returns (ap, cmc)."""
    cmc = [0] * len(index)
    ngood = len(good)
    old_recall = 0.0
    old_precision = 1.0
    ap = 0.0
    intersect_size = 0
    j = 0
    good_now = 0
    njunk = 0
    for n in range(len(index)):
        flag = 0
        if index[n] in good:
            for m in range(n - njunk, len(index)):
                cmc[m] = 1
            flag = 1
            good_now += 1
        if index[n] in junk:
            njunk += 1
            continue
        if flag == 1:
            intersect_size += 1
        recall = intersect_size / ngood
        precision = intersect_size / (j + 1)
        ap = ap + (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall = recall
        old_precision = precision
        j += 1
        if good_now == ngood:
            return ap, cmc
    return ap, cmc


def ref_ap_torchreid(good: set[int], junk: set[int], index: list[int]):
    """torchreid eval_market1501, per query: drop junk, AP = mean precision at the hits."""
    raw_cmc = [1 if g in good else 0 for g in index if g not in junk]
    num_rel = sum(raw_cmc)
    hits_so_far = 0
    total = 0.0
    for i, rel in enumerate(raw_cmc):
        hits_so_far += rel
        if rel:
            total += hits_so_far / (i + 1.0)
    cmc = []
    running = 0
    for rel in raw_cmc:
        running = min(1, running + rel)
        cmc.append(running)
    return total / num_rel, cmc


def ref_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, ap_mode):
    """(cmc, mAP) or None when no query is valid."""
    cmcs, aps = [], []
    for i in range(len(q_pids)):
        good, junk = ref_good_junk(q_pids[i], q_cams[i], g_pids, g_cams)
        if not good:
            continue  # skipped query
        index = ref_ranked_list([float(x) for x in distmat[i]])
        ap_m, cmc_m = ref_compute_ap_matlab(good, junk, index)
        ap_t, cmc_t = ref_ap_torchreid(good, junk, index)
        # The two references define the CMC identically (rank among non-junk items).
        first_m = cmc_m.index(1)
        assert first_m == cmc_t.index(1)
        cmcs.append([1.0 if k >= first_m else 0.0 for k in range(max_rank)])
        aps.append(ap_t if ap_mode == "standard" else ap_m)
    if not aps:
        return None
    cmc = [sum(c[k] for c in cmcs) / len(cmcs) for k in range(max_rank)]
    return np.array(cmc), sum(aps) / len(aps)


# ---------------------------------------------------------------------------------------------
# Random inputs
# ---------------------------------------------------------------------------------------------


def random_case(seed: int, dtype=np.float64):
    rng = np.random.default_rng(seed)
    num_q = int(rng.integers(1, 25))
    num_g = int(rng.integers(1, 45))
    num_ids = int(rng.integers(1, 8))
    # Ids include -1 (junk) and 0 (distractor); queries may be id 0, id -1 or an id absent
    # from the gallery (no valid match -> skipped).
    g_pids = rng.integers(-1, num_ids + 1, num_g)
    q_pids = rng.integers(-1, num_ids + 2, num_q)
    num_cams = int(rng.integers(1, 4))
    g_cams = rng.integers(0, num_cams, num_g)
    q_cams = rng.integers(0, num_cams, num_q)
    if seed % 3:
        # few discrete values -> many exact ties, resolved by gallery index
        distmat = rng.integers(0, int(rng.integers(1, 5)), (num_q, num_g)).astype(dtype)
    else:
        distmat = rng.standard_normal((num_q, num_g)).astype(dtype)
    return distmat, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("ap_mode", ["standard", "trapezoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference_on_random_inputs(ap_mode, dtype):
    num_checked = num_invalid = 0
    for seed in range(120):
        distmat, q_pids, g_pids, q_cams, g_cams = random_case(seed, dtype)
        num_g = distmat.shape[1]
        for max_rank in (1, 5, num_g, num_g + 7):
            expected = ref_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, ap_mode)
            if expected is None:
                with pytest.raises(ValueError, match="no valid query"):
                    evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, ap_mode)
                num_invalid += 1
                continue
            results = [
                evaluate_rank(
                    distmat, q_pids, g_pids, q_cams, g_cams, max_rank, ap_mode, chunk_size=c
                )
                for c in (1, 7, 256)
            ]
            cmc, mAP = results[0]
            assert cmc.dtype == np.float64 and cmc.shape == (max_rank,)
            assert isinstance(mAP, float)
            np.testing.assert_allclose(cmc, expected[0], rtol=0, atol=1e-12)
            assert mAP == pytest.approx(expected[1], rel=0, abs=1e-12)
            for other_cmc, other_map in results[1:]:  # chunking must not change a single bit
                np.testing.assert_array_equal(other_cmc, cmc)
                assert other_map == mAP
            num_checked += 1
    # the generator must actually exercise both branches
    assert num_checked > 200 and num_invalid > 0


def test_queries_without_match_are_skipped_not_counted():
    # q0 (pid 1, cam 0) matches g1 at rank 1; q1 (pid 2) only has a same-camera image (junk)
    # and q2 (pid 9) is absent: both are skipped, so CMC and mAP are q0's alone.
    distmat = np.array([[0.5, 0.1, 0.9], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    cmc, mAP = evaluate_rank(distmat, [1, 2, 9], [1, 1, 2], [0, 1, 0], [0, 1, 1], max_rank=3)
    np.testing.assert_array_equal(cmc, [1.0, 1.0, 1.0])
    assert mAP == 1.0


# ---------------------------------------------------------------------------------------------
# Hand-computed examples
# ---------------------------------------------------------------------------------------------

# One query (pid 1, cam 0), five gallery items in distance order:
#   g0 d=.1 pid 1 cam 0 -> junk (same pid, same camera)
#   g1 d=.2 pid 2 cam 1 -> negative            rank 1
#   g2 d=.3 pid 1 cam 1 -> hit k=1             rank 2
#   g3 d=.4 pid -1      -> junk
#   g4 d=.5 pid 1 cam 2 -> hit k=2             rank 3
# CMC = [0, 1, 1, 1, 1]
# standard  AP = (1/2 + 2/3) / 2 = 7/12
# trapezoid AP = 1/2 * [ (0/1 + 1/2)/2 + (1/2 + 2/3)/2 ] = 1/2 * (1/4 + 7/12) = 5/12
HAND = dict(
    distmat=np.array([[0.1, 0.2, 0.3, 0.4, 0.5]]),
    q_pids=np.array([1]),
    g_pids=np.array([1, 2, 1, -1, 1]),
    q_camids=np.array([0]),
    g_camids=np.array([0, 1, 1, 1, 2]),
)


def test_hand_example_standard():
    cmc, mAP = evaluate_rank(**HAND, max_rank=5)
    np.testing.assert_array_equal(cmc, [0, 1, 1, 1, 1])
    assert mAP == pytest.approx(7 / 12, abs=1e-15)


def test_hand_example_trapezoid():
    cmc, mAP = evaluate_rank(**HAND, max_rank=5, ap_mode="trapezoid")
    np.testing.assert_array_equal(cmc, [0, 1, 1, 1, 1])
    assert mAP == pytest.approx(5 / 12, abs=1e-15)


def test_hand_example_max_rank_beyond_gallery():
    # 3 non-junk items remain; the CMC holds its last value up to max_rank.
    cmc, _ = evaluate_rank(**HAND, max_rank=8)
    np.testing.assert_array_equal(cmc, [0, 1, 1, 1, 1, 1, 1, 1])


def test_hand_example_hits_at_top_modes_agree():
    # Hits at ranks 1 and 2: standard = (1 + 1)/2 = 1; trapezoid = ((1+1)/2 + (1+1)/2)/2 = 1.
    d = np.array([[0.1, 0.2, 0.3]])
    args = ([1], [1, 1, 2], [0], [1, 2, 1])
    assert evaluate_rank(d, *args, max_rank=3)[1] == 1.0
    assert evaluate_rank(d, *args, max_rank=3, ap_mode="trapezoid")[1] == 1.0


def test_hand_example_hits_at_1_and_3():
    # Hits at ranks 1 and 3 (a negative at 2):
    # standard  = (1/1 + 2/3) / 2 = 5/6
    # trapezoid = 1/2 * [ (1 + 1)/2 + (1/2 + 2/3)/2 ] = 1/2 * (1 + 7/12) = 19/24
    d = np.array([[0.1, 0.2, 0.3]])
    args = ([1], [1, 5, 1], [0], [1, 1, 1])
    cmc, std = evaluate_rank(d, *args, max_rank=3)
    _, trap = evaluate_rank(d, *args, max_rank=3, ap_mode="trapezoid")
    np.testing.assert_array_equal(cmc, [1, 1, 1])
    assert std == pytest.approx(5 / 6, abs=1e-15)
    assert trap == pytest.approx(19 / 24, abs=1e-15)


def test_trapezoid_never_above_standard():
    # Not an assumption but a consequence of the formulas: for the k-th hit at rank r >= k,
    # (k-1)/(r-1) <= k/r  <=>  k <= r, so every trapezoid term is <= the standard term.
    for seed in range(30):
        case = random_case(seed)
        try:
            _, std = evaluate_rank(*case)
        except ValueError:
            continue
        _, trap = evaluate_rank(*case, ap_mode="trapezoid")
        assert trap <= std + 1e-15


def test_ties_broken_by_gallery_index():
    # g0 (negative) and g1 (hit) tie at 0.1: g0 comes first, so the hit is at rank 2.
    d = np.array([[0.1, 0.1, 0.7]], dtype=np.float32)
    cmc, mAP = evaluate_rank(d, [1], [3, 1, 4], [0], [1, 1, 1], max_rank=2)
    np.testing.assert_array_equal(cmc, [0, 1])
    assert mAP == 0.5
    # Swap the pids: now the hit has the lower index and wins the tie.
    cmc, mAP = evaluate_rank(d, [1], [1, 3, 4], [0], [1, 1, 1], max_rank=2)
    np.testing.assert_array_equal(cmc, [1, 1])
    assert mAP == 1.0


def test_distractors_are_negatives_and_pid0_query_is_ordinary():
    # Query pid 5: distractor g0 (pid 0) is ranked first and counts as a negative -> hit at 2.
    d = np.array([[0.1, 0.2], [0.1, 0.2]])
    cmc, mAP = evaluate_rank(d[:1], [5], [0, 5], [0], [1, 1], max_rank=2)
    np.testing.assert_array_equal(cmc, [0, 1])
    assert mAP == 0.5
    # Query pid 0 from camera 0: the pid-0 gallery image from camera 1 is its true match.
    cmc, mAP = evaluate_rank(d[:1], [0], [0, 5], [0], [1, 1], max_rank=2)
    np.testing.assert_array_equal(cmc, [1, 1])
    assert mAP == 1.0


def test_query_with_pid_minus1_is_skipped():
    d = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    # q0 has pid -1: gallery pid -1 is junk, so it has no match and is skipped.
    # q1 (pid 2): g0 junk, g1 negative at rank 1, g2 hit at rank 2.
    cmc, mAP = evaluate_rank(d, [-1, 2], [-1, 5, 2], [0, 0], [1, 1, 1], max_rank=2)
    np.testing.assert_array_equal(cmc, [0, 1])
    assert mAP == 0.5


def test_torch_inputs_match_numpy():
    distmat, q_pids, g_pids, q_cams, g_cams = random_case(4, np.float32)
    expected = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    got = evaluate_rank(
        torch.from_numpy(distmat),
        torch.from_numpy(q_pids),
        torch.from_numpy(g_pids),
        torch.from_numpy(q_cams),
        torch.from_numpy(g_cams),
        max_rank=10,
    )
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_all_invalid_raises():
    d = np.zeros((2, 3))
    with pytest.raises(ValueError, match="no valid query"):
        # every gallery image of pid 1 is in the query camera; pid 2 is absent
        evaluate_rank(d, [1, 2], [1, 1, -1], [0, 0], [0, 0, 1])


@pytest.mark.parametrize(
    "override, name",
    [
        (dict(q_pids=np.array([1, 2])), "q_pids"),
        (dict(q_camids=np.array([[0]])), "q_camids"),
        (dict(g_pids=np.array([1, 2, 1, -1])), "g_pids"),
        (dict(g_camids=np.array([0, 1, 1, 1, 2, 3])), "g_camids"),
        (dict(distmat=np.array([0.1, 0.2, 0.3, 0.4, 0.5])), "distmat"),
    ],
)
def test_shape_mismatch_names_argument(override, name):
    with pytest.raises(ValueError, match=name) as info:
        evaluate_rank(**{**HAND, **override})
    assert "shape" in str(info.value)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="standard, trapezoid"):
        evaluate_rank(**HAND, ap_mode="interpolated")
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_rank(**HAND, max_rank=0)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_rank(**HAND, chunk_size=0)
    with pytest.raises(ValueError, match="integers"):
        evaluate_rank(**{**HAND, "g_pids": np.array([1.0, 2.0, 1.0, -1.0, 1.0])})
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(**{**HAND, "distmat": np.array([[0.1, np.nan, 0.3, 0.4, 0.5]])})


# ---------------------------------------------------------------------------------------------
# Implementation details worth pinning down
# ---------------------------------------------------------------------------------------------


def test_stable_argsort_rows_float32_fast_path():
    rng = np.random.default_rng(0)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38], np.float32)
    x = rng.choice(np.concatenate([specials, rng.standard_normal(5).astype(np.float32)]), (40, 300))
    x = x.astype(np.float32)
    np.testing.assert_array_equal(stable_argsort_rows(x), np.argsort(x, axis=1, kind="stable"))
    y = rng.standard_normal((5, 1000)).astype(np.float32)
    np.testing.assert_array_equal(stable_argsort_rows(y), np.argsort(y, axis=1, kind="stable"))


def test_memory_bounded_by_chunk():
    # With chunk_size=16 the temporaries are ~16 x G; a single Q x G int64 array would be
    # 8 MB here. (numpy reports its allocations to tracemalloc.)
    rng = np.random.default_rng(1)
    num_q, num_g = 1000, 1000
    distmat = rng.random((num_q, num_g), dtype=np.float32)
    g_pids, g_cams = rng.integers(0, 50, num_g), rng.integers(0, 6, num_g)
    q_pids, q_cams = rng.integers(0, 50, num_q), rng.integers(0, 6, num_q)
    tracemalloc.start()
    try:
        evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, chunk_size=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < num_q * num_g  # < 1 byte per matrix entry


# ---------------------------------------------------------------------------------------------
# compute_distance_matrix
# ---------------------------------------------------------------------------------------------


def _features(seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    qf = torch.randn(13, 32, generator=gen, dtype=dtype)
    gf = torch.randn(29, 32, generator=gen, dtype=dtype)
    return qf, gf


def test_euclidean_matches_cdist():
    qf, gf = _features()
    dist = compute_distance_matrix(qf, gf)
    assert dist.dtype == torch.float32 and dist.shape == (13, 29)
    expected = torch.cdist(qf.double(), gf.double()).float()
    torch.testing.assert_close(dist, expected, atol=1e-4, rtol=1e-5)


def test_sqeuclidean_matches_direct_formula():
    qf, gf = _features(1, torch.float64)
    expected = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    dist = compute_distance_matrix(qf, gf, metric="sqeuclidean")
    assert dist.dtype == torch.float32
    torch.testing.assert_close(dist, expected.float(), atol=1e-4, rtol=1e-5)


def test_cosine_matches_explicit_formula():
    qf, gf = _features(2)
    qf[0] *= 100.0  # scale must not matter
    expected = torch.empty(13, 29, dtype=torch.float64)
    for i in range(13):
        for j in range(29):
            q, g = qf[i].double(), gf[j].double()
            expected[i, j] = 1.0 - (q @ g) / (q.norm() * g.norm())
    dist = compute_distance_matrix(qf, gf, metric="cosine")
    torch.testing.assert_close(dist, expected.float(), atol=1e-5, rtol=1e-5)


def test_euclidean_of_identical_features_is_small_not_nan():
    qf, _ = _features(3)
    dist = compute_distance_matrix(qf, qf.clone())
    assert not torch.isnan(dist).any()
    assert dist.diagonal().abs().max() < 1e-2  # cancellation, not exactly 0


def test_distance_errors():
    qf, gf = _features()
    with pytest.raises(ValueError, match="euclidean, sqeuclidean, cosine"):
        compute_distance_matrix(qf, gf, metric="manhattan")
    with pytest.raises(ValueError, match="feature dims"):
        compute_distance_matrix(qf, gf[:, :5])
    with pytest.raises(ValueError, match="2-D"):
        compute_distance_matrix(qf[0], gf)


def _sklearn_018_average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """``sklearn.metrics.average_precision_score`` as scikit-learn 0.18.1 (RGA's pinned
    version) computed it, written out here: ``auc(recall, precision)`` over
    ``precision_recall_curve`` -- one point per distinct score, cut at full recall, plus the
    point (recall 0, precision 1) -- by the trapezoid rule."""
    order = np.argsort(-y_score, kind="mergesort")
    y, s = y_true[order], y_score[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_threshold]
    fps = (1 + last_of_threshold) - tps
    full = int(np.searchsorted(tps, tps[-1]))  # sklearn stops at the first full recall
    precision = np.r_[(tps / (tps + fps))[: full + 1][::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[: full + 1][::-1], 0.0]
    return float(-np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


def test_trapezoid_ap_is_sklearn_0_18_average_precision():
    """RGA (open-reid's evaluator, scikit-learn 0.18.1) scores each query with
    ``average_precision_score`` on the non-junk gallery: the suite's ``trapezoid`` mode is
    that number, query by query; ``standard`` (what sklearn >= 0.19 computes) is not."""
    rng = np.random.default_rng(7)
    q, g, ids = 40, 300, 25
    q_pids, g_pids = rng.integers(0, ids, q), rng.integers(0, ids, g)
    q_cams, g_cams = rng.integers(0, 3, q), rng.integers(0, 3, g)
    dist = rng.random((q, g)) + 0.3 * (q_pids[:, None] != g_pids[None])  # matches rank higher
    trap = evaluate_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ap_mode="trapezoid")
    std = evaluate_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ap_mode="standard")
    checked = 0
    for i in range(q):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))  # open-reid's valid mask
        y_true = (g_pids[keep] == q_pids[i]) & (g_cams[keep] != q_cams[i])
        if not y_true.any():
            assert np.isnan(trap.per_query_ap[i])
            continue
        expected = _sklearn_018_average_precision(y_true.astype(float), -dist[i, keep])
        assert trap.per_query_ap[i] == pytest.approx(expected, abs=1e-12)
        checked += 1
    assert checked > 30
    assert std.mAP - trap.mAP > 0.005  # the two definitions differ measurably here


def test_both_ap_definitions_come_from_one_ranking():
    rng = np.random.default_rng(3)
    distmat = rng.random((60, 200))
    q_pids, g_pids = rng.integers(0, 20, 60), rng.integers(0, 20, 200)
    q_cams, g_cams = rng.integers(0, 3, 60), rng.integers(0, 3, 200)
    by = {mode: evaluate_rank_metrics(distmat, q_pids, g_pids, q_cams, g_cams, ap_mode=mode)
          for mode in ("standard", "trapezoid")}
    for mode, m in by.items():
        assert m.mAP == m.mAP_by_mode[mode]  # the chosen definition is the reported mAP
        assert m.mAP_by_mode == by["standard"].mAP_by_mode  # whichever mode was asked for
    assert by["trapezoid"].mAP < by["standard"].mAP  # trapezoid sits below at these ranks
