"""Market-1501 multi-query: one pooled query feature per query from its gt_bbox images.

The rule, from the official Market-1501 baseline (``baseline_evaluation_*.m``) and layumi's
``Person_reID_baseline_pytorch`` (``prepare.py`` + ``evaluate.py``; SAG's code is layumi's):

* for each query, take **every image of ``gt_bbox/`` with the query's person id and camera**
  (MATLAB: ``dir([gt_dir img_name(1:7) '*.jpg'])`` -- the name prefix ``0001_c1`` -- across all
  sequences; layumi: ``mquery_label == query_label & mquery_cam == query_cam``);
* pool their features by **mean** ("MultiQ_avg") or element-wise **max** ("MultiQ_max");
* rank the gallery with the pooled vector under the usual single-query protocol (the junk
  rule still uses the query's own id and camera).

SAG's released code (jpainam/self_attention_grid ``test.py --multi`` + ``evaluate_gpu.py``) is
layumi's: L2-normalised features of the ``multi-query`` folder (= gt_bbox), **mean** pooling,
ranking by dot product with L2-normalised gallery features. For SAG Table 3 that is
``mode="mean", normalize=True`` with cosine distance (the renormalisation does not change a
dot-product ranking).

The query's own image: it is **not** added separately -- neither reference adds it, both pool
gt_bbox images only. The query images are hand-drawn boxes like those of gt_bbox (detection
``00``) and, as far as the public loaders show (not re-checked on the archive here), are among
them, so each query's image takes part through gt_bbox; adding ``qf`` as well would count it
twice. For a gt_bbox set that lacks the query images, ``include_query=True`` adds it.

Normalisation: the MATLAB code L2-normalises each gt_bbox feature, pools, and L2-normalises the
pooled vector again (``normalize=True``, the default). layumi averages features that its
extractor already L2-normalised and ranks by dot product, which ranks the same as the
MATLAB mean. With ``normalize=True`` the pooled queries are unit vectors: compare them with
L2-normalised gallery features (cosine distance, or Euclidean after normalising the gallery).
``normalize=False`` pools the raw features (for raw-feature Euclidean evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reid_core.data.base import ImageItem, ReIDData

POOL_MODES: tuple[str, ...] = ("mean", "max")
GT_BBOX_KEY = "gt_bbox"  # ReIDData.extras key filled by the Market-style readers


class MultiQueryError(ValueError):
    """Multi-query evaluation is impossible as asked (e.g. a query has no gt_bbox images)."""


def require_gt_bbox(data: ReIDData) -> list[ImageItem]:
    """The gt_bbox images of ``data`` (``extras["gt_bbox"]``), or a clear error without them.

    Raises:
        MultiQueryError: the dataset was loaded without a ``gt_bbox/`` directory (the message
            names the dataset and where the directory was expected).
    """
    items = data.extras.get(GT_BBOX_KEY)
    if not items:
        raise MultiQueryError(
            f"multi-query evaluation needs Market-1501's gt_bbox/ images, but dataset "
            f"{data.name!r} was loaded without them: expected {data.root / 'gt_bbox'}/ beside "
            f"bounding_box_test/ and query/, holding the hand-drawn boxes named like "
            f"0001_c1s1_001051_00.jpg (the released Market-1501 archive has it; the "
            f"synthetic datasets generate it)")
    return items


def _ids(values: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, expected {n} (one per feature row)")
    return arr.astype(np.int64)


def pool_multi_query(
    qf: Any,
    q_pids: Any,
    q_camids: Any,
    mq_feats: Any,
    mq_pids: Any,
    mq_camids: Any,
    mode: str = "mean",
    *,
    normalize: bool = True,
    include_query: bool = False,
    query_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Pooled multi-query features, one row per query.

    Args:
        qf: (Q, D) single-query features (tensor or array); used for its shape, dtype and
            device, and pooled in only if ``include_query``.
        q_pids, q_camids: (Q,) person ids and 0-based camera ids of the queries.
        mq_feats: (M, D) features of the gt_bbox images (Market's ``gt_bbox/``, i.e.
            ``ReIDData.extras["gt_bbox"]``), in any order.
        mq_pids, mq_camids: (M,) their person ids and 0-based camera ids.
        mode: ``"mean"`` (MultiQ_avg) or ``"max"`` (element-wise max, MultiQ_max).
        normalize: L2-normalise each pooled feature before pooling and the pooled vector after
            (the Market MATLAB rule); False pools the raw features.
        include_query: also pool the query's own feature (not part of the Market rule, whose
            gt_bbox already holds the query images).
        query_names: (Q,) query file names, only to name the offending queries in errors.

    Returns:
        (Q, D) tensor on ``qf``'s device, dtype of ``qf`` (promoted to floating point).
        Queries sharing (pid, camid) get identical rows.

    Raises:
        MultiQueryError: a query has no gt_bbox image with its (pid, camid) (and
            ``include_query`` is False); the message lists such queries.
        ValueError: bad ``mode``, shapes or lengths.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"unknown multi-query pooling {mode!r}; valid: {', '.join(POOL_MODES)}")
    qf, mq_feats = torch.as_tensor(qf), torch.as_tensor(mq_feats)
    if qf.dim() != 2 or mq_feats.dim() != 2:
        raise ValueError(f"qf and mq_feats must be 2-D (num, dim), got shapes "
                         f"{tuple(qf.shape)} and {tuple(mq_feats.shape)}")
    if qf.size(1) != mq_feats.size(1):
        raise ValueError(f"feature dims differ: qf {tuple(qf.shape)}, mq_feats "
                         f"{tuple(mq_feats.shape)}")
    n_q, n_m = qf.size(0), mq_feats.size(0)
    q_pids, q_camids = _ids(q_pids, "q_pids", n_q), _ids(q_camids, "q_camids", n_q)
    mq_pids, mq_camids = _ids(mq_pids, "mq_pids", n_m), _ids(mq_camids, "mq_camids", n_m)
    if query_names is not None and len(query_names) != n_q:
        raise ValueError(f"query_names has {len(query_names)} entries, expected {n_q}")

    dtype = qf.dtype if qf.is_floating_point() else torch.get_default_dtype()
    qf = qf.to(dtype)
    mq_feats = mq_feats.to(device=qf.device, dtype=dtype)
    if normalize:
        qf, mq_feats = F.normalize(qf, dim=1), F.normalize(mq_feats, dim=1)

    members: dict[tuple[int, int], list[int]] = {}
    for j, key in enumerate(zip(mq_pids.tolist(), mq_camids.tolist())):
        members.setdefault(key, []).append(j)
    keys = list(zip(q_pids.tolist(), q_camids.tolist()))
    if not include_query:
        missing = [i for i, key in enumerate(keys) if key not in members]
        if missing:
            raise MultiQueryError(_missing_message(missing, keys, query_names, n_q))

    out = torch.empty_like(qf)
    pooled: dict[tuple[int, int], torch.Tensor] = {}  # per (pid, camid): same members, same row
    for i, key in enumerate(keys):
        if include_query:
            rows = torch.cat([mq_feats[members.get(key, [])], qf[i:i + 1]])
            out[i] = rows.mean(0) if mode == "mean" else rows.amax(0)
            continue
        if key not in pooled:
            rows = mq_feats[members[key]]
            pooled[key] = rows.mean(0) if mode == "mean" else rows.amax(0)
        out[i] = pooled[key]
    return F.normalize(out, dim=1) if normalize else out


def _missing_message(missing: list[int], keys: list[tuple[int, int]],
                     names: Sequence[str] | None, n_q: int) -> str:
    shown = []
    for i in missing[:5]:
        pid, cam = keys[i]
        where = f" {names[i]}" if names is not None else ""
        shown.append(f"query {i}{where} (person {pid}, camera c{cam + 1})")
    more = f", and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (f"multi-query: {len(missing)} of {n_q} queries have no gt_bbox image with their "
            f"person id and camera: " + "; ".join(shown) + more + ". Multi-query pools the "
            f"gt_bbox images of each query's (id, camera) (Market-1501's gt_bbox/ holds every "
            f"query image); check that gt_bbox/ is complete and holds the query persons.")
