"""Evaluation metrics: query-gallery distances and Market-1501 rank evaluation (CMC / mAP / mINP)."""

from reid_core.metrics.distance import DISTANCE_METRICS, compute_distance_matrix
from reid_core.metrics.rank import (
    AP_MODES,
    BACKENDS,
    RankMetrics,
    evaluate_rank,
    evaluate_rank_metrics,
)
from reid_core.metrics.rerank import BASE_DISTANCES, re_ranking, re_ranking_from_distances

__all__ = [
    "AP_MODES",
    "BACKENDS",
    "DISTANCE_METRICS",
    "RankMetrics",
    "compute_distance_matrix",
    "evaluate_rank",
    "evaluate_rank_metrics",
    "BASE_DISTANCES",
    "re_ranking",
    "re_ranking_from_distances",
]
