"""Tests for reid_core.metrics.rerank: both public functions against a plain dense reference
of Zhong et al.'s algorithm (written here from the paper's steps as the ranklist code runs
them), the base-distance conventions, memory leanness and input validation."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import reid_core.metrics
from reid_core.metrics.distance import compute_distance_matrix
from reid_core.metrics.rerank import BASE_DISTANCES, re_ranking, re_ranking_from_distances

# ---------------------------------------------------------------------------------------------
# Plain reference: dense numpy, float32, one point at a time -- no cleverness.
# ---------------------------------------------------------------------------------------------


def reciprocal_set(rank: np.ndarray, i: int, k: int) -> list[int]:
    """Members j of i's k+1 nearest whose own k+1 nearest contain i (in i's rank order)."""
    return [int(j) for j in rank[i, :k + 1] if i in set(rank[j, :k + 1].tolist())]


def zhong_reference(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3, kind=None):
    """Zhong et al.'s k-reciprocal re-ranking on distance matrices (ranklist conventions).

    ``kind`` is passed to ``np.argsort``: the original uses the default (unstable) sort.
    """
    q_g, q_q, g_g = (np.asarray(m) for m in (q_g, q_q, g_g))
    num_q = q_g.shape[0]
    joint = np.block([[q_q, q_g], [q_g.T, g_g]])
    original = np.square(joint).astype(np.float32)
    # each column over its own max, then transposed: row i of `work` is column i
    work = (original / original.max(axis=0)).T
    n = work.shape[0]
    rank = np.argsort(work, axis=1, kind=kind)
    half = int(np.around(k1 / 2.0))

    V = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        core = reciprocal_set(rank, i, k1)
        members = list(core)
        for c in core:
            cand = reciprocal_set(rank, c, half)
            if len(set(cand) & set(core)) > 2.0 / 3.0 * len(cand):
                members += cand
        members = sorted(set(members))
        w = np.exp(-work[i, members])
        V[i, members] = w / w.sum()

    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(axis=0) for i in range(n)]).astype(np.float32)

    final = np.empty((num_q, n - num_q), dtype=np.float32)
    for q in range(num_q):
        for g in range(num_q, n):
            s = np.minimum(V[q], V[g]).sum()  # min is 0 outside the shared support
            jaccard = 1.0 - s / (2.0 - s)
            final[q, g - num_q] = (1 - lambda_value) * jaccard + lambda_value * work[q, g]
    return final


# ---------------------------------------------------------------------------------------------
# Problems with identity structure, free of ties at the neighbour cut-offs
# ---------------------------------------------------------------------------------------------


def identity_features(num_q, num_g, dim, seed, ids=None, integer=False):
    """Identity centres plus noise (and a few distractors). ``integer=True`` draws small
    integers so that float32 GEMM distances are exact (all partial sums < 2**24)."""
    rng = np.random.default_rng(seed)
    ids = ids or max(2, (num_q + num_g) // 8)
    if integer:
        centres = rng.integers(-120, 121, size=(ids, dim))
        noise = lambda n: rng.integers(-40, 41, size=(n, dim))  # noqa: E731
    else:
        centres = rng.normal(size=(ids, dim))
        noise = lambda n: rng.normal(scale=0.6, size=(n, dim))  # noqa: E731
    q = centres[rng.integers(0, ids, num_q)] + noise(num_q)
    g = centres[rng.integers(0, ids, num_g)] + noise(num_g)
    g[: num_g // 10] = noise(num_g // 10) * 3  # distractors around the origin
    return q.astype(np.float64), g.astype(np.float64)


def exact_euclidean(a, b):
    """float64 Euclidean distances by explicit differences (not the GEMM expansion)."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def euclidean_matrices(qf, gf):
    return exact_euclidean(qf, gf), exact_euclidean(qf, qf), exact_euclidean(gf, gf)


def assert_no_cutoff_ties(q_g, q_q, g_g, k1, k2):
    """The reference's argsort order is unspecified on exact ties; the comparisons below are
    only meaningful if no tie straddles a cut-off (k1 + 1, round(k1/2) + 1, k2)."""
    joint = np.square(np.block([[q_q, q_g], [q_g.T, g_g]])).astype(np.float32)
    work = np.sort((joint / joint.max(axis=0)).T, axis=1)
    for cut in {k1 + 1, int(np.around(k1 / 2.0)) + 1, k2}:
        if cut < work.shape[1]:
            assert (work[:, cut - 1] < work[:, cut]).all(), f"tie at cut-off {cut}: reseed"


CASES = [  # (num_q, num_g, dim, seed, k1, k2, lambda)
    (20, 120, 16, 0, 20, 6, 0.3),
    (35, 160, 32, 1, 20, 6, 0.3),
    (15, 90, 8, 2, 10, 1, 0.3),
    (25, 100, 16, 3, 7, 3, 0.0),
    (12, 70, 12, 4, 5, 8, 1.0),
    (30, 130, 24, 5, 15, 25, 0.5),  # k2 > k1 + 1: query expansion beyond the k1 list
]


