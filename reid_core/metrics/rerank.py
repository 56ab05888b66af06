"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), memory-lean and exact.

Two entry points:

* :func:`re_ranking` works from **features** and never forms a ``(Q+G) x (Q+G)`` matrix;
* :func:`re_ranking_from_distances` takes Zhong's three distance matrices (the signature of
  ``re_ranking_ranklist.py`` / torchreid ``re_ranking``) and runs the same lean algorithm.

Both return the numbers of the widely used dense implementation (zhunzhong07
``python-version/re_ranking_ranklist.py``, also torchreid ``utils/rerank.py``; BoT
``utils/re_ranking.py`` is the same algorithm on squared distances with float16 storage) up to
float rounding. In the notation of that code the algorithm is:

1. joint set of ``N = Q + G`` points (queries first); ``original = d ** 2`` of the joint
   distance matrix ``d`` it is given, in float32; then ``original[:, i]`` is divided by its
   maximum and the matrix transposed, so row ``i`` of the working matrix ``W`` is column ``i``
   of ``original`` over that column's max (for a symmetric ``d``: row ``i`` over its own max);
2. ``initial_rank`` = per-row ascending order of ``W``; here exactly
   ``np.argsort(W, kind="stable")`` -- ties by lower index (the reference's default argsort
   leaves the order of exact ties unspecified; see ``_NeighbourState``);
3. ``R(i, k)`` = the members ``j`` of ``initial_rank[i, :k+1]`` with ``i`` in
   ``initial_rank[j, :k+1]`` (k-reciprocal set); the k1-reciprocal set of ``i`` is expanded by
   ``R(c, round(k1/2))`` of each member ``c`` whose overlap with it exceeds 2/3 of its size
   (``np.around``: halves round to even, as in the reference);
4. ``V[i, j] = exp(-W[i, j])`` over the expanded set, normalised to sum to 1;
5. query expansion (``k2 > 1``): ``V[i] <- mean(V[initial_rank[i, :k2]])``;
6. Jaccard distance ``1 - s / (2 - s)`` with ``s = sum_k min(V[q, k], V[g, k])``;
7. ``final = (1 - lambda) * jaccard + lambda * W``, query rows x gallery columns.

How it stays lean (``N`` = Q + G points, ``B`` = rows per strip, ``K = max(k1 + 1, k2)``):

* **pass 1** streams the original distances in strips of ``B`` rows through numba kernels that
  keep each row's ``K`` (+ a small tie margin) smallest values with their indices, and its
  max, and copy the query x gallery values into the output. From features the distance matrix
  is symmetric, so strip ``[a, b)`` only spans columns ``[a, N)`` (one GEMM, half the joint
  Gram matrix in total) and also updates the rows of its columns, transposed. From given
  matrices each strip is a block of full working rows;
* **k-reciprocal sets** are built from the neighbour lists alone (numba, parallel over points);
  the distances their weights need are recomputed per pair from the features in float64 (or
  read from the given matrices);
* ``V`` is a sparse CSR matrix (tens to a few hundred non-zeros per row); query expansion is
  one sparse product;
* the Jaccard term is accumulated per query over shared support only (an inverted index over
  the gallery rows of ``V``); pairs with no shared support have ``s = 0``, i.e. Jaccard 1.

Memory: the output ``Q x G`` float32 (``4 Q G`` bytes: 0.2 GiB at Market-1501 size, 3.6 GiB at
MSMT17 size; pass ``out=`` -- e.g. an ``np.memmap`` -- to place it yourself), one strip of at
most ``2**25`` elements (128 MiB in float32; twice that for float64 features), the features,
and ``O(N (K + |set| k2))`` for neighbour lists and sparse ``V``. Measured peak RSS added by
a call on 256-d features: 0.35 GiB at Market size, 3.8 GiB at MSMT17 size
(``results/benchmarks/rerank.md``).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
import torch

from reid_core.metrics.rank import require_finite

#: Base distances :func:`re_ranking` can compute from features (see its docstring).
BASE_DISTANCES: tuple[str, ...] = ("euclidean", "sqeuclidean", "cosine")

