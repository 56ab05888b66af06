"""Classic CUHK03 evaluation: single-shot CMC with repeated gallery sampling.

The protocol of Li et al. (CVPR 2014) as torchreid implements it (``eval_cuhk03`` in
``torchreid/metrics/rank.py``), used on the 20 classic test splits where query = gallery =
all images of the 100 test ids (``cuhk03-classic-*`` datasets, ``extras["protocol"] ==
"cuhk03_classic"``):

1. per query, the gallery images with the **same pid and the same camera** are removed (this
   drops the query image itself, since query = gallery);
2. ``repeats`` times (torchreid: 10), **one image per gallery identity** is drawn uniformly
   at random from what is left, giving a single-shot gallery of one image per identity;
3. the CMC of that gallery (1 from the rank of the true match on) is averaged over the
   repeats, then over the queries. Queries with no image of their identity left are skipped,
   as in torchreid. Report the mean over the 20 splits (:func:`average_over_splits`).

Every sampled gallery holds exactly one true match, so a repeat's CMC is a step at
``rank = 1 + #{sampled impostors ranked before the sampled match}``.

Differences from torchreid, none of which changes the expected value:

* **Randomness.** torchreid calls ``np.random.choice`` on the global NumPy state, one call per
  (query, repeat, identity) in the order identities first appear in the query's ranked list,
  so its numbers depend on whatever used the global state before and cannot be reproduced
  in isolation. Here a private ``np.random.default_rng(seed)`` draws one uniform
  ``u[q, r, i]`` in [0, 1) for every query ``q`` (in query order, including skipped
  queries), repeat ``r`` and gallery identity ``i`` (identities in ascending pid order),
  i.e. exactly ``default_rng(seed).random((num_query, repeats, num_ids))``; identity ``i``'s
  sampled image is the ``floor(u * n)``-th (0-based, in gallery order) of its ``n`` images
  remaining for that query. Same seed, same inputs -> same CMC, whatever the chunking.
* **Ties.** Equal distances are ordered by gallery index (as :func:`evaluate_rank` does);
  torchreid's unstable ``argsort`` leaves them in an unspecified order.
* **Averaging.** Hits are counted in integers and divided once (torchreid sums float32
  per-query averages).
* **max_rank** may exceed the number of gallery identities: the CMC then stays at 1.0
  (torchreid's per-query curves would have different lengths there).

No junk or distractor ids: every gallery pid is an identity (CUHK03 has neither).

**mAP** (:func:`evaluate_cuhk03_classic_metrics`), as SAG's code computes it on this protocol
(``eval_cuhk03.py``): the AP of each sampled gallery, averaged over repeats and queries. A
sampled gallery holds one true match, at rank r, so its AP is 1/r under the ``standard``
definition and, under ``trapezoid`` (Market MATLAB / layumi ``compute_mAP``), 1 at r = 1 and
(0 + 1/r) / 2 below (the precision one rank above the only hit is 0). Both can exceed R1.
Torchreid reports no mAP here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reid_core.metrics.rank import to_numpy

DEFAULT_REPEATS = 10  # torchreid / open-reid; SAG uses 100
DEFAULT_CHUNK_SIZE = 256


@dataclass(frozen=True)
class ClassicMetrics:
    """Result of :func:`evaluate_cuhk03_classic_metrics`: the CMC and the mAP under each AP
    definition (fractions in [0, 1])."""

    cmc: np.ndarray
    mAP_by_mode: dict[str, float]


def evaluate_cuhk03_classic(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> np.ndarray:
    """Single-shot CMC of the classic CUHK03 protocol (see the module docstring); the ``cmc``
    of :func:`evaluate_cuhk03_classic_metrics`, which documents the arguments."""
    return evaluate_cuhk03_classic_metrics(distmat, q_pids, g_pids, q_camids, g_camids,
                                           max_rank, repeats, seed, chunk_size).cmc


def evaluate_cuhk03_classic_metrics(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ClassicMetrics:
    """Single-shot CMC and mAP of the classic CUHK03 protocol (see the module docstring).

    Args:
        distmat: (num_query, num_gallery) distances, smaller = more similar (numpy array or
            torch tensor); NaN is rejected.
        q_pids, q_camids: (num_query,) integer person / camera ids.
        g_pids, g_camids: (num_gallery,) integer person / camera ids.
        max_rank: length of the returned CMC.
        repeats: gallery samplings per query (torchreid: 10).
        seed: seed of the private ``np.random.default_rng`` used for the sampling.
        chunk_size: queries per vectorised step; peak memory is about
            ``chunk_size * repeats * num_gallery_ids * 33`` bytes. Results do not depend on it.

    Returns:
        :class:`ClassicMetrics`: ``cmc``, float64 of shape (max_rank,), ``cmc[k]`` = fraction
        of (valid query, repeat) pairs whose sampled true match is within the top ``k + 1``;
        ``mAP_by_mode``, the mean AP of those pairs under each definition.

    Raises:
        ValueError: mismatched shapes, non-integer ids, NaN distances, bad ``max_rank`` /
            ``repeats`` / ``chunk_size``, or no query with a true match.
    """
    for name, value in (("max_rank", max_rank), ("repeats", repeats), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    dist = to_numpy(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {dist.shape}")
    if dist.dtype.kind not in "fiu":
        raise ValueError(f"distmat must be numeric, got dtype {dist.dtype}")
    if dist.dtype.kind == "f" and np.isnan(dist).any():
        raise ValueError("distmat contains NaN; the ranking would be undefined")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat must have at least one query and one gallery item, got "
                         f"shape {dist.shape}")
    q_pids = _ids("q_pids", q_pids, num_q)
    q_cams = _ids("q_camids", q_camids, num_q)
    g_pids = _ids("g_pids", g_pids, num_g)
    g_cams = _ids("g_camids", g_camids, num_g)

    # Gallery identities in ascending pid order; each one's images in gallery order.
    ids, g_id = np.unique(g_pids, return_inverse=True)
    num_ids = len(ids)
    members = np.argsort(g_id, kind="stable")  # gallery indices grouped by identity
    counts = np.bincount(g_id, minlength=num_ids)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    # (num_ids, max_count) gallery indices, padded with -1.
    width = int(counts.max()) if num_ids else 0
    table = np.full((num_ids, width), -1, dtype=np.int64)
    col = np.arange(num_g) - np.repeat(starts, counts)
    table[g_id[members], col] = members

    rng = np.random.default_rng(seed)
    hist = np.zeros(max(num_ids, max_rank) + 1, dtype=np.int64)  # hist[r]: repeats at rank r
    num_valid = 0
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        # Drawn for every query, valid or not, so the stream does not depend on chunk_size.
        u = rng.random((stop - start, repeats, num_ids))
        ranks, valid = _chunk_ranks(dist[start:stop], q_pids[start:stop], q_cams[start:stop],
                                    g_cams, ids, table, counts, u)
        num_valid += int(valid.sum())
        hist += np.bincount(ranks[valid].ravel(), minlength=len(hist))
    if num_valid == 0:
        raise ValueError(f"no valid query: none of the {num_q} queries has an image of its "
                         f"identity from another camera in the gallery")
    pairs = num_valid * repeats
    # The AP of a sampled gallery depends only on the rank of its one true match.
    r = np.arange(len(hist), dtype=np.float64)
    r[0] = 1.0  # rank 0 never occurs (hist[0] == 0)
    ap = {"standard": 1.0 / r, "trapezoid": np.where(r == 1, 1.0, 0.5 / r)}
    return ClassicMetrics(cmc=np.cumsum(hist[1 : max_rank + 1]) / pairs,
                          mAP_by_mode={mode: float((hist * v).sum() / pairs)
                                       for mode, v in ap.items()})


def _chunk_ranks(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_cams: np.ndarray,
    g_cams: np.ndarray,
    ids: np.ndarray,
    table: np.ndarray,
    counts: np.ndarray,
    u: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of the sampled true match, ``(B, R)``, and which of the ``B`` queries are valid.

    ``u`` is the ``(B, R, num_ids)`` uniform draw of the chunk.
    """
    b_rows = np.arange(len(q_pids))
    # The query's identity index (clipped: a pid absent from the gallery is caught by `known`).
    t = np.minimum(np.searchsorted(ids, q_pids), len(ids) - 1)
    known = ids[t] == q_pids
    # Own identity: only its images from another camera remain, in gallery order.
    own = table[t]  # (B, width)
    keep = (own >= 0) & (g_cams[np.maximum(own, 0)] != q_cams[:, None])
    n_own = keep.sum(axis=1)
    valid = known & (n_own > 0)
    # Stable sort puts the kept indices first, still in gallery order.
    own_kept = np.take_along_axis(own, np.argsort(~keep, axis=1, kind="stable"), axis=1)

    # The floor(u * n)-th image of every identity, n = its image count (for the query's own
    # identity: its images left, n_own). np.minimum guards u * n rounding up to n.
    k = np.minimum((u * counts).astype(np.int64), counts - 1)
    sel = table[np.arange(len(counts)), k]  # (B, R, num_ids) gallery indices
    n_own_safe = np.maximum(n_own, 1)[:, None]  # invalid rows: any index, result unused
    k_own = np.minimum((u[b_rows, :, t] * n_own_safe).astype(np.int64), n_own_safe - 1)
    sel[b_rows, :, t] = np.take_along_axis(own_kept, k_own, axis=1)

    d = np.take_along_axis(dist[:, None, :], sel, axis=2)  # (B, R, num_ids)
    d_true = d[b_rows, :, t][..., None]
    s_true = sel[b_rows, :, t][..., None]
    # Impostors ranked before the match: closer, or equally close with a lower gallery index.
    before = (d < d_true) | ((d == d_true) & (sel < s_true))
    return 1 + before.sum(axis=2), valid