@pytest.mark.parametrize("num_q,num_g,dim,seed,k1,k2,lam", CASES)
def test_from_distances_matches_reference(num_q, num_g, dim, seed, k1, k2, lam):
    qf, gf = identity_features(num_q, num_g, dim, seed)
    mats = euclidean_matrices(qf, gf)
    assert_no_cutoff_ties(*mats, k1, k2)
    expected = zhong_reference(*mats, k1, k2, lam)
    got = re_ranking_from_distances(*mats, k1=k1, k2=k2, lambda_value=lam, block_size=37)
    assert got.dtype == np.float32 and got.shape == (num_q, num_g)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("num_q,num_g,dim,seed,k1,k2,lam", CASES)
def test_features_float64_matches_reference(num_q, num_g, dim, seed, k1, k2, lam):
    qf, gf = identity_features(num_q, num_g, dim, seed)
    mats = euclidean_matrices(qf, gf)
    expected = zhong_reference(*mats, k1, k2, lam)
    got = re_ranking(qf, gf, k1, k2, lam, block_size=29)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("seed,k1,k2", [(10, 20, 6), (11, 12, 1)])
def test_features_float32_matches_reference(seed, k1, k2):
    # integer features: float32 GEMM distances are exact, so neighbour lists must agree
    qf, gf = identity_features(40, 200, 24, seed, integer=True)
    mats = euclidean_matrices(qf, gf)
    assert_no_cutoff_ties(*mats, k1, k2)
    expected = zhong_reference(*mats, k1, k2, 0.3)
    got = re_ranking(qf.astype(np.float32), torch.from_numpy(gf.astype(np.float32)), k1, k2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_exported_from_metrics_package():
    assert reid_core.metrics.re_ranking is re_ranking
    assert reid_core.metrics.re_ranking_from_distances is re_ranking_from_distances


def cutoff_ties(q_g, q_q, g_g, k1, k2) -> int:
    joint = np.square(np.block([[q_q, q_g], [q_g.T, g_g]])).astype(np.float32)
    work = np.sort((joint / joint.max(axis=0)).T, axis=1)
    cuts = {k1 + 1, int(np.around(k1 / 2.0)) + 1, k2}
    return sum(int((work[:, c - 1] == work[:, c]).sum()) for c in cuts)


@pytest.mark.parametrize("k1,k2", [(20, 6), (6, 3)])
def test_ties_follow_stable_argsort(k1, k2):
    """On exact ties the original's order is unspecified (default argsort); ours is documented
    as np.argsort(W, kind="stable"). Duplicated features force ties at the cut-offs."""
    qf, gf = identity_features(30, 150, 6, 13, integer=True)
    gf[100:140] = gf[50:90]  # duplicated gallery images
    qf[:8] = gf[:8]  # queries that are also in the gallery
    mats = euclidean_matrices(qf, gf)
    assert cutoff_ties(*mats, k1, k2) > 0  # the case under test really occurs
    expected = zhong_reference(*mats, k1, k2, kind="stable")
    got_m = re_ranking_from_distances(*mats, k1=k1, k2=k2, block_size=17)
    got_f = re_ranking(qf.astype(np.float32), gf.astype(np.float32), k1, k2, block_size=17)
    np.testing.assert_allclose(got_m, expected, rtol=0, atol=2e-6)
    np.testing.assert_allclose(got_f, expected, rtol=0, atol=2e-6)


def test_default_parameters_are_zhong():
    qf, gf = identity_features(20, 120, 16, 0)
    np.testing.assert_array_equal(re_ranking(qf, gf), re_ranking(qf, gf, 20, 6, 0.3))


def test_reranking_changes_the_ranking():
    """Guards against an implementation that returns (a multiple of) the original distance."""
    qf, gf = identity_features(20, 120, 16, 0)
    q_g = exact_euclidean(qf, gf) ** 2
    got = re_ranking(qf, gf)
    assert (np.argsort(got, axis=1) != np.argsort(q_g, axis=1)).any()
    assert not np.allclose(got, 0.3 * q_g / q_g.max(axis=1, keepdims=True), atol=1e-3)


def test_asymmetric_matrices_use_columns_like_the_reference():
    """The reference divides columns by their max and transposes: row i = column i."""
    qf, gf = identity_features(18, 80, 16, 6)
    q_g, q_q, g_g = euclidean_matrices(qf, gf)
    rng = np.random.default_rng(0)
    q_q = q_q * rng.uniform(0.9, 1.1, q_q.shape)
    g_g = g_g * rng.uniform(0.9, 1.1, g_g.shape)
    assert_no_cutoff_ties(q_g, q_q, g_g, 20, 6)
    expected = zhong_reference(q_g, q_q, g_g)
    got = re_ranking_from_distances(q_g, q_q, g_g, block_size=11)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    # and transposing the inputs is not a no-op, so the test can tell the two apart
    assert np.abs(re_ranking_from_distances(q_g, q_q.T, g_g.T) - expected).max() > 1e-4


@pytest.mark.parametrize("base", BASE_DISTANCES)
def test_base_equals_from_distances_of_that_metric(base):
    """re_ranking(base=b) == re_ranking_from_distances(D_b(q, g), D_b(q, q), D_b(g, g))."""
    qf, gf = identity_features(25, 110, 16, 7)
    qf_t, gf_t = torch.from_numpy(qf), torch.from_numpy(gf)
    mats = [compute_distance_matrix(a, b, metric=base).double().numpy()
            for a, b in ((qf_t, gf_t), (qf_t, qf_t), (gf_t, gf_t))]
    for m in mats[1:]:
        np.fill_diagonal(m, 0.0)  # GEMM cancellation leaves ~1e-8 on the diagonal
    assert_no_cutoff_ties(*mats, 20, 6)
    expected = zhong_reference(*mats)
    np.testing.assert_allclose(re_ranking(qf, gf, base=base), expected, rtol=0, atol=2e-6)


def test_cosine_base_is_layumi_convention():
    """layumi squares 2 - 2 cos; the per-row max normalisation cancels the factor 4."""
    qf, gf = identity_features(20, 100, 16, 8)
    qn, gn = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (qf, gf))
    mats = (2 - 2 * qn @ gn.T, 2 - 2 * qn @ qn.T, 2 - 2 * gn @ gn.T)
    for m in mats[1:]:
        np.fill_diagonal(m, 0.0)
    expected = zhong_reference(*mats)
    np.testing.assert_allclose(re_ranking(qf, gf, base="cosine"), expected, rtol=0, atol=2e-6)
    np.testing.assert_allclose(re_ranking(qn, gn, base="sqeuclidean"), expected, rtol=0,
                               atol=2e-6)