# Elements of one (B, N) distance block: 2**25 float32 = 128 MB, whatever N is.
_BLOCK_ELEMENTS = 1 << 25


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def re_ranking(
    qf: Any,
    gf: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    base: str = "euclidean",
    block_size: int | None = None,
    device: str | torch.device | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """k-reciprocal re-ranking from features, without any ``(Q+G)^2`` matrix.

    Zhong et al.'s reference function takes a distance matrix ``d`` and uses ``d ** 2`` as
    its "original distance". ``base`` names the distance ``d`` that is handed to it, so that
    ``re_ranking(qf, gf, base=b)`` equals ``re_ranking_from_distances(D(qf, gf), D(qf, qf),
    D(gf, gf))`` with ``D = compute_distance_matrix(..., metric=b)``:

    * ``"euclidean"`` (default): ``d = |x - y|``, original distance ``|x - y|^2``. This is the
      convention of Zhong et al.'s own code (MATLAB and ``re_ranking_feature``, ``cdist`` then
      squared), of the ranklist version fed Euclidean distances, and of BoT (squared Euclidean
      computed from the features, not squared again). On L2-normalised features it is
      ``2 - 2 cos`` (BoT with ``feat_norm``).
    * ``"sqeuclidean"``: ``d = |x - y|^2``, original distance ``|x - y|^4`` -- what the ranklist
      function computes when it is handed *squared* Euclidean distances (torchreid's default
      ``euclidean`` metric is squared, so torchreid's ``--rerank`` is this convention).
    * ``"cosine"``: ``d = 1 - cos(x, y)`` (clamped to [0, 2]), original distance
      ``(1 - cos)^2``. Because every row is divided by its max, positive scale factors cancel:
      this equals layumi's ``re_ranking`` (``(2 - 2 cos)^2`` from cosine similarities).

    Args:
        qf (torch.Tensor or np.ndarray): query features of shape (num_query, dim).
        gf (torch.Tensor or np.ndarray): gallery features of shape (num_gallery, dim).
        k1 (int, optional): size of the k-reciprocal neighbourhoods. Default is 20.
        k2 (int, optional): neighbours averaged by local query expansion (1 = none).
            Default is 6.
        lambda_value (float, optional): weight of the original distance in [0, 1].
            Default is 0.3.
        base (str, optional): base distance, see above. Default is ``"euclidean"``.
        block_size (int, optional): rows per distance strip; default ``2**25 // (Q + G)``,
            so that a strip holds at most 2**25 values (128 MiB in float32).
        device (str or torch.device, optional): where the GEMMs run. Default (None or
            ``"cpu"``): numpy's BLAS on the host (OpenBLAS here ran these float32 GEMMs ~1.5-2x
            faster than torch's MKL on the AMD test machine); any other torch device (e.g.
            ``"cuda"``) computes each strip there and copies it back to the host.
        out (np.ndarray, optional): C-contiguous float32 array of shape (num_query,
            num_gallery) to write the result into (e.g. an ``np.memmap``).

    Returns:
        np.ndarray: re-ranked distances, float32, shape (num_query, num_gallery) (``out`` if
        given).

    Notes:
        Distances are computed in float32 (float64 if either input is float64) by the
        expansion ``|x|^2 + |y|^2 - 2 x.y`` (clamped at 0) for ranking, and per pair in
        float64 for the weights of step 4; the original distance is rounded to float32 as in
        the reference. The distance of a point to itself is taken as exactly 0 (also for an
        all-zero feature under ``"cosine"``, where ``compute_distance_matrix`` would give 1).
        Neighbour order is ``np.argsort(W, kind="stable")``; when two distances at a cut-off
        (k1 + 1, round(k1/2) + 1, k2) are equal in float32 -- or, from features, differ by
        less than GEMM rounding -- the reference may choose the other point. Memory: see the
        module docstring.

    Raises:
        ValueError: on bad shapes, parameters, ``base`` or ``out``, or NaN / inf in a feature
            (checked before any compiled code runs: inf used to corrupt the heap there).
    """
    if base not in BASE_DISTANCES:
        raise ValueError(f"unknown base distance {base!r}; valid: {', '.join(BASE_DISTANCES)}")
    source = _FeatureSource(qf, gf, base, device)
    num_query, num_gallery = source.num_query, source.num_all - source.num_query
    _check_params(num_query, num_gallery, k1, k2, lambda_value)
    out = _prepare_out(out, num_query, num_gallery)
    _lean_rerank(source, num_query, num_gallery, k1, k2, lambda_value, block_size, out)
    return out


def re_ranking_from_distances(
    q_g_dist: Any,
    q_q_dist: Any,
    g_g_dist: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    block_size: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """k-reciprocal re-ranking from given distance matrices (Zhong et al.'s signature).

    The matrices are squared, as in the reference ranklist code: hand in Euclidean
    distances (``compute_distance_matrix(..., "euclidean")``) for Zhong's convention of a
    squared-Euclidean original distance; squared distances in give fourth powers (see
    :func:`re_ranking` for the conventions). ``q_q_dist`` and ``g_g_dist`` need not be
    symmetric: as in the reference, the working row of point ``i`` is *column* ``i`` of the
    joint matrix ``[[q_q, q_g], [q_g.T, g_g]]``.

    Args:
        q_g_dist (np.ndarray): query-gallery distances of shape (num_query, num_gallery).
        q_q_dist (np.ndarray): query-query distances of shape (num_query, num_query).
        g_g_dist (np.ndarray): gallery-gallery distances of shape (num_gallery, num_gallery).
        k1 (int, optional): size of the k-reciprocal neighbourhoods. Default is 20.
        k2 (int, optional): neighbours averaged by local query expansion (1 = none).
            Default is 6.
        lambda_value (float, optional): weight of the original distance in [0, 1].
            Default is 0.3.
        block_size (int, optional): rows of the joint matrix processed at a time; default
            keeps a block at 2**25 elements.
        out (np.ndarray, optional): C-contiguous float32 array of shape (num_query,
            num_gallery) to write the result into.

    Returns:
        np.ndarray: re-ranked distances, float32, shape (num_query, num_gallery).

    Notes:
        Memory: the inputs themselves are ``(Q + G)^2`` values (35 GB in float32 at MSMT17
        size, where only :func:`re_ranking` is practical); beyond them this function needs the
        output, one block of rows and the sparse structures -- never the joint matrix, its
        argsort or a dense ``V``, which take ~8 GB at Market-1501 size in the reference.
        Squares are taken in float64 for float64 input, else in float32, then rounded to
        float32 (the reference squares in the input dtype and casts to float32).

    Raises:
        ValueError: on inconsistent shapes, bad parameters or ``out``, or NaN / inf in a
            matrix (checked before any compiled code runs).
    """
    q_g, q_q, g_g = (_as_numpy_2d(m, name) for m, name in
                     ((q_g_dist, "q_g_dist"), (q_q_dist, "q_q_dist"), (g_g_dist, "g_g_dist")))
    for matrix, name in ((q_g, "q_g_dist"), (q_q, "q_q_dist"), (g_g, "g_g_dist")):
        require_finite(matrix, name, "re_ranking_from_distances")
    num_query, num_gallery = q_g.shape
    if q_q.shape != (num_query, num_query) or g_g.shape != (num_gallery, num_gallery):
        raise ValueError(
            f"inconsistent shapes: q_g_dist {q_g.shape} needs q_q_dist ({num_query}, {num_query})"
            f" and g_g_dist ({num_gallery}, {num_gallery}), got {q_q.shape} and {g_g.shape}"
        )
    _check_params(num_query, num_gallery, k1, k2, lambda_value)
    out = _prepare_out(out, num_query, num_gallery)
    source = _MatrixSource(q_g, q_q, g_g)
    _lean_rerank(source, num_query, num_gallery, k1, k2, lambda_value, block_size, out)
    return out


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def _check_params(num_query: int, num_gallery: int, k1: int, k2: int, lam: float) -> None:
    if num_query < 1 or num_gallery < 1:
        raise ValueError(f"need at least one query and one gallery item, got {num_query}, "
                         f"{num_gallery}")
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{name} must be a positive integer, got {k!r}")
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lam!r}")
    num_all = num_query + num_gallery
    if max(k1 + 1, k2) > num_all:
        raise ValueError(
            f"k1 + 1 = {k1 + 1} and k2 = {k2} must not exceed the {num_all} query + gallery items"
        )


def _prepare_out(out: np.ndarray | None, num_query: int, num_gallery: int) -> np.ndarray:
    if out is None:
        return np.empty((num_query, num_gallery), dtype=np.float32)
    if (not isinstance(out, np.ndarray) or out.shape != (num_query, num_gallery)
            or out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(
            f"out must be a writeable C-contiguous float32 array of shape "
            f"({num_query}, {num_gallery}), got "
            f"{getattr(out, 'dtype', type(out))} {getattr(out, 'shape', '')}"
        )
    return out


def _as_numpy_2d(m: Any, name: str) -> np.ndarray:
    arr = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    return arr


# ---------------------------------------------------------------------------------------------
# pass 1: neighbour lists and row maxima, from features or from the given matrices
# ---------------------------------------------------------------------------------------------
#
# Both sources stream float32 "original" values (what the reference holds before dividing by
# the max) through the same numba kernels, which keep each working row's smallest values and
# its max, and copy query-row/gallery-column values into ``out``. The reference ranks
# W = original / row max, whose float32 division can make two distinct original values
# equal; so the scan keeps ``_TIE_MARGIN`` extra candidates (by original value; W is monotone
# in it), and ``neighbour_lists`` re-sorts them by (W, index). The result is exactly
# ``np.argsort(W, kind="stable")[:, :num_keep]``. (The reference's default argsort is not
# stable: on an exact tie of W at a cut-off its choice may be the other point.)

#: Candidates kept beyond ``max(k1 + 1, k2)`` so that ties of W at the cut-off are resolved.
_TIE_MARGIN = 8


class _NeighbourState:
    """Running lists of each row's smallest original values (ascending; among equal values
    the first to arrive, i.e. the lower column index, comes first), row maxima, the output."""

    def __init__(self, num_all: int, num_query: int, num_keep: int, out: np.ndarray) -> None:
        self.num_keep = num_keep
        width = min(num_keep + _TIE_MARGIN, num_all)
        self.best_val = np.full((num_all, width), np.inf, dtype=np.float32)
        self.best_idx = np.full((num_all, width), -1, dtype=np.int32)
        self.row_max = np.zeros(num_all, dtype=np.float32)  # distances are >= 0
        self.num_query = num_query
        self.out = np.asarray(out)  # plain ndarray view (also of an np.memmap) for numba

    def update_rows(self, src: np.ndarray, row0: int, col0: int, mode: int = -1,
                    sqnorms: np.ndarray | None = None, dst: np.ndarray | None = None) -> None:
        """Rows row0.. of the working matrix get candidates at columns col0.. from ``src``:
        original values if ``mode == -1``, else a Gram block converted into ``dst`` first
        (see ``_scan_rows``)."""
        if mode == -1:
            sqnorms, dst = self.row_max, src  # unused placeholder / in place
        _scan_rows(src, sqnorms, row0, col0, mode, dst, self.best_val, self.best_idx,
                   self.row_max, self.out, self.num_query)

    def neighbour_lists(self) -> np.ndarray:
        """(N, num_keep) int32: the first num_keep of ``np.argsort(W, kind="stable")``."""
        work = self.best_val / self.row_max[:, None]  # float32, as the reference divides
        order = np.lexsort((self.best_idx, work), axis=1)
        return np.take_along_axis(self.best_idx, order[:, :self.num_keep], axis=1)

    def update_cols(self, vals: np.ndarray, row0: int, col0: int) -> None:
        """Rows col0.. get candidates vals[r, c] at columns row0 + r (symmetric matrices)."""
        num_chunks = min(vals.shape[1], 8 * numba.get_num_threads())
        _scan_cols(vals, row0, col0, self.best_val, self.best_idx, self.row_max, num_chunks)


class _FeatureSource:
    """Original distances from features: GEMM over the upper block triangle, exact pairs."""

    _MODES = {"euclidean": 0, "sqeuclidean": 1, "cosine": 2}

    def __init__(self, qf: Any, gf: Any, base: str, device: str | torch.device | None) -> None:
        qf, gf = (_as_numpy_2d(x, name) for x, name in ((qf, "qf"), (gf, "gf")))
        if qf.shape[1] != gf.shape[1]:
            raise ValueError(f"feature dims differ: qf has shape {qf.shape}, gf has shape "
                             f"{gf.shape}")
        # Before the numba scan: it keeps the smallest values by comparison, which NaN / inf
        # break (inf corrupted the heap).
        require_finite(qf, "query features", "re_ranking")
        require_finite(gf, "gallery features", "re_ranking")
        dtype = np.float64 if np.float64 in (qf.dtype, gf.dtype) else np.float32
        feats = np.concatenate([qf, gf]).astype(dtype, copy=False)
        if base == "cosine":  # zero features stay zero: similarity 0 to everything
            norms = np.linalg.norm(feats, axis=1, keepdims=True)
            feats = feats / np.maximum(norms, 1e-12).astype(dtype)
        self.feats = np.ascontiguousarray(feats)
        self.sqnorms = np.einsum("ij,ij->i", self.feats, self.feats)
        self.mode = self._MODES[base]
        self.num_query = qf.shape[0]
        self.num_all = feats.shape[0]
        self.device = None if device is None or torch.device(device).type == "cpu" \
            else torch.device(device)

    def scan(self, state: _NeighbourState, block_size: int) -> None:
        # D is symmetric: each strip is rows [a, b) x columns [a, N); the rows get the whole
        # strip, the columns beyond the strip's own square get it transposed. Half the GEMMs.
        n = self.num_all
        gram_buf = np.empty(block_size * n, dtype=self.feats.dtype)
        vals_buf = gram_buf if self.feats.dtype == np.float32 else \
            np.empty(block_size * n, dtype=np.float32)
        feats_dev = None if self.device is None else torch.from_numpy(self.feats).to(self.device)
        for a in range(0, n, block_size):
            b = min(a + block_size, n)
            shape = (b - a, n - a)
            gram = gram_buf[: shape[0] * shape[1]].reshape(shape)
            if feats_dev is None:
                np.matmul(self.feats[a:b], self.feats[a:].T, out=gram)
            else:
                gram[...] = (feats_dev[a:b] @ feats_dev[a:].T).cpu().numpy()
            vals = vals_buf[: shape[0] * shape[1]].reshape(shape)
            state.update_rows(gram, a, a, self.mode, self.sqnorms, vals)
            if b < n:
                state.update_cols(vals[:, b - a:], a, b)

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # tens of pairs per point: exact per-pair sums in float64 are cheap
        vals = _pair_base_distance(self.feats, rows, cols, self.mode == 2)
        if self.mode != 0:  # the reference squares the distance it is handed
            vals = vals * vals
        return vals.astype(np.float32)


class _MatrixSource:
    """Original distances read from the three given matrices (joint matrix never formed)."""

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> None:
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_query = q_g.shape[0]
        self.num_all = q_g.shape[0] + q_g.shape[1]

    def scan(self, state: _NeighbourState, block_size: int) -> None:
        # the inputs need not be symmetric: every working row is read in full
        nq = self.num_query
        for lo, hi in ((0, nq), (nq, self.num_all)):
            for a in range(lo, hi, block_size):
                b = min(a + block_size, hi)
                if hi == nq:  # column i of [[q_q], [q_g.T]] = (q_q[:, i], q_g[i, :])
                    block = np.hstack([self.q_q[:, a:b].T, self.q_g[a:b]])
                else:  # column Q+g of [[q_g], [g_g]] = (q_g[:, g], g_g[:, g])
                    block = np.hstack([self.q_g[:, a - nq:b - nq].T, self.g_g[:, a - nq:b - nq].T])
                state.update_rows(self._square(block), a, 0)

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # value of original[cols, rows] (the working matrix is the transpose)
        nq = self.num_query
        vals = np.empty(rows.shape, dtype=np.result_type(self.q_g, self.q_q, self.g_g))
        rq, cq = rows < nq, cols < nq
        for mask, mat, r, c in (
            (rq & cq, self.q_q, cols, rows),
            (rq & ~cq, self.q_g, rows, cols - nq),
            (~rq & cq, self.q_g, cols, rows - nq),
            (~rq & ~cq, self.g_g, cols - nq, rows - nq),
        ):
            vals[mask] = mat[r[mask], c[mask]]
        return self._square(vals)

    @staticmethod
    def _square(x: np.ndarray) -> np.ndarray:
        x = x if x.dtype == np.float64 else x.astype(np.float32, copy=False)
        return np.ascontiguousarray(np.square(x).astype(np.float32, copy=False))


# ---------------------------------------------------------------------------------------------
# the lean algorithm
# ---------------------------------------------------------------------------------------------


def _lean_rerank(source: _FeatureSource | _MatrixSource, num_query: int, num_gallery: int,
                 k1: int, k2: int, lam: float, block_size: int | None, out: np.ndarray) -> None:
    num_all = num_query + num_gallery
    num_keep = max(k1 + 1, k2)
    half = int(np.around(k1 / 2.0))  # numpy rounds half to even, as the reference does
    if block_size is None:
        block_size = max(1, _BLOCK_ELEMENTS // num_all)
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")

    # pass 1: neighbour lists and row maxima; `out` receives the raw original q x g values
    state = _NeighbourState(num_all, num_query, num_keep, out)
    source.scan(state, block_size)
    rank, row_max = state.neighbour_lists(), state.row_max
    del state
    # lambda * W, with W = original / row max rounded in float32 as in the reference
    for a in range(0, num_query, block_size):
        b = min(a + block_size, num_query)
        rows = out[a:b]
        rows /= row_max[a:b, None]
        rows *= np.float32(lam)

    # k-reciprocal expansion sets (CSR over points) and their weights
    sets, sizes = _expansion_sets(rank, k1, half, min(num_all, 8 * numba.get_num_threads()))
    indptr = np.zeros(num_all + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    indices = sets[np.arange(sets.shape[1])[None, :] < sizes[:, None]]
    del sets
    pair_rows = np.repeat(np.arange(num_all, dtype=np.int64), sizes)
    work_vals = source.pairs(pair_rows, indices.astype(np.int64)) / row_max[pair_rows]
    del pair_rows
    V = sp.csr_matrix((_row_softmin(indptr, work_vals), indices, indptr),
                      shape=(num_all, num_all))

    # local query expansion: V[i] <- mean of V over the first k2 neighbours
    if k2 != 1:
        expand = sp.csr_matrix(
            (np.ones(num_all * k2), rank[:, :k2].ravel(),
             np.arange(0, num_all * k2 + 1, k2)), shape=(num_all, num_all))
        V = (expand @ V.astype(np.float64)) / k2
        V = V.astype(np.float32)
    del rank

    # Jaccard over shared support, added to lambda * W already in `out`
    v_query = V[:num_query].tocsr()
    v_gallery_by_col = V[num_query:].tocsc()  # column k -> gallery rows with V[g, k] != 0
    del V
    _add_jaccard(v_query.indptr.astype(np.int64), v_query.indices, v_query.data,
                 v_gallery_by_col.indptr.astype(np.int64), v_gallery_by_col.indices,
                 v_gallery_by_col.data, np.asarray(out), 1.0 - float(lam),
                 min(num_query, 8 * numba.get_num_threads()))


# ---------------------------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------------------------


@numba.njit(inline="always")
def _insert(best_val: np.ndarray, best_idx: np.ndarray, row: int, x: float, idx: int) -> None:
    """Inserts (x, idx) into a row's ascending list (caller checked x < its last value)."""
    p = best_val.shape[1] - 1
    while p > 0 and best_val[row, p - 1] > x:  # strict: equal values keep arrival order
        best_val[row, p] = best_val[row, p - 1]
        best_idx[row, p] = best_idx[row, p - 1]
        p -= 1
    best_val[row, p] = x
    best_idx[row, p] = idx


@numba.njit(parallel=True, cache=True)
def _scan_rows(src: np.ndarray, sqnorms: np.ndarray, row0: int, col0: int, mode: int,
               dst: np.ndarray, best_val: np.ndarray, best_idx: np.ndarray,
               row_max: np.ndarray, out: np.ndarray, num_query: int) -> None:
    """Feeds rows row0.. (columns col0..) to the running top lists, maxima and ``out``.

    ``mode`` -1: ``src`` already holds original values (``dst`` is ``src``). Otherwise
    ``src`` is a Gram block whose original values are written to ``dst`` (may alias ``src``
    when both are float32): mode 0 ``|x - y|^2``, 1 ``|x - y|^4``, 2 ``(1 - cos)^2`` (features
    L2-normalised). Converting a row just before scanning it keeps it in cache.
    """
    last = best_val.shape[1] - 1
    num_cols = src.shape[1]
    for r in numba.prange(src.shape[0]):
        i = row0 + r
        if mode >= 0:
            for c in range(num_cols):
                if mode == 2:
                    d = min(max(1.0 - src[r, c], 0.0), 2.0)
                else:  # clamp: cancellation can make the expansion slightly negative
                    d = max(sqnorms[i] + sqnorms[col0 + c] - 2.0 * src[r, c], 0.0)
                dst[r, c] = d if mode == 0 else d * d
            if col0 <= i < col0 + num_cols:  # a point's distance to itself is exactly 0
                dst[r, i - col0] = 0.0
        m = row_max[i]
        for c in range(num_cols):  # separate loop: vectorises
            m = max(m, dst[r, c])
        row_max[i] = m
        thr = best_val[i, last]
        for c in range(num_cols):
            x = dst[r, c]
            if x < thr:
                _insert(best_val, best_idx, i, x, col0 + c)
                thr = best_val[i, last]
        if i < num_query:  # keep the query x gallery values for the final mix
            for c in range(max(0, num_query - col0), num_cols):
                out[i, col0 + c - num_query] = dst[r, c]


@numba.njit(parallel=True, cache=True)
def _scan_cols(vals: np.ndarray, row0: int, col0: int, best_val: np.ndarray,
               best_idx: np.ndarray, row_max: np.ndarray, num_chunks: int) -> None:
    """Rows col0 + c get candidates vals[r, c] at columns row0 + r (the transposed strip)."""
    # chunks of columns, so each thread owns its rows' state; vals is read row by row
    last = best_val.shape[1] - 1
    num_cols = vals.shape[1]
    for ch in numba.prange(num_chunks):
        c_lo, c_hi = ch * num_cols // num_chunks, (ch + 1) * num_cols // num_chunks
        mx = row_max[col0 + c_lo:col0 + c_hi].copy()
        thr = best_val[col0 + c_lo:col0 + c_hi, last].copy()
        for r in range(vals.shape[0]):
            for c in range(c_lo, c_hi):  # vectorises
                mx[c - c_lo] = max(mx[c - c_lo], vals[r, c])
            for c in range(c_lo, c_hi):
                x = vals[r, c]
                if x < thr[c - c_lo]:
                    j = col0 + c
                    _insert(best_val, best_idx, j, x, row0 + r)
                    thr[c - c_lo] = best_val[j, last]
        row_max[col0 + c_lo:col0 + c_hi] = mx


@numba.njit(cache=True)
def _reciprocal(rank: np.ndarray, i: int, k: int, buf: np.ndarray) -> int:
    """Writes R(i, k) (members j of rank[i, :k+1] with i in rank[j, :k+1]) to buf; its size."""
    n = 0
    for a in range(k + 1):
        j = rank[i, a]
        for b in range(k + 1):
            if rank[j, b] == i:
                buf[n] = j
                n += 1
                break
    return n


@numba.njit(parallel=True, cache=True)
def _expansion_sets(rank: np.ndarray, k1: int, half: int,
                    num_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted expanded k-reciprocal set of every point: (N, cap) buffer + sizes."""
    num_all = rank.shape[0]
    # k1-reciprocal set (<= k1 + 1) plus at most k1 + 1 candidate sets of <= half + 1 each
    cap = (k1 + 1) * (half + 2)
    sets = np.empty((num_all, cap), dtype=np.int32)
    sizes = np.empty(num_all, dtype=np.int64)
    for ch in numba.prange(num_chunks):
        core = np.empty(k1 + 1, dtype=np.int32)
        cand = np.empty(half + 1, dtype=np.int32)
        for i in range(ch * num_all // num_chunks, (ch + 1) * num_all // num_chunks):
            row = sets[i]
            n_core = _reciprocal(rank, i, k1, core)
            m = 0
            for a in range(n_core):
                row[m] = core[a]
                m += 1
            for a in range(n_core):
                n_cand = _reciprocal(rank, core[a], half, cand)
                shared = 0
                for b in range(n_cand):
                    for c in range(n_core):
                        if cand[b] == core[c]:
                            shared += 1
                            break
                # same float expression as the reference: len(intersection) > 2./3 * len(cand)
                if shared > 2.0 / 3.0 * n_cand:
                    for b in range(n_cand):
                        row[m] = cand[b]
                        m += 1
            row[:m].sort()
            u = 0
            for a in range(m):
                if u == 0 or row[a] != row[u - 1]:
                    row[u] = row[a]
                    u += 1
            sizes[i] = u
    return sets, sizes


@numba.njit(parallel=True, cache=True)
def _pair_base_distance(feats: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                        cosine: bool) -> np.ndarray:
    """Base distance of each (rows[p], cols[p]) pair: squared Euclidean, or 1 - cos."""
    vals = np.empty(rows.shape[0], dtype=np.float64)
    dim = feats.shape[1]
    for p in numba.prange(rows.shape[0]):
        i, j = rows[p], cols[p]
        s = 0.0
        if i == j:
            vals[p] = 0.0
            continue
        if cosine:
            for d in range(dim):
                s += np.float64(feats[i, d]) * np.float64(feats[j, d])
            vals[p] = min(max(1.0 - s, 0.0), 2.0)
        else:  # exact differences, not the cancelling |x|^2 + |y|^2 - 2 x.y
            for d in range(dim):
                t = np.float64(feats[i, d]) - np.float64(feats[j, d])
                s += t * t
            vals[p] = s
    return vals


@numba.njit(parallel=True, cache=True)
def _row_softmin(indptr: np.ndarray, work_vals: np.ndarray) -> np.ndarray:
    """exp(-W[i, j]) over each row's set, normalised to sum to 1 (float32 out)."""
    data = np.empty(work_vals.shape[0], dtype=np.float32)
    for i in numba.prange(indptr.shape[0] - 1):
        total = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            total += np.exp(-np.float64(work_vals[p]))
        for p in range(indptr[i], indptr[i + 1]):
            data[p] = np.exp(-np.float64(work_vals[p])) / total
    return data


@numba.njit(parallel=True, cache=True)
def _add_jaccard(q_indptr: np.ndarray, q_indices: np.ndarray, q_data: np.ndarray,
                 c_indptr: np.ndarray, c_indices: np.ndarray, c_data: np.ndarray,
                 out: np.ndarray, weight: float, num_chunks: int) -> None:
    """out[q, g] += weight * (1 - s / (2 - s)), s = sum over shared support of min(V_q, V_g).

    Queries are split into ``num_chunks`` (a few per thread), each with one dense accumulator
    that is reset as it is consumed.
    """
    num_query, num_gallery = out.shape
    for c in numba.prange(num_chunks):
        acc = np.zeros(num_gallery, dtype=np.float64)
        for q in range(c * num_query // num_chunks, (c + 1) * num_query // num_chunks):
            for p in range(q_indptr[q], q_indptr[q + 1]):
                k = q_indices[p]
                vq = q_data[p]
                for r in range(c_indptr[k], c_indptr[k + 1]):
                    acc[c_indices[r]] += min(vq, c_data[r])
            for g in range(num_gallery):
                s = acc[g]
                out[q, g] += weight * (1.0 - s / (2.0 - s))
                acc[g] = 0.0
