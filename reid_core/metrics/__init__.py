"""Evaluation metrics: query-gallery distances and Market-1501 rank evaluation (CMC / mAP)."""

from reid_core.metrics.distance import DISTANCE_METRICS, compute_distance_matrix
from reid_core.metrics.rank import AP_MODES, evaluate_rank

__all__ = ["AP_MODES", "DISTANCE_METRICS", "compute_distance_matrix", "evaluate_rank"]