def test_out_argument_and_block_size_do_not_change_the_result(tmp_path):
    qf, gf = identity_features(30, 140, 16, 9)
    ref = re_ranking(qf, gf)
    out = np.full((30, 140), np.nan, dtype=np.float32)
    assert re_ranking(qf, gf, block_size=3, out=out, device="cpu") is out
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    mm = np.lib.format.open_memmap(tmp_path / "rr.npy", mode="w+", dtype=np.float32,
                                   shape=(30, 140))
    re_ranking_from_distances(*euclidean_matrices(qf, gf), out=mm)
    mm.flush()
    np.testing.assert_allclose(np.load(tmp_path / "rr.npy"), ref, rtol=0, atol=2e-6)


def test_never_allocates_a_joint_square_matrix():
    """tracemalloc sees numpy and scipy allocations (the GEMM strips, output, sparse V; not
    the arrays numba kernels allocate, which are O(N k1^2)): the peak must stay far below a
    single (Q+G)^2 float32 array, of which the dense algorithm holds several."""
    qf, gf = identity_features(600, 2400, 32, 12)
    qf, gf = qf.astype(np.float32), gf.astype(np.float32)
    re_ranking(qf[:50], gf[:200])  # compile / warm caches outside the measurement
    joint_bytes = (600 + 2400) ** 2 * 4  # 36 MB
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = re_ranking(qf, gf, block_size=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.shape == (600, 2400)
    # the output alone is 600 * 2400 * 4 = 5.8 MB
    assert peak < joint_bytes / 2, f"peak {peak / 1e6:.1f} MB vs joint {joint_bytes / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"k1": 0}, "k1"), ({"k2": 0}, "k2"), ({"k1": 2.5}, "k1"),
    ({"lambda_value": 1.5}, "lambda_value"), ({"lambda_value": -0.1}, "lambda_value"),
    ({"k1": 200}, "must not exceed"), ({"base": "manhattan"}, "unknown base"),
    ({"block_size": 0}, "block_size"),
    ({"out": np.zeros((5, 20), dtype=np.float64)}, "out must be"),
    ({"out": np.zeros((20, 5), dtype=np.float32)}, "out must be"),
])
def test_validation_errors(kwargs, match):
    qf, gf = identity_features(5, 20, 8, 0)
    with pytest.raises(ValueError, match=match):
        re_ranking(qf, gf, **kwargs)


def test_validation_errors_shapes():
    qf, gf = identity_features(5, 20, 8, 0)
    with pytest.raises(ValueError, match="feature dims"):
        re_ranking(qf, gf[:, :4])
    with pytest.raises(ValueError, match="2-D"):
        re_ranking(qf[0], gf)
    q_g, q_q, g_g = euclidean_matrices(qf, gf)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        re_ranking_from_distances(q_g, g_g, q_q)
    with pytest.raises(ValueError, match="2-D"):
        re_ranking_from_distances(q_g[0], q_q, g_g)
