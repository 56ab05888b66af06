"""Retrieval evaluation of a model on a query/gallery split: features -> distances -> metrics.

One pipeline for every protocol the papers use, each step chosen by the config (``eval.*``)
or the dataset:

1. features of query and gallery images (``eval.features``, by the names the model's head
   declares, e.g. BNNeck ``before_bn`` / ``after_bn``; optional flip averaging, optional L2);
2. ``eval.query_mode`` ``multi_mean`` / ``multi_max``: each query feature is replaced by the
   pool of the features of its ``gt_bbox`` images (Market-1501 multi-query,
   :mod:`reid_core.metrics.multi_query`);
3. distances (``eval.distance``); with ``eval.rerank`` the k-reciprocal re-ranked distances
   (:func:`reid_core.metrics.rerank.re_ranking`, base distance = ``eval.distance``);
4. the dataset's protocol: ``market`` (every dataset but CUHK03 classic; CMC, mAP, mINP via
   :func:`reid_core.metrics.rank.evaluate_rank_metrics`) or ``cuhk03_classic`` (single-shot CMC
   with repeated gallery sampling, seeded; no mAP).

**Per-query results** (``evaluator(model, per_query=True)``, what a run's final evaluation
stores): under the ``market`` protocol each feature's entry also holds
``"per_query"`` = :func:`per_query_results`, the per-query AP and first-hit rank from which
R-k and mAP are recomputed query by query (the paired bootstrap of the report's claim verdicts,
:mod:`reid_core.results.report.uncertainty`). The metric values are unchanged by it.

**Several processes (DDP).** Step 1 is shared: each rank extracts the features of its shard of
query, gallery (and ``gt_bbox``) images, cut in whole evaluation batches
(:func:`reid_core.utils.distributed.shard_bounds`), and the shards are gathered to every rank in
dataset order (:func:`~reid_core.utils.distributed.gather_rows`). Since each batch is one the
single process would run, the gathered features are those of a one-process extraction, bit for
bit (same thread count). Rank 0 alone then runs steps 2-4, the code a single process runs; the
other ranks return ``{}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from reid_core.config import DataConfig, EvalConfig
from reid_core.data.base import ImageItem
from reid_core.data.image_dataset import ImageDataset, cache_decoded
from reid_core.data.transforms import build_test_transform
from reid_core.engine.features import extract_features
from reid_core.metrics.cuhk03_classic import evaluate_cuhk03_classic_metrics
from reid_core.metrics.distance import compute_distance_matrix
from reid_core.metrics.multi_query import MultiQueryError, pool_multi_query
from reid_core.metrics.rank import RankMetrics, evaluate_rank_metrics
from reid_core.metrics.rerank import re_ranking
from reid_core.utils import distributed
from reid_core.utils.device import DeviceSettings

PROTOCOLS = ("market", "cuhk03_classic")
#: Ranks of the CMC curve stored in a record (``final[feature]["CMC"]``, percent).
CMC_CURVE_RANKS = 50
#: Significant digits of a stored per-query AP (``final[feature]["per_query"]["ap"]``): the
#: mean of rounded APs is within 5e-5 points of the mAP, and a Market record stays ~200 KB.
PER_QUERY_AP_DIGITS: Final[int] = 6


def query_digest(q_pids: np.ndarray, q_cams: np.ndarray) -> str:
    """16 hex digits of SHA-256 over the query (pid, camera) sequence, in query order: two
    evaluations with the same digest ranked the same queries in the same order."""
    h = hashlib.sha256()
    for ids in (q_pids, q_cams):
        h.update(np.ascontiguousarray(np.asarray(ids), dtype="<i8").tobytes())
    return h.hexdigest()[:16]


def per_query_results(m: RankMetrics, q_pids: np.ndarray, q_cams: np.ndarray) -> dict[str, Any]:
    """The per-query part of a record, from :func:`evaluate_rank_metrics`' result.

    ``{"queries": Q, "valid": V, "query_digest": "...", "ap": [...], "first_hit": [...]}``, the
    lists in the dataset's query order (length Q):

    * ``ap``: the query's AP as a fraction in [0, 1] (the ``ap_mode`` definition), rounded to
      :data:`PER_QUERY_AP_DIGITS` significant digits;
    * ``first_hit``: the 0-based rank of the query's first true match among the non-junk
      gallery items (0 = rank-1 hit);
    * both ``null`` for a query the protocol skips (no true match in the gallery); ``valid``
      counts the others.

    So, over the valid queries: R-k = 100 * mean(first_hit < k) (exactly the stored value,
    before its rounding to 4 decimals) and mAP = 100 * mean(ap) (to the AP rounding).
    """
    valid = m.first_match_rank > 0
    ap = [float(f"{a:.{PER_QUERY_AP_DIGITS}g}") if ok else None
          for a, ok in zip(m.per_query_ap.tolist(), valid.tolist())]
    first = [r - 1 if r > 0 else None for r in m.first_match_rank.tolist()]
    return {"queries": int(m.num_queries), "valid": int(m.num_valid_queries),
            "query_digest": query_digest(q_pids, q_cams), "ap": ap, "first_hit": first}


def _int64_rows(ids: Any) -> torch.Tensor:
    return torch.from_numpy(np.asarray(ids, dtype=np.int64))


class RetrievalEvaluator:
    """Evaluate a model on one query/gallery split.

    Calling it returns ``{feature: {"R1": ..., "R5": ..., "mAP": ..., "mINP": ..., "CMC": [...],
    "mAP_standard": ..., "mAP_trapezoid": ...}}``
    in **percent**, one entry per feature in ``eval_cfg.features`` (names the model's head
    declares: BNNeck ``before_bn`` / ``after_bn``, PCB ``parts_pooled`` / ``parts_reduced``).
    ``CMC`` is the curve at ranks 1..50. Under the CUHK03 classic protocol
    the mAP is the mean AP of the sampled single-shot galleries (SAG's code;
    ``eval.cuhk03_repeats`` samplings) and there is no mINP. ``evaluator(model, per_query=True)`` adds ``"per_query"``
    (:func:`per_query_results`) to each feature under the ``market`` protocol (not under CUHK03
    classic, whose CMC averages sampled galleries per query); the metric values are the same
    either way. The final evaluation of a run asks for it, evaluations during training do not
    (they would only make the history large).

    Args:
        gt_bbox: the dataset's ``gt_bbox`` items, needed when ``eval_cfg.query_mode`` is a
            multi-query mode.
        protocol: ``"market"`` or ``"cuhk03_classic"`` (``ReIDData.extras["protocol"]``).
        seed: seeds the gallery sampling of the CUHK03 classic protocol.
    """

    def __init__(self, query: Sequence[ImageItem], gallery: Sequence[ImageItem],
                 data_cfg: DataConfig, eval_cfg: EvalConfig, device: DeviceSettings, *,
                 gt_bbox: Sequence[ImageItem] | None = None, protocol: str = "market",
                 seed: int = 0) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown evaluation protocol {protocol!r}; valid: {PROTOCOLS}")
        multi = eval_cfg.query_mode != "single"
        if multi and not gt_bbox:
            raise MultiQueryError(
                f"eval.query_mode {eval_cfg.query_mode!r} needs the dataset's gt_bbox/ images "
                f"(Market-1501 layout: <root>/gt_bbox/); dataset {data_cfg.dataset!r} has none")
        tf = build_test_transform(data_cfg)
        workers = data_cfg.workers
        name = data_cfg.dataset
        self.query = ImageDataset(query, tf, cache=cache_decoded(len(query), workers),
                                  dataset=name)
        self.gallery = ImageDataset(gallery, tf, cache=cache_decoded(len(gallery), workers),
                                    dataset=name)
        self.gt_bbox = ImageDataset(gt_bbox, tf, cache=False, dataset=name) if multi else None
        self.cfg, self.device, self.workers = eval_cfg, device, data_cfg.workers
        self.protocol, self.seed = protocol, seed
        self.dataset = data_cfg.dataset

    def preflight(self) -> None:
        """Check the settings against this split before any feature is extracted.

        Raises:
            ValueError: re-ranking neighbourhoods (k1, k2) as large as the query + gallery
                set (Zhong's code would silently use fewer neighbours), or an empty query or
                gallery.
        """
        if not len(self.query) or not len(self.gallery):
            raise ValueError(f"dataset {self.dataset!r}: evaluation needs query and gallery "
                             f"images, got {len(self.query)} query / {len(self.gallery)} "
                             f"gallery")
        too_far = [r for r in self.cfg.ranks if r > len(self.gallery)]
        if too_far:
            raise ValueError(f"eval.ranks {too_far}: dataset {self.dataset!r} has only "
                             f"{len(self.gallery)} gallery images, so rank {too_far[0]} would be "
                             f"reported as 100% by construction; ask for ranks <= "
                             f"{len(self.gallery)}")
        if self.cfg.rerank:
            n = len(self.query) + len(self.gallery)
            k1, k2 = self.cfg.rerank_k1, self.cfg.rerank_k2
            for key, k in (("rerank_k1", k1), ("rerank_k2", k2)):
                if k >= n:
                    raise ValueError(f"eval.{key} = {k} needs more than {k} query + gallery "
                                     f"images; dataset {self.dataset!r} has {n}: lower {key}")

    def features(self, model: nn.Module):
        """``((qf, q_pids, q_cams), (gf, g_pids, g_cams))``, features as ``{name: (n, D)}``."""
        return self._extract(model, self.query), self._extract(model, self.gallery)

    def _extract(self, model: nn.Module, dataset: ImageDataset):
        if distributed.world_size() == 1:
            return self._extract_local(model, dataset)
        start, stop = distributed.shard_bounds(len(dataset), self.cfg.batch_size)
        if stop > start:
            feats, pids, cams = self._extract_local(model, Subset(dataset, range(start, stop)))
        else:  # more ranks than evaluation batches: this rank has none
            feats = {name: torch.zeros((0, 0)) for name in self.cfg.features}
            pids = cams = np.zeros(0, dtype=np.int64)
        gather = distributed.gather_rows
        return ({name: gather(f) for name, f in feats.items()},
                gather(_int64_rows(pids)).numpy(), gather(_int64_rows(cams)).numpy())

    def _extract_local(self, model: nn.Module, dataset):
        return extract_features(model, dataset, device=self.device,
                                batch_size=self.cfg.batch_size, flip=self.cfg.flip,
                                workers=self.workers, features=self.cfg.features)

    def distances(self, model: nn.Module) -> tuple[dict[str, Any], tuple[np.ndarray, ...]]:
        """``({feature: (Q, G) distances}, (q_pids, g_pids, q_cams, g_cams))`` after steps 1-3
        of the module docstring (what the metrics and the ranked-list figures rank). Several
        processes: every rank extracts its shard, rank 0 alone computes (the others get
        ``{}``)."""
        (qf, q_pids, q_cams), (gf, g_pids, g_cams) = self.features(model)
        mq = self._extract(model, self.gt_bbox) if self.gt_bbox is not None else None
        ids = tuple(np.asarray(a) for a in (q_pids, g_pids, q_cams, g_cams))
        if not distributed.is_main():
            return {}, ids
        out = {}
        for name in self.cfg.features:
            q, g = qf[name], gf[name]
            if self.cfg.normalize:
                q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
            if mq is not None:
                # With eval.normalize, each gt_bbox feature is L2-normalised, pooled, and the
                # pool normalised again (the Market MATLAB rule); without, raw features pool.
                q = pool_multi_query(q, q_pids, q_cams, mq[0][name], mq[1], mq[2],
                                     mode=self.cfg.query_mode.removeprefix("multi_"),
                                     normalize=self.cfg.normalize)
            if self.cfg.rerank:
                out[name] = re_ranking(q, g, self.cfg.rerank_k1, self.cfg.rerank_k2,
                                       self.cfg.rerank_lambda, base=self.cfg.distance)
            else:
                out[name] = compute_distance_matrix(q, g, self.cfg.distance)
        return out, ids

    def __call__(self, model: nn.Module, *, per_query: bool = False) -> dict[str, dict[str, Any]]:
        dists, (q_pids, g_pids, q_cams, g_cams) = self.distances(model)
        max_rank = max(max(self.cfg.ranks), CMC_CURVE_RANKS)
        out: dict[str, dict[str, Any]] = {}
        for name, dist in dists.items():
            if self.protocol == "cuhk03_classic":
                c = evaluate_cuhk03_classic_metrics(dist, q_pids, g_pids, q_cams, g_cams,
                                                    max_rank=max_rank,
                                                    repeats=self.cfg.cuhk03_repeats,
                                                    seed=self.seed)
                cmc = c.cmc
                # The mean AP of the sampled galleries (SAG's code; torchreid reports none).
                extra: dict[str, Any] = {
                    "mAP": round(100 * c.mAP_by_mode[self.cfg.ap_mode], 4),
                    **{f"mAP_{mode}": round(100 * v, 4) for mode, v in c.mAP_by_mode.items()}}
                queries = None
            else:
                m = evaluate_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams,
                                          max_rank=max_rank, ap_mode=self.cfg.ap_mode)
                cmc = m.cmc
                extra = {"mAP": round(100 * m.mAP, 4), "mINP": round(100 * m.mINP, 4),
                         # The other AP definition too, from the same ranking (reports show both).
                         **{f"mAP_{mode}": round(100 * v, 4)
                            for mode, v in m.mAP_by_mode.items()}}
                queries = per_query_results(m, q_pids, q_cams) if per_query else None
            cmc = np.asarray(cmc, dtype=np.float64)
            out[name] = {**{f"R{r}": round(100 * float(cmc[r - 1]), 4) for r in self.cfg.ranks},
                         **extra,
                         "CMC": [round(100 * float(c), 2) for c in cmc[:CMC_CURVE_RANKS]]}
            if queries is not None:
                out[name]["per_query"] = queries
        return out