@dataclass(frozen=True)
class SplitAverage:
    """CMC averaged over test splits.

    Attributes:
        mean: (max_rank,) mean CMC over the splits.
        std: (max_rank,) sample standard deviation over the splits (``ddof=1``), the spread
            of one split's estimate; NaN when there is a single split.
        num_splits: how many CMCs were averaged.
    """

    mean: np.ndarray
    std: np.ndarray
    num_splits: int


def average_over_splits(cmcs: Sequence[Any]) -> SplitAverage:
    """Mean and spread of per-split CMCs (classic CUHK03: the 20 test splits).

    Raises:
        ValueError: no CMC, or CMCs of different lengths / not 1-D.
    """
    if len(cmcs) == 0:
        raise ValueError("average_over_splits needs at least one CMC")
    arrs = [np.asarray(c, dtype=np.float64) for c in cmcs]
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1 or arrs[0].ndim != 1:
        raise ValueError(f"CMCs must be 1-D with one length (same max_rank), got shapes "
                         f"{sorted(shapes)}")
    stack = np.stack(arrs)
    mean = stack.mean(axis=0)
    if len(arrs) > 1:
        std = stack.std(axis=0, ddof=1)
    else:
        std = np.full_like(mean, np.nan)
    return SplitAverage(mean=mean, std=std, num_splits=len(arrs))


def _ids(name: str, x: Any, expected: int) -> np.ndarray:
    arr = to_numpy(x)
    if arr.ndim != 1 or arr.shape[0] != expected:
        raise ValueError(f"{name} must have shape ({expected},) to match distmat, "
                         f"got {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr)):
            return arr.astype(np.int64)
        raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)
