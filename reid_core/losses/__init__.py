"""Losses layer: the BoT objective = label-smoothed cross-entropy (post-BN logits)
+ batch-hard triplet (pre-BN feature)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reid_core.config import LossConfig
from reid_core.losses.triplet import batch_hard_triplet, pairwise_euclidean
from reid_core.models import ReIDOutput


class ReIDLoss:
    """``ce_weight * CE_ls(logits) + triplet_weight * triplet(before_bn)``.

    Cross-entropy with label smoothing ε puts 1-ε+ε/K on the true class and ε/K elsewhere
    (Szegedy et al.; identical to torchreid's ``CrossEntropyLabelSmooth``).
    """

    def __init__(self, cfg: LossConfig) -> None:
        self.cfg = cfg

    def __call__(self, out: ReIDOutput, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Returns the total loss and its parts (floats, for logging)."""
        parts: dict[str, torch.Tensor] = {}
        if self.cfg.ce_weight:
            if out.logits is None:
                raise ValueError("cross-entropy needs logits: call the model in training mode")
            parts["ce"] = F.cross_entropy(out.logits.float(), pids,
                                          label_smoothing=self.cfg.label_smoothing)
        if self.cfg.triplet_weight:
            parts["triplet"] = batch_hard_triplet(out.before_bn, pids, self.cfg.triplet_margin)
        weights = {"ce": self.cfg.ce_weight, "triplet": self.cfg.triplet_weight}
        total = sum(weights[k] * v for k, v in parts.items())
        return total, {k: float(v.detach()) for k, v in parts.items()}


__all__ = ["ReIDLoss", "batch_hard_triplet", "pairwise_euclidean"]
