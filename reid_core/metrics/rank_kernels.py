"""numba kernels for :mod:`reid_core.metrics.rank` (imported lazily: numba costs ~0.5 s to import).

The kernel never sorts a gallery row. For a query with ``m`` true matches it sorts only those
``m`` (distance, gallery index) keys, then makes one pass over the row: an item ordered after
the last true match cannot change any match's rank, so most items cost a single comparison
against that threshold; the few before it (negatives only: junk and same-pid items are skipped)
are binary-searched into the sorted keys and counted in an ``m + 1`` bin histogram whose
running sum gives every match's rank. Compiled code is cached on disk (``cache=True``), so only
the first call on a machine pays the compile time (a few seconds per distance dtype).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Gallery pid of images the protocol ignores for every query (see rank.py).
_JUNK_PID = -1
# Items per block of the row scan: long enough for SIMD, short enough that a block holding an
# item before the threshold (rescanned item by item) is cheap.
_BLOCK = 128
# Up to this many true matches, a query counts the matches before an item linearly.
_LINEAR_MAX = 32


@njit(cache=True, nogil=True)
def _sorted_match_keys(row, q_cam, g_cam, members, lo, hi, m):  # pragma: no cover - jitted
    """The query's ``m`` true matches as (distance, gallery index) keys sorted ascending, and
    whether any of their distances is NaN. ``members[lo:hi]`` are the gallery items of the
    query's pid in ascending index order, so a stable sort on distance alone already breaks
    ties by gallery index."""
    keys_d = np.empty(m, dtype=row.dtype)
    keys_j = np.empty(m, dtype=np.int64)
    t = 0
    has_nan = False
    for p in range(lo, hi):
        j = members[p]
        if g_cam[j] != q_cam:  # same pid, same camera = junk, not a match
            d = row[j]
            if d != d:
                has_nan = True
            keys_d[t] = d
            keys_j[t] = j
            t += 1
    if has_nan:
        return keys_d, keys_j, True
    if m <= 32:
        # Insertion sort: typical m is ~10-30 and this avoids argsort's temporaries. Strict
        # ">" keeps equal distances in index order (stable).
        for a in range(1, m):
            d = keys_d[a]
            j = keys_j[a]
            b = a - 1
            while b >= 0 and keys_d[b] > d:
                keys_d[b + 1] = keys_d[b]
                keys_j[b + 1] = keys_j[b]
                b -= 1
            keys_d[b + 1] = d
            keys_j[b + 1] = j
        return keys_d, keys_j, False
    order = np.argsort(keys_d, kind="mergesort")  # stable
    return keys_d[order], keys_j[order], False


@njit(parallel=True, cache=True, nogil=True)
def match_ranks(
    dist, q_pids, q_cams, q_groups, g_pids, g_cams, members, member_start, out_offsets,
    out_ranks, nan_rows,
):  # pragma: no cover - jitted
    """Ranks of every true match of every query in one chunk, queries in parallel.

    Args:
        dist: (B, G) C-contiguous distances of the chunk's queries (float32/float64/int).
        q_pids, q_cams: (B,) int64 query ids.
        q_groups: (B,) int64 index of the query's pid group in ``member_start`` (-1: none).
        g_pids, g_cams: (G,) int64 gallery ids.
        members: gallery indices grouped by pid (junk pid excluded), ascending within a group.
        member_start: (num_groups + 1,) group boundaries in ``members``.
        out_offsets: (B + 1,) query ``i`` writes its ``m_i`` ranks to
            ``out_ranks[out_offsets[i]:out_offsets[i + 1]]``; ``m_i`` must equal its number of
            true matches (same pid, other camera).
        out_ranks: (sum m_i,) int64 output: 1-based ranks among non-junk items, ascending.
        nan_rows: (B,) bool output, True where the row holds a NaN that was read.
    """
    for i in prange(dist.shape[0]):
        _row_ranks(dist[i], q_pids[i], q_cams[i], q_groups[i], g_pids, g_cams, members,
                   member_start, out_offsets[i], out_offsets[i + 1], out_ranks, nan_rows, i)


@njit(cache=True, nogil=True)
def match_ranks_serial(
    dist, q_pids, q_cams, q_groups, g_pids, g_cams, members, member_start, out_offsets,
    out_ranks, nan_rows,
):  # pragma: no cover - jitted
    """:func:`match_ranks` on the calling thread: for small chunks, where waking the thread
    pool costs more than the work (and the machine may be busy)."""
    for i in range(dist.shape[0]):
        _row_ranks(dist[i], q_pids[i], q_cams[i], q_groups[i], g_pids, g_cams, members,
                   member_start, out_offsets[i], out_offsets[i + 1], out_ranks, nan_rows, i)


@njit(cache=True, nogil=True, inline="always")
def _row_ranks(
    row, q_pid, q_cam, grp, g_pids, g_cams, members, member_start, off, end, out_ranks,
    nan_rows, i,
):  # pragma: no cover - jitted
    """One query: writes its match ranks to ``out_ranks[off:end]`` (see :func:`match_ranks`)."""
    num_g = row.shape[0]
    m = end - off
    if m == 0:
        # Skipped query: its row is still checked so NaN is rejected everywhere.
        for j in range(num_g):
            if row[j] != row[j]:
                nan_rows[i] = True
                break
        return
    keys_d, keys_j, has_nan = _sorted_match_keys(
        row, q_cam, g_cams, members, member_start[grp], member_start[grp + 1], m
    )
    if has_nan:
        nan_rows[i] = True
        return
    threshold = keys_d[m - 1]
    # hist[t] = negatives ordered after exactly t of the sorted matches (before the rest).
    hist = np.zeros(m + 1, dtype=np.int64)
    # Blocks of _BLOCK items: a branch-free (vectorised) count of the items not after the
    # threshold, and the per-item work only in the rare blocks that have one.
    for start in range(0, num_g, _BLOCK):
        # Loop over a slice, not range(start, min(...)): LLVM vectorises only this form.
        block = row[start : start + _BLOCK]
        below = 0
        for t in range(block.shape[0]):
            below += 0 if block[t] > threshold else 1  # NaN counts: it is caught below
        if below == 0:
            continue
        for t in range(block.shape[0]):
            j = start + t
            d = block[t]
            if d > threshold:  # after every match
                continue
            if d != d:
                nan_rows[i] = True
                return
            gp = g_pids[j]
            if gp == q_pid or gp == _JUNK_PID:  # a match itself or junk: never counted
                continue
            # Number of keys ordered before (d, j): distance, then gallery index.
            if m <= _LINEAR_MAX:
                # Branch-free count (vectorised by LLVM): when most items precede the last
                # match (weak features), a binary search's mispredicted branches cost more.
                lo = 0
                for k in range(m):
                    kd = keys_d[k]
                    lo += (kd < d) | ((kd == d) & (keys_j[k] < j))
            else:
                lo = 0
                hi = m
                while lo < hi:
                    mid = (lo + hi) >> 1
                    kd = keys_d[mid]
                    if kd < d or (kd == d and keys_j[mid] < j):
                        lo = mid + 1
                    else:
                        hi = mid
            hist[lo] += 1
    before = 0
    for k in range(m):
        before += hist[k]
        out_ranks[off + k] = k + 1 + before
