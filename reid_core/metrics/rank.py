"""Rank evaluation (CMC / mAP) under the Market-1501 protocol, exact and vectorised.

One entry point, :func:`evaluate_rank`. It reproduces the per-query definitions of the
official Market-1501 MATLAB code (``evaluation.m`` + ``compute_AP.m``) and of torchreid's
python ``eval_market1501``, but processes queries in chunks with array operations only:
no Python loop over queries or gallery items, and memory bounded by one chunk.

Per-chunk algorithm (``B`` queries x ``G`` gallery items):

1. label every (query, gallery) pair in gallery order: 1 = true match, 2 = junk, 0 = negative;
2. sort each row by (distance, gallery index) -- the tie rule;
3. gather the labels into ranked order and keep only the non-zero "events" (hits and junk),
   a handful per query;
4. a hit's 1-based rank among non-junk items is its ranked position minus the junk before it,
   and its hit number ``k`` is a running count of hits in its row: both come from cumulative
   sums over the (small) event list, not over the ``B x G`` matrix;
5. AP terms are summed per query with ``np.bincount``; the CMC is a histogram of first-hit
   ranks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

AP_MODES: tuple[str, ...] = ("standard", "trapezoid")
DEFAULT_CHUNK_SIZE = 256

# Pair labels, stored as int8 so the ranked gather moves one byte per pair.
_NEGATIVE, _GOOD, _JUNK = 0, 1, 2
# Gallery pid of images the protocol ignores for every query.
_JUNK_PID = -1


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap_mode: str = "standard",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, float]:
    """Evaluates CMC and mAP with the Market-1501 protocol.

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
      mAP denominators (torchreid / BoT normalisation; on Market every query is valid).

    Ranking and ties: gallery items are ranked by ascending distance; **equal distances are
    broken by gallery index** (lower index first), i.e. exactly the order of
    ``np.argsort(distmat[i], kind="stable")``. This matches MATLAB's stable ``sort`` in the
    official code. (torchreid uses the default, unstable ``np.argsort``, so on exact ties its
    numbers may differ from these.)

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
      fill the top ranks).

    mAP is the mean of AP over valid queries.

    Args:
        distmat (numpy.ndarray or torch.Tensor): distance matrix of shape
            (num_query, num_gallery); smaller means more similar. Float dtypes are used as
            they are (no up-cast), so float32 ties are preserved; NaN is rejected.
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
        chunk_size (int, optional): queries processed per vectorised step; peak memory is
            about ``chunk_size * num_gallery * 16`` bytes. Results do not depend on it
            (bit-identical). Default is 256.

    Returns:
        tuple: ``(cmc, mAP)`` -- ``cmc`` is a float64 numpy array of shape (max_rank,) with
        values in [0, 1]; ``mAP`` is a Python float in [0, 1].

    Raises:
        ValueError: on an unknown ``ap_mode``, bad ``max_rank`` / ``chunk_size``, mismatched
            shapes, non-integer ids, NaN distances, or when no query has a true match.
    """
    if ap_mode not in AP_MODES:
        raise ValueError(f"unknown ap_mode {ap_mode!r}; valid modes: {', '.join(AP_MODES)}")
    _check_positive_int("max_rank", max_rank)
    _check_positive_int("chunk_size", chunk_size)

    distmat = _to_numpy(distmat)
    if distmat.ndim != 2:
        raise ValueError(
            f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}"
        )
    num_q, num_g = distmat.shape
    q_pids = _ids("q_pids", q_pids, num_q, "rows", distmat.shape)
    q_camids = _ids("q_camids", q_camids, num_q, "rows", distmat.shape)
    g_pids = _ids("g_pids", g_pids, num_g, "columns", distmat.shape)
    g_camids = _ids("g_camids", g_camids, num_g, "columns", distmat.shape)

    # Per-query results land in O(Q) arrays so the final reductions see the same numbers in
    # the same order whatever the chunk size (bit-identical results across chunk sizes).
    first_rank = np.zeros(num_q, dtype=np.int64)  # 0 = query has no true match
    ap = np.zeros(num_q, dtype=np.float64)
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        first_rank[start:stop], ap[start:stop] = _evaluate_chunk(
            distmat[start:stop],
            q_pids[start:stop],
            q_camids[start:stop],
            g_pids,
            g_camids,
            ap_mode,
        )

    valid = first_rank > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"no valid query: none of the {num_q} queries has a true match in the gallery "
            "(same pid, different camera, pid != -1)"
        )
    # Histogram of first-hit ranks 1..max_rank; later ranks never reach the CMC window.
    hist = np.bincount(first_rank[valid & (first_rank <= max_rank)], minlength=max_rank + 1)
    cmc = np.cumsum(hist[1 : max_rank + 1]).astype(np.float64) / num_valid
    return cmc, float(ap[valid].mean())


def _evaluate_chunk(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
    ap_mode: str,
) -> tuple[np.ndarray, np.ndarray]:
    """First-hit rank (0 if none) and AP (0 if none) for each query of one chunk."""
    num_rows = dist.shape[0]
    if dist.dtype.kind == "f" and np.isnan(dist).any():
        raise ValueError("distmat contains NaN; the ranking would be undefined")

    labels = _pair_labels(q_pids, q_camids, g_pids, g_camids)
    order = stable_argsort_rows(dist)
    ranked = np.take_along_axis(labels, order, axis=1)
    del labels, order  # free the B x G temporaries before the event arithmetic

    # Events (hits and junk) in row-major order: by query, then by ranked position.
    rows, pos = np.nonzero(ranked)
    is_good = ranked[rows, pos] == _GOOD
    is_junk = ~is_good
    del ranked

    n_good = np.bincount(rows[is_good], minlength=num_rows)
    n_junk = np.bincount(rows[is_junk], minlength=num_rows)
    # Running counts restarted at each row: global cumsum minus the count of earlier rows.
    hit_no = np.cumsum(is_good) - _exclusive_cumsum(n_good)[rows]
    junk_seen = np.cumsum(is_junk) - _exclusive_cumsum(n_junk)[rows]

    # For a hit, junk_seen counts junk strictly before it (a hit is never junk), so its rank
    # among non-junk items is its 1-based position minus that.
    hit_rows = rows[is_good]
    hit_rank = pos[is_good] + 1 - junk_seen[is_good]
    k = hit_no[is_good].astype(np.float64)
    r = hit_rank.astype(np.float64)

    precision = k / r
    if ap_mode == "standard":
        terms = precision
    else:  # trapezoid: compute_AP.m's old_precision is the precision one rank above the hit
        previous = np.where(r > 1, (k - 1) / np.maximum(r - 1, 1), 1.0)
        terms = (previous + precision) / 2
    ap_sum = np.bincount(hit_rows, weights=terms, minlength=num_rows)
    ap = np.divide(ap_sum, n_good, out=np.zeros(num_rows), where=n_good > 0)

    first_rank = np.zeros(num_rows, dtype=np.int64)
    is_first = k == 1
    first_rank[hit_rows[is_first]] = hit_rank[is_first]
    return first_rank, ap


def _pair_labels(
    q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray
) -> np.ndarray:
    """(B, G) int8 labels in gallery order: _GOOD, _JUNK or _NEGATIVE per protocol."""
    same_pid = g_pids[None, :] == q_pids[:, None]
    junk = same_pid & (g_camids[None, :] == q_camids[:, None])
    junk |= (g_pids == _JUNK_PID)[None, :]
    labels = (same_pid & ~junk).view(np.int8)  # bool -> 0/1 without a copy
    labels[junk] = _JUNK
    return labels


def stable_argsort_rows(dist: np.ndarray) -> np.ndarray:
    """Row-wise ``np.argsort(dist, axis=1, kind="stable")``: ascending, ties by index.

    float32 takes a faster exact path (about 2-3x): each value is mapped to an
    order-preserving uint32, packed with its column index into one uint64, and the keys are
    sorted with numpy's (SIMD) quicksort. Keys are unique, so the order is exactly
    (value, index). -0.0 is folded into +0.0 first because argsort treats them as equal.
    NaN must have been rejected by the caller.
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


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=out[1:])
    return out


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _ids(
    name: str, values: Any, expected: int, axis_name: str, dist_shape: tuple[int, ...]
) -> np.ndarray:
    """Validated 1-D integer id array of length ``expected``."""
    arr = _to_numpy(values)
    if arr.shape != (expected,):
        raise ValueError(
            f"{name} has shape {arr.shape}, expected ({expected},) to match the {axis_name} "
            f"of distmat (shape {dist_shape})"
        )
    # An empty list comes out as float64; it carries no values to misinterpret.
    if arr.dtype.kind not in "iub" and arr.size > 0:
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)
