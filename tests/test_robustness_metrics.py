"""Non-finite inputs to evaluation: one clear ValueError at the entry point, before any
compiled code sees them (re-ranking used to corrupt the heap on inf; NaN only warned)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reid_core.metrics.rerank as rerank
from reid_core.metrics.distance import compute_distance_matrix
from reid_core.metrics.rank import evaluate_rank, evaluate_rank_metrics, require_finite
from reid_core.metrics.rerank import re_ranking, re_ranking_from_distances


def _features(num_q: int = 8, num_g: int = 24, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((num_q, dim)).astype(np.float32),
            rng.standard_normal((num_g, dim)).astype(np.float32))


@pytest.fixture
def no_native_code(monkeypatch):
    """Fail if the re-ranking reaches its numba pass: the check must come first."""

    def reached(*args, **kwargs):
        raise AssertionError("the compiled re-ranking code ran on non-finite input")

    monkeypatch.setattr(rerank, "_NeighbourState", reached)


# ---------------------------------------------------------------------------------------------
# re-ranking
# ---------------------------------------------------------------------------------------------


def test_rerank_inf_in_query_features_is_a_clear_error(no_native_code):
    qf, gf = _features()
    qf[3, 1] = np.inf
    qf[5, 0] = -np.inf
    qf[5, 2] = np.nan
    with pytest.raises(ValueError) as info:
        re_ranking(qf, gf, k1=5, k2=3)
    assert str(info.value).startswith(
        "re_ranking: query features contain 3 non-finite values (NaN/inf) in rows [3, 5]; ")


def test_rerank_nan_in_gallery_tensor_is_a_clear_error(no_native_code):
    qf, gf = _features()
    gf[0, 0] = gf[17, 4] = np.nan
    with pytest.raises(ValueError, match=r"re_ranking: gallery features contain 2 non-finite "
                                         r"values \(NaN/inf\) in rows \[0, 17\]"):
        re_ranking(torch.from_numpy(qf), torch.from_numpy(gf), k1=5, k2=3, base="cosine")


def test_rerank_from_distances_rejects_inf(no_native_code):
    qf, gf = _features()
    q_g, q_q, g_g = (compute_distance_matrix(a, b).numpy() for a, b in
                     ((qf, gf), (qf, qf), (gf, gf)))
    g_g[4, 7] = np.inf
    with pytest.raises(ValueError, match=r"re_ranking_from_distances: g_g_dist contains 1 "
                                         r"non-finite values \(NaN/inf\) in rows \[4\]"):
        re_ranking_from_distances(q_g, q_q, g_g, k1=5, k2=3)


def test_rerank_of_finite_features_unchanged():
    qf, gf = _features()
    direct = re_ranking(qf, gf, k1=5, k2=3)
    q_g, q_q, g_g = (compute_distance_matrix(a, b).numpy() for a, b in
                     ((qf, gf), (qf, qf), (gf, gf)))
    np.testing.assert_allclose(direct, re_ranking_from_distances(q_g, q_q, g_g, k1=5, k2=3),
                               atol=1e-5)
    assert np.isfinite(direct).all()


# ---------------------------------------------------------------------------------------------
# rank evaluation
# ---------------------------------------------------------------------------------------------


def _ids() -> tuple[list[int], list[int], list[int], list[int]]:
    q_pids, g_pids = [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 1, 2]
    q_cams, g_cams = [0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]
    return q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_rank_nan_counted_with_rows_across_chunks(backend):
    distmat = np.random.default_rng(1).random((5, 7))
    distmat[1, 3] = distmat[4, 0] = distmat[4, 6] = np.nan
    if backend == "torch":
        distmat = torch.from_numpy(distmat)
    # chunk_size=1: the first NaN is met in the second chunk; the message is about the matrix.
    with pytest.raises(ValueError, match=r"evaluate_rank_metrics: distmat contains 3 NaN values "
                                         r"in rows \[1, 4\]"):
        evaluate_rank_metrics(distmat, *_ids(), chunk_size=1, backend=backend)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(distmat, *_ids(), backend=backend)


def test_rank_inf_stays_an_ordered_value():
    # Documented and pinned by the reference tests: inf ranks last, -inf first.
    distmat = np.full((5, 7), 0.5)
    distmat[0, 0] = np.inf  # query 0 (pid 1) matches gallery 0 and 5
    distmat[0, 5] = -np.inf
    result = evaluate_rank_metrics(distmat, *_ids(), max_rank=3)
    assert result.first_match_rank[0] == 1  # gallery 5, at -inf
    assert result.per_query_ap[0] == pytest.approx((1 / 1 + 2 / 7) / 2)  # gallery 0 ranks 7th


@pytest.mark.parametrize("max_rank", [0, -1])
def test_rank_max_rank_below_one_rejected(max_rank):
    with pytest.raises(ValueError, match="max_rank must be a positive integer"):
        evaluate_rank_metrics(np.zeros((5, 7)), *_ids(), max_rank=max_rank)


# ---------------------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_distance_rejects_non_finite_features(metric):
    qf, gf = _features()
    gf[9, 2] = np.inf
    with pytest.raises(ValueError, match=r"compute_distance_matrix: gallery features contain 1 "
                                         r"non-finite values \(NaN/inf\) in rows \[9\]"):
        compute_distance_matrix(torch.from_numpy(qf), torch.from_numpy(gf), metric)
    qf[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"query features contain 1 non-finite"):
        compute_distance_matrix(qf, gf, metric)  # numpy input too


# ---------------------------------------------------------------------------------------------
# the shared check
# ---------------------------------------------------------------------------------------------


def test_require_finite_lists_ten_rows_then_a_count():
    values = np.zeros((40, 3), dtype=np.float64)
    values[::2, 1] = np.nan  # 20 rows
    with pytest.raises(ValueError, match=r"contains 20 non-finite values \(NaN/inf\) in rows "
                                         r"\[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, \.\.\. \(20 rows\)\]"):
        require_finite(values, "x", "f")


def test_require_finite_passes_integers_and_scans_in_blocks(monkeypatch):
    import reid_core.metrics.rank as rank

    require_finite(np.arange(12).reshape(3, 4), "ids", "f")  # integers are always finite
    monkeypatch.setattr(rank, "_FINITE_BLOCK_ITEMS", 8)  # 2 rows of 4 per block
    values = np.ones((9, 4), dtype=np.float32)
    values[8, 3] = np.inf
    with pytest.raises(ValueError, match=r"1 non-finite values \(NaN/inf\) in rows \[8\]"):
        require_finite(values, "x", "f")
    require_finite(values, "x", "f", allow_inf=True)  # inf allowed, no NaN
