"""Rank evaluation (CMC / mAP / mINP) under the Market-1501 protocol, exact and fast.

Entry points: :func:`evaluate_rank_metrics` (returns :class:`RankMetrics`) and
:func:`evaluate_rank` (the classic ``(cmc, mAP)`` pair). Both reproduce the per-query
definitions of the official Market-1501 MATLAB code (``evaluation.m`` + ``compute_AP.m``) and of
torchreid's ``eval_market1501``, without sorting gallery rows.

Why no sort: every metric here is a function of the ranks of a query's ``m`` true matches
only (``m`` is ~10-30 on Market), and the rank of a match is one plus the number of non-junk
items ordered before it. So per query the ``m`` match keys (distance, gallery index) are
sorted, and one pass over the gallery row counts, for each negative item ordered before the
last match, how many matches it precedes (a binary search into the ``m`` keys; items after the
last match -- nearly all of them -- cost one comparison). A running sum of those counts gives
every match's rank. This is O(G + n_before * log m) per query instead of O(G log G).

Backends, same results bit for bit (the ranks are integers and the metrics are computed from
them by one shared numpy routine):

* ``"numba"``: a parallel (``prange`` over queries) compiled kernel,
  :mod:`reid_core.metrics.rank_kernels`; no temporaries of size chunk x gallery.
* ``"torch"``: the same counts with tensor ops on the tensor's device (for CUDA tensors, or
  where numba is unavailable): one threshold comparison over the chunk, then a batched
  ``torch.searchsorted`` of the few items before each row's last match. Temporaries: two
  chunk x gallery bool masks plus O(items before the last match) index arrays.
* ``"auto"`` (default): ``"torch"`` for tensors on an accelerator, else ``"numba"`` when it
  imports, else ``"torch"``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

AP_MODES: tuple[str, ...] = ("standard", "trapezoid")
#: What each AP definition is and who uses it (report headers say which one a report shows).
AP_DEFINITIONS: dict[str, str] = {
    "standard": "non-interpolated AP, the mean precision at each true match (BoT, torchreid, "
                "scikit-learn >= 0.19's average_precision_score)",
    "trapezoid": "trapezoid-rule AP over recall (Market-1501's compute_AP.m; scikit-learn "
                 "0.18's average_precision_score, which RGA's code pins)",
}
BACKENDS: tuple[str, ...] = ("auto", "numba", "torch")
DEFAULT_CHUNK_SIZE = 256

# Gallery pid of images the protocol ignores for every query.
_JUNK_PID = -1
# Chunks with fewer distances than this skip numba's thread pool (about 1 ms of work).
_PARALLEL_MIN_ITEMS = 1 << 20
# Distances per numba call when rows are passed as views (a whole Market-size matrix).
_CALL_ITEMS = 1 << 26
# True matches per call at most (their rank buffers): 4M ranks = 32 MB.
_CALL_MATCHES = 1 << 22


@dataclass(frozen=True)
class RankMetrics:
    """Result of :func:`evaluate_rank_metrics`.

    Attributes:
        cmc (numpy.ndarray): float64 CMC curve of shape (max_rank,); ``cmc[k - 1]`` is the
            rank-k accuracy (fraction of valid queries whose first true match has rank <= k).
        mAP (float): mean average precision over valid queries (``ap_mode`` definition).
        mINP (float): mean inverse negative penalty over valid queries: per query,
            (number of true matches) / (rank of its last true match) (Ye et al., TPAMI 2021).
        num_valid_queries (int): queries with at least one true match (the denominators).
        num_queries (int): all queries, valid or skipped.
        ap_mode (str): ``"standard"`` or ``"trapezoid"``.
        per_query_ap (numpy.ndarray): float64 AP of each query, shape (num_queries,); NaN for
            skipped queries.
        first_match_rank (numpy.ndarray): int64 1-based rank of each query's first true
            match, shape (num_queries,); 0 for skipped queries.
        mAP_by_mode (dict): the mAP under every definition of :data:`AP_MODES` (``mAP`` is
            the ``ap_mode`` entry), from the same ranking: a report can show both.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_queries: int
    ap_mode: str
    per_query_ap: np.ndarray
    first_match_rank: np.ndarray
    mAP_by_mode: dict[str, float] = field(default_factory=dict)

    def rank(self, k: int) -> float:
        """Rank-k accuracy ``cmc[k - 1]`` (k = 1 is rank-1)."""
        valid = isinstance(k, (int, np.integer)) and not isinstance(k, bool)
        if not valid or not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank must be an integer in [1, {len(self.cmc)}], got {k!r}")
        return float(self.cmc[k - 1])


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap_mode: str = "standard",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    backend: str = "auto",
) -> tuple[np.ndarray, float]:
    """Evaluates CMC and mAP with the Market-1501 protocol.

    Same as :func:`evaluate_rank_metrics` (see there for the protocol, tie rule and AP
    definitions), returning only ``(cmc, mAP)``.

    Args:
        distmat (numpy.ndarray or torch.Tensor): distance matrix of shape
            (num_query, num_gallery).
        q_pids (numpy.ndarray or torch.Tensor): query person ids, shape (num_query,).
        g_pids (numpy.ndarray or torch.Tensor): gallery person ids, shape (num_gallery,).
        q_camids (numpy.ndarray or torch.Tensor): query camera ids, shape (num_query,).
        g_camids (numpy.ndarray or torch.Tensor): gallery camera ids, shape (num_gallery,).
        max_rank (int, optional): length of the returned CMC. Default is 50.
        ap_mode (str, optional): ``"standard"`` or ``"trapezoid"``. Default is ``"standard"``.
        chunk_size (int, optional): queries per step. Default is 256.
        backend (str, optional): ``"auto"``, ``"numba"`` or ``"torch"``. Default is ``"auto"``.

    Returns:
        tuple: ``(cmc, mAP)`` -- ``cmc`` is a float64 numpy array of shape (max_rank,);
        ``mAP`` is a Python float.
    """
    result = evaluate_rank_metrics(
        distmat, q_pids, g_pids, q_camids, g_camids,
        max_rank=max_rank, ap_mode=ap_mode, chunk_size=chunk_size, backend=backend,
    )
    return result.cmc, result.mAP


def evaluate_rank_metrics(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap_mode: str = "standard",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    backend: str = "auto",
) -> RankMetrics:
    """Evaluates CMC, mAP and mINP with the Market-1501 protocol.

    Key: for each query identity, its gallery images from the same camera view are discarded
    (as are gallery images with pid -1), and queries without any remaining true match are
    skipped.

    Protocol, per query ``q``:

    * **junk** (removed from the ranked list, as if absent): gallery items with pid ``-1``,
      and gallery items with the same pid **and** the same camid as ``q``;
    * **true matches**: same pid, different camid (pid ``-1`` never matches);
    * everything else is a negative -- including distractors (pid ``0``). A query whose pid
      is ``0`` is treated like any other identity;
    * a query with no true match left is **skipped**: it counts in neither the CMC nor the
      mAP / mINP denominators (torchreid / BoT normalisation; on Market every query is valid).

    Ranking and ties: gallery items are ranked by ascending distance; **equal distances are
    broken by gallery index** (lower index first), i.e. exactly the order of
    ``np.argsort(distmat[i], kind="stable")``. This matches MATLAB's stable ``sort`` in the
    official code. (torchreid uses the default, unstable ``np.argsort``, so on exact ties its
    numbers may differ from these.) ``-0.0`` equals ``0.0``; ``inf`` is allowed.

    With ``r_k`` the 1-based rank of the k-th true match among the non-junk items
    (k = 1..n_good):

    * ``cmc[m] = fraction of valid queries with r_1 <= m + 1``, for m = 0..max_rank-1;
    * ``ap_mode="standard"`` (torchreid / BoT, non-interpolated)::

          AP = (1 / n_good) * sum_k  k / r_k

    * ``ap_mode="trapezoid"`` (official Market-1501 MATLAB ``compute_AP.m``): each hit adds
      its recall step times the mean of the precision before and at the hit::

          AP = (1 / n_good) * sum_k  (p_{k-1} + k / r_k) / 2,
          p_{k-1} = (k - 1) / (r_k - 1) if r_k > 1 else 1.0

      Since (k-1)/(r_k-1) <= k/r_k, this is never above the standard AP (equal when the hits
      fill the top ranks);
    * ``INP = n_good / r_{n_good}`` (how far down the hardest match is).

    mAP and mINP are means over valid queries.

    Args:
        distmat (numpy.ndarray or torch.Tensor): distance matrix of shape
            (num_query, num_gallery); smaller means more similar. Float dtypes are compared as
            they are (float16 / bfloat16 are widened to float32, which is exact), so ties are
            preserved; NaN is rejected (the message counts them and names their rows), while
            ``inf`` / ``-inf`` are ordinary, ordered values. A CUDA tensor stays on its device
            with the torch backend.
        q_pids (numpy.ndarray or torch.Tensor): integer query person ids, shape (num_query,).
        g_pids (numpy.ndarray or torch.Tensor): integer gallery person ids, shape
            (num_gallery,). ``-1`` = junk, ``0`` = distractor.
        q_camids (numpy.ndarray or torch.Tensor): integer query camera ids, shape (num_query,).
        g_camids (numpy.ndarray or torch.Tensor): integer gallery camera ids, shape
            (num_gallery,).
        max_rank (int, optional): length of the returned CMC. Default is 50. May exceed
            num_gallery: the CMC then stays at its last value.
        ap_mode (str, optional): ``"standard"`` or ``"trapezoid"`` (see above).
            Default is ``"standard"``.
        chunk_size (int, optional): queries processed per step. Bounds the temporaries: two
            ``chunk_size x num_gallery`` bool masks with torch; with numba, the copy of a
            chunk when the input must be converted (float16, non-contiguous, other dtypes),
            and none otherwise (C-contiguous float32 / float64 rows are read in place, in
            calls of up to 2**26 distances). Results do not depend on it (bit-identical).
            Default is 256.
        backend (str, optional): ``"auto"``, ``"numba"`` or ``"torch"`` (see the module
            docstring). All give bit-identical results. Default is ``"auto"``.

    Returns:
        RankMetrics: CMC curve, mAP, mINP, number of valid queries and per-query AP.

    Raises:
        ValueError: on an unknown ``ap_mode`` / ``backend``, bad ``max_rank`` / ``chunk_size``,
            mismatched shapes, non-integer ids, non-numeric distances, NaN distances (the
            message counts them and names their rows), or when no query has a true match.
        ImportError: for ``backend="numba"`` when numba is not installed.
    """
    if ap_mode not in AP_MODES:
        raise ValueError(f"unknown ap_mode {ap_mode!r}; valid modes: {', '.join(AP_MODES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    _check_positive_int("max_rank", max_rank)
    _check_positive_int("chunk_size", chunk_size)

    if not _is_tensor(distmat):
        distmat = np.asarray(distmat)
    on_accelerator = _is_tensor(distmat) and distmat.device.type != "cpu"
    if backend == "auto":
        backend = "torch" if on_accelerator or _numba_kernels() is None else "numba"
    if backend == "numba":
        if _numba_kernels() is None:
            raise ImportError("backend='numba' needs the numba package")
        distmat = to_numpy(distmat)
    shape = tuple(distmat.shape)
    if len(shape) != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {shape}")
    num_q, num_g = shape
    q_pids = _ids("q_pids", q_pids, num_q, "rows", shape)
    q_camids = _ids("q_camids", q_camids, num_q, "rows", shape)
    g_pids = _ids("g_pids", g_pids, num_g, "columns", shape)
    g_camids = _ids("g_camids", g_camids, num_g, "columns", shape)

    index = _GalleryIndex(g_pids, g_camids)
    q_groups, num_matches = index.lookup(q_pids, q_camids)

    # Per-query results land in O(Q) arrays so the final reductions see the same numbers in
    # the same order whatever the chunk size or backend (bit-identical results).
    first_rank = np.zeros(num_q, dtype=np.int64)  # 0 = query has no true match
    ap = {mode: np.zeros(num_q, dtype=np.float64) for mode in AP_MODES}
    inp = np.zeros(num_q, dtype=np.float64)
    if backend == "numba":
        chunk_ranks = _numba_chunk_ranks
        rows_per_call = chunk_size
        if _kernel_ready(distmat) and num_g:
            # No copy is made, so no chunk x gallery temporary exists: bigger calls only save
            # thread-pool launches and barriers (which cost ~ms each on a busy machine).
            rows_per_call = max(chunk_size, _CALL_ITEMS // num_g)
    else:
        chunk_ranks, rows_per_call = _torch_chunk_ranks, chunk_size
    for start, stop in _call_bounds(num_matches, rows_per_call):
        rows = slice(start, stop)
        try:
            ranks = chunk_ranks(
                distmat[rows], q_pids[rows], q_camids[rows], q_groups[rows], num_matches[rows],
                index,
            )
        except _NaNInChunk:
            # The kernels see every NaN at no extra cost; only now is the whole matrix scanned
            # for the message (how many, which rows).
            require_finite(distmat, "distmat", "evaluate_rank_metrics", allow_inf=True)
            raise AssertionError("a rank kernel reported NaN the scan did not find") from None
        first_rank[rows], chunk_ap, inp[rows] = _metrics_from_ranks(ranks, num_matches[rows])
        for mode in AP_MODES:
            ap[mode][rows] = chunk_ap[mode]

    valid = num_matches > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"no valid query: none of the {num_q} queries has a true match in the gallery "
            "(same pid, different camera, pid != -1)"
        )
    # Histogram of first-hit ranks 1..max_rank; later ranks never reach the CMC window.
    hist = np.bincount(first_rank[valid & (first_rank <= max_rank)], minlength=max_rank + 1)
    cmc = np.cumsum(hist[1 : max_rank + 1]).astype(np.float64) / num_valid
    return RankMetrics(
        cmc=cmc,
        mAP=float(ap[ap_mode][valid].mean()),
        mINP=float(inp[valid].mean()),
        num_valid_queries=num_valid,
        num_queries=num_q,
        ap_mode=ap_mode,
        per_query_ap=np.where(valid, ap[ap_mode], np.nan),
        first_match_rank=first_rank,
        mAP_by_mode={mode: float(ap[mode][valid].mean()) for mode in AP_MODES},
    )


def _call_bounds(num_matches: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive query ranges of at most ``max_rows`` rows and (unless one row alone has
    more) at most ``_CALL_MATCHES`` true matches: the per-call rank buffers stay bounded even
    when an identity fills the gallery."""
    ends = np.cumsum(num_matches)
    bounds, start = [], 0
    while start < len(num_matches):
        before = ends[start - 1] if start else 0
        by_matches = int(np.searchsorted(ends, before + _CALL_MATCHES, side="right"))
        stop = max(start + 1, min(start + max_rows, by_matches, len(num_matches)))
        bounds.append((start, stop))
        start = stop
    return bounds


class _GalleryIndex:
    """Gallery items grouped by pid, and how many true matches each query has.

    ``members[member_start[g]:member_start[g + 1]]`` are the gallery indices (ascending) of
    the g-th distinct non-junk pid; the kernels read a query's candidate matches from there
    instead of scanning the gallery's pids.
    """

    def __init__(self, g_pids: np.ndarray, g_camids: np.ndarray) -> None:
        self.g_pids = g_pids
        self.g_camids = g_camids
        real = np.flatnonzero(g_pids != _JUNK_PID)
        self.pids, group_of = np.unique(g_pids[real], return_inverse=True)
        self.members = real[np.argsort(group_of, kind="stable")]  # stable: ascending index
        self.group_size = np.bincount(group_of, minlength=len(self.pids)).astype(np.int64)
        self.member_start = np.concatenate([[0], np.cumsum(self.group_size)]).astype(np.int64)
        # Same-pid same-camera counts (junk for a query from that camera), keyed by pair code.
        self.cams, cam_of = np.unique(g_camids[real], return_inverse=True)
        self.pair_codes, self.pair_counts = np.unique(
            group_of.astype(np.int64) * len(self.cams) + cam_of, return_counts=True
        )

    def lookup(self, q_pids: np.ndarray, q_camids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(group index or -1, number of true matches) for each query."""
        groups = _find(self.pids, q_pids)
        cams = _find(self.cams, q_camids)
        found = groups >= 0
        codes = np.where(found & (cams >= 0), groups * len(self.cams) + cams, -1)
        same_cam = _take(self.pair_counts, _find(self.pair_codes, codes))
        return groups, (_take(self.group_size, groups) - same_cam).astype(np.int64)


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``values[positions]``, with 0 where the position is -1 (also when values is empty)."""
    out = np.zeros(len(positions), dtype=np.int64)
    hit = positions >= 0
    out[hit] = values[positions[hit]]
    return out


def _find(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in ``sorted_values`` (unique, ascending), or -1 if absent."""
    pos = np.searchsorted(sorted_values, queries)
    inside = pos < len(sorted_values)
    hit = np.zeros(len(queries), dtype=bool)
    hit[inside] = sorted_values[pos[inside]] == queries[inside]
    return np.where(hit, pos, -1).astype(np.int64)


def _metrics_from_ranks(
    ranks: np.ndarray, num_matches: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """First-hit rank (0 if none), AP under each of :data:`AP_MODES` and INP (0 if none) per
    query of one chunk.

    ``ranks`` holds each query's match ranks, ascending, queries one after another
    (``num_matches[i]`` entries for query ``i``). Shared by both backends so they agree bit
    for bit; ``np.bincount`` adds the AP terms of a query in hit order.
    """
    num_rows = len(num_matches)
    ends = np.cumsum(num_matches)
    starts = ends - num_matches
    rows = np.repeat(np.arange(num_rows), num_matches)
    k = (np.arange(len(ranks)) - starts[rows] + 1).astype(np.float64)  # hit number
    r = ranks.astype(np.float64)
    has = num_matches > 0

    def mean_per_query(terms: np.ndarray) -> np.ndarray:
        ap_sum = np.bincount(rows, weights=terms, minlength=num_rows)
        return np.divide(ap_sum, num_matches, out=np.zeros(num_rows), where=has)

    terms = k / r  # precision at each hit
    ap = {"standard": mean_per_query(terms)}
    # trapezoid: compute_AP.m's old_precision is the precision one rank above the hit; the
    # terms are turned into (old_precision + precision) / 2 in place (bounded memory).
    first = r <= 1
    k -= 1
    r -= 1
    np.maximum(r, 1, out=r)
    np.divide(k, r, out=k)  # (k - 1) / (r - 1): k and r are not used after this
    k[first] = 1.0
    terms += k
    terms *= 0.5
    ap["trapezoid"] = mean_per_query(terms)
    first_rank = np.zeros(num_rows, dtype=np.int64)
    first_rank[has] = ranks[starts[has]]
    inp = np.zeros(num_rows, dtype=np.float64)
    inp[has] = num_matches[has] / ranks[ends[has] - 1]
    return first_rank, ap, inp


# ---------------------------------------------------------------------------------------------
# numba backend
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _numba_kernels() -> ModuleType | None:
    try:
        from reid_core.metrics import rank_kernels
    except ImportError:
        return None
    return rank_kernels


def _numba_chunk_ranks(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    q_groups: np.ndarray,
    num_matches: np.ndarray,
    index: _GalleryIndex,
) -> np.ndarray:
    kernels = _numba_kernels()
    assert kernels is not None
    dist = _kernel_dtype(dist)
    offsets = np.concatenate([[0], np.cumsum(num_matches)]).astype(np.int64)
    ranks = np.empty(offsets[-1], dtype=np.int64)
    nan_rows = np.zeros(len(num_matches), dtype=bool)
    # Small chunks run on the calling thread: waking the pool costs ~ms on a busy machine.
    parallel = dist.size >= _PARALLEL_MIN_ITEMS
    kernel = kernels.match_ranks if parallel else kernels.match_ranks_serial
    kernel(
        dist, q_pids, q_camids, q_groups, index.g_pids, index.g_camids, index.members,
        index.member_start, offsets, ranks, nan_rows,
    )
    if nan_rows.any():
        raise _NaNInChunk
    return ranks


def _kernel_ready(dist: np.ndarray) -> bool:
    """Whether row slices of ``dist`` go to the kernel as views (no per-chunk copy)."""
    return (
        dist.flags.c_contiguous
        and dist.dtype.isnative
        and dist.dtype in (np.float32, np.float64, np.int64, np.uint64)
    )


def _kernel_dtype(dist: np.ndarray) -> np.ndarray:
    """The chunk as a C-contiguous, native-endian array of a dtype the kernel is compiled for
    (a view when it already is one; otherwise a copy of this chunk only)."""
    kind = dist.dtype.kind
    if kind == "f":
        # float16 -> float32 is exact (same order and ties) and numba has no float16 maths.
        target = np.float32 if dist.dtype.itemsize <= 4 else np.float64
        if dist.dtype.itemsize > 8:
            raise ValueError(f"unsupported distmat dtype {dist.dtype}")
    elif kind in "iub":
        # One compiled integer variant; uint64 keeps its own so large values stay exact.
        target = np.uint64 if dist.dtype == np.uint64 else np.int64
    else:
        raise ValueError(f"distmat must be real-valued, got dtype {dist.dtype}")
    return np.ascontiguousarray(dist, dtype=target)


# ---------------------------------------------------------------------------------------------
# torch backend
# ---------------------------------------------------------------------------------------------


def _torch_chunk_ranks(
    dist: Any,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    q_groups: np.ndarray,
    num_matches: np.ndarray,
    index: _GalleryIndex,
) -> np.ndarray:
    """Same ranks as the numba kernel, with tensor ops on dist's device.

    Full-size (B x G) work is one comparison with each row's threshold (its last match key)
    and a ``nonzero``; everything after runs on the few items not after the threshold,
    packed into a (B, most-per-row) matrix for a batched ``torch.searchsorted``.
    """
    import torch

    dist = _torch_dist(dist).contiguous()
    device = dist.device
    num_rows, num_g = dist.shape
    width = int(num_matches.max()) if num_rows else 0
    is_float = dist.is_floating_point()
    if width == 0:  # no query of this chunk has a match: only the NaN check is left
        if is_float and bool(torch.isnan(dist).any()):
            raise _NaNInChunk
        return np.empty(0, dtype=np.int64)

    # (B, width) gallery indices of each query's matches, ascending; padding = num_g.
    match_idx = torch.from_numpy(_padded_matches(q_camids, q_groups, width, index)).to(device)
    high = float("inf") if is_float else torch.iinfo(dist.dtype).max
    low = float("-inf") if is_float else torch.iinfo(dist.dtype).min
    keys = dist.gather(1, match_idx.clamp(max=num_g - 1))
    keys.masked_fill_(match_idx == num_g, high)
    # Stable sort of ascending indices = order by (distance, gallery index); padding has the
    # largest index, so it sorts after real keys even at distance inf / max.
    keys, perm = torch.sort(keys, dim=1, stable=True)
    key_idx = match_idx.gather(1, perm)

    has_match = torch.from_numpy(num_matches > 0).to(device)
    last = torch.from_numpy(np.maximum(num_matches - 1, 0)).to(device)
    threshold = keys.gather(1, last[:, None]).masked_fill_(~has_match[:, None], low)
    # Items not after the threshold; "not >" also selects NaN, wherever it is (a NaN key makes
    # its own position a candidate; rows without a match have threshold -inf). Indexing below
    # goes through flat index_select / index_add_: on CPU, tensor[rows, cols] is much slower.
    flat = torch.nonzero((~(dist > threshold)).view(-1)).squeeze(1)
    values = dist.view(-1).index_select(0, flat)
    if is_float and bool(torch.isnan(values).any()):
        raise _NaNInChunk
    rows, cols = flat // num_g, flat % num_g
    pids = torch.from_numpy(index.g_pids).to(device).index_select(0, cols)
    negative = pids != torch.from_numpy(q_pids).to(device).index_select(0, rows)
    negative &= (pids != _JUNK_PID) & has_match.index_select(0, rows)
    keep = torch.nonzero(negative).squeeze(1)
    rows, cols, values = (t.index_select(0, keep) for t in (rows, cols, values))

    counts = torch.zeros(num_rows * (width + 1), dtype=torch.int64, device=device)
    if len(rows):
        # Pack each row's candidates (row-major order from nonzero) into (B, most) columns.
        per_row = torch.bincount(rows, minlength=num_rows)
        most = int(per_row.max())
        row_start = per_row.cumsum(0) - per_row
        slot = torch.arange(len(rows), device=device) - row_start.index_select(0, rows)
        packed_at = rows * most + slot
        packed = torch.full((num_rows * most,), high, dtype=dist.dtype, device=device)
        packed.index_copy_(0, packed_at, values)
        # Keys of smaller distance before each candidate.
        before = torch.searchsorted(keys, packed.view(num_rows, most))
        before = before.view(-1).index_select(0, packed_at)
        at_key = keys.reshape(-1).index_select(0, rows * width + before.clamp(max=width - 1))
        tied = torch.nonzero((at_key == values) & (before < width)).squeeze(1)
        if len(tied):
            tied_rows, tied_cols, tied_before = (
                t.index_select(0, tied) for t in (rows, cols, before))
            before.index_copy_(0, tied, _tied_positions(
                keys, key_idx, tied_rows, tied_cols, tied_before, num_g))
        counts.index_add_(0, rows * (width + 1) + before, torch.ones_like(before))
    counts = counts.view(num_rows, width + 1)
    ranks = torch.arange(1, width + 1, device=device) + counts[:, :width].cumsum(1)
    valid = np.arange(width)[None, :] < num_matches[:, None]
    return ranks.cpu().numpy()[valid]  # row-major: queries in order, ranks ascending


def _tied_positions(
    keys: Any, key_idx: Any, rows: Any, cols: Any, before: Any, num_g: int
) -> Any:
    """For items (rows, cols) whose distance equals some key's, with ``before`` the number of
    keys of smaller distance: the number of keys ordered before them, i.e. ``before`` plus the
    equal-distance keys of smaller gallery index.

    Each key gets a code (first position of its distance, gallery index), non-decreasing
    along a row; rows are offset into one sorted 1-D sequence so a single searchsorted serves
    the (ragged) tied items of all rows.
    """
    import torch

    num_rows, width = keys.shape
    first_equal = torch.searchsorted(keys, keys)
    span = (width + 1) * (num_g + 1)
    row_base = torch.arange(num_rows, device=keys.device)[:, None] * span
    codes = (row_base + first_equal * (num_g + 1) + key_idx).flatten()
    queries = rows * span + before * (num_g + 1) + cols
    return torch.searchsorted(codes, queries) - rows * width


def _padded_matches(
    q_camids: np.ndarray, q_groups: np.ndarray, width: int, index: _GalleryIndex
) -> np.ndarray:
    """(B, width) int64: each query's true-match gallery indices, ascending, then padding
    ``num_gallery``. Built on the host from the pid groups (small: B x largest group)."""
    num_g = len(index.g_pids)
    size = _take(index.group_size, q_groups)  # width > 0, so members is not empty
    col = np.arange(int(size.max()))[None, :]
    inside = col < size[:, None]
    pos = np.where(inside, _take(index.member_start, q_groups)[:, None] + col, 0)
    cand = index.members[pos]
    keep = inside & (index.g_camids[cand] != q_camids[:, None])
    # Matches first (in index order), then padding: a stable sort on "not kept".
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    out = np.take_along_axis(cand, order, axis=1)
    out[~np.take_along_axis(keep, order, axis=1)] = num_g
    return out


def _torch_dist(dist: Any) -> Any:
    """The chunk as a tensor the torch kernels accept (floats widened to >= float32)."""
    import torch

    if not _is_tensor(dist):
        dist = np.asarray(dist)
        if dist.dtype.kind not in "fiub":
            raise ValueError(f"distmat must be real-valued, got dtype {dist.dtype}")
        if dist.dtype.kind in "iub" and dist.dtype != np.int64:
            dist = dist.astype(np.int64)
        elif not dist.dtype.isnative:  # torch reads native byte order only
            dist = dist.astype(dist.dtype.newbyteorder("="))
        dist = torch.from_numpy(np.ascontiguousarray(dist))
    if dist.is_complex():
        raise ValueError(f"distmat must be real-valued, got dtype {dist.dtype}")
    if dist.dtype in (torch.float16, torch.bfloat16):
        dist = dist.float()  # exact; searchsorted wants a common dtype anyway
    elif dist.dtype == torch.bool or (not dist.is_floating_point() and dist.dtype != torch.int64):
        dist = dist.to(torch.int64)
    return dist.detach()


# ---------------------------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------------------------


def stable_argsort_rows(dist: np.ndarray) -> np.ndarray:
    """Row-wise ``np.argsort(dist, axis=1, kind="stable")``: ascending, ties by index.

    Not used by the evaluators (they never sort a row); kept for callers that need the full
    ranked list (visualisation, re-ranking). float32 takes a faster exact path (about 2-3x):
    each value is mapped to an order-preserving uint32, packed with its column index into one
    uint64, and the keys are sorted with numpy's (SIMD) quicksort. Keys are unique, so the
    order is exactly (value, index). -0.0 is folded into +0.0 first because argsort treats
    them as equal. NaN must have been rejected by the caller.
    """
    num_cols = dist.shape[1]
    if dist.dtype != np.float32 or num_cols >= 2**32:
        return np.argsort(dist, axis=1, kind="stable")
    bits = (dist + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into +0.0
    # Negative floats: flip all bits (larger magnitude = smaller); others: set the sign bit.
    bits ^= ((bits >> np.uint32(31)) * np.uint32(0x7FFFFFFF)) | np.uint32(0x80000000)
    keys = bits.astype(np.uint64)
    del bits
    keys <<= np.uint64(32)
    keys |= np.arange(num_cols, dtype=np.uint64)
    keys.sort(axis=1)
    keys &= np.uint64(0xFFFFFFFF)
    return keys.view(np.int64)  # values < 2**32, so the int64 view is the index itself


class _NaNInChunk(ValueError):
    """A rank kernel met NaN in its chunk; :func:`evaluate_rank_metrics` turns it into the
    detailed :func:`require_finite` error about the whole matrix."""


#: Elements per block scanned by :func:`require_finite`: its bool temporary stays at 256 kB
#: however large the matrix (the evaluators promise no matrix-sized temporaries).
_FINITE_BLOCK_ITEMS = 1 << 18


def require_finite(values: Any, what: str, caller: str, *, allow_inf: bool = False) -> None:
    """Raise a ValueError saying how many entries of ``values`` are NaN (or inf) and in which
    rows.

    Why: NaN / inf come from a diverged model or a corrupt checkpoint and make compiled
    evaluation code misbehave (re-ranking corrupted the heap on inf) or return NaN metrics;
    one clear message at the entry point is what the user can act on. Cost: one ``isfinite``
    (``isnan`` with ``allow_inf``) pass over blocks of rows, so the temporary is bounded;
    integer arrays are skipped. Accepts numpy arrays and torch tensors (any device).

    Args:
        values: 1-D or 2-D numpy array or torch tensor.
        what: what to call it in the message, e.g. ``"query features"`` or ``"distmat"``.
        caller: the public function the message starts with.
        allow_inf: accept +-inf and reject NaN only (ranking orders inf like any value).

    Raises:
        ValueError: ``"<caller>: <what> contain(s) N non-finite values (NaN/inf) in rows
            [...]; ..."``.
    """
    count, rows = _non_finite_rows(values, allow_inf)
    if count == 0:
        return
    kind = "NaN values" if allow_inf else "non-finite values (NaN/inf)"
    shown = ", ".join(str(r) for r in rows[:10])
    if len(rows) > 10:
        shown += f", ... ({len(rows)} rows)"
    verb = "contain" if what.endswith("s") else "contains"
    raise ValueError(
        f"{caller}: {what} {verb} {count} {kind} in rows [{shown}]; the result would be "
        f"undefined -- such values come from a diverged model or a corrupt checkpoint, so "
        f"check the features (and the model that produced them) first"
    )


def _non_finite_rows(values: Any, allow_inf: bool) -> tuple[int, list[int]]:
    """(number of bad entries, ascending rows holding them) of a 1-D or 2-D array/tensor."""
    tensor = _is_tensor(values)
    if tensor:
        if not (values.is_floating_point() or values.is_complex()):
            return 0, []
    else:
        values = np.asarray(values)
        if values.dtype.kind not in "fc":
            return 0, []
    if values.ndim == 0:
        values = values.reshape(1, 1)
    elif values.ndim == 1:
        values = values.reshape(-1, 1)
    width = max(1, int(np.prod(values.shape[1:])))
    step = max(1, _FINITE_BLOCK_ITEMS // width)
    count, rows = 0, []
    for start in range(0, int(values.shape[0]), step):
        bad = _bad_mask(values[start:start + step], tensor, allow_inf)
        if bad is None:
            continue
        count += int(bad.sum())
        rows += (bad.reshape(bad.shape[0], -1).any(axis=1).nonzero()[0] + start).tolist()
    return count, rows


def _bad_mask(block: Any, tensor: bool, allow_inf: bool) -> np.ndarray | None:
    """numpy bool mask of the NaN (or non-finite) entries of ``block``; None if there is none
    (the common case: only the one pass, no further work)."""
    if tensor:
        import torch

        bad_t = torch.isnan(block) if allow_inf else ~torch.isfinite(block)
        return bad_t.cpu().numpy() if bool(bad_t.any()) else None
    bad = np.isnan(block) if allow_inf else ~np.isfinite(block)
    return bad if bad.any() else None


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "device")  # torch.Tensor, without importing torch


def to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to the CPU."""
    if _is_tensor(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _ids(
    name: str, values: Any, expected: int, axis_name: str, dist_shape: tuple[int, ...]
) -> np.ndarray:
    """Validated 1-D integer id array of length ``expected``."""
    arr = to_numpy(values)
    if arr.shape != (expected,):
        raise ValueError(
            f"{name} has shape {arr.shape}, expected ({expected},) to match the {axis_name} "
            f"of distmat (shape {dist_shape})"
        )
    # An empty list comes out as float64; it carries no values to misinterpret.
    if arr.dtype.kind not in "iub" and arr.size > 0:
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)
