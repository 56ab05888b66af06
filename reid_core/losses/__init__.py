"""Losses layer: the BoT objective = label-smoothed cross-entropy (post-BN logits)
+ batch-hard triplet (pre-BN feature); PCB's sum of part cross-entropies; deep supervision."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reid_core.config import LossConfig
from reid_core.losses.triplet import batch_hard_triplet, pairwise_euclidean
from reid_core.models import ReIDOutput


class ReIDLoss:
    """``ce_weight * ce + triplet_weight * triplet + deep_supervision_weight * aux``.

    * ``ce``: cross-entropy with label smoothing ε (1-ε+ε/K on the true class and ε/K elsewhere;
      Szegedy et al., identical to torchreid's ``CrossEntropyLabelSmooth``) of ``out.logits``;
      for PCB (``out.part_logits``) the **sum** of the P part cross-entropies, each with weight 1
      as in the official trainer (which *displays* the sum / P; we log the sum that is trained).
    * ``triplet``: batch-hard triplet on ``out.before_bn``, only when ``triplet_weight`` > 0
      (PCB's configs set 0).
    * ``aux``: the sum of the cross-entropies (same ε) of the deep-supervision classifiers
      (``out.aux_logits``), only when the model has them.
    """

    def __init__(self, cfg: LossConfig) -> None:
        self.cfg = cfg

    def __call__(self, out: ReIDOutput, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Returns the total loss and its parts (floats, for logging)."""
        parts: dict[str, torch.Tensor] = {}
        if self.cfg.ce_weight:
            if out.part_logits is not None:
                parts["ce"] = self._summed_ce(out.part_logits, pids)
            elif out.logits is None:
                raise ValueError("cross-entropy needs logits: call the model in training mode")
            else:
                parts["ce"] = F.cross_entropy(out.logits.float(), pids,
                                              label_smoothing=self.cfg.label_smoothing)
        if self.cfg.triplet_weight:
            parts["triplet"] = batch_hard_triplet(out.before_bn, pids, self.cfg.triplet_margin)
        if out.aux_logits and self.cfg.deep_supervision_weight:
            parts["aux"] = self._summed_ce(out.aux_logits, pids)
        weights = {"ce": self.cfg.ce_weight, "triplet": self.cfg.triplet_weight,
                   "aux": self.cfg.deep_supervision_weight}
        total = sum(weights[k] * v for k, v in parts.items())
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def _summed_ce(self, logits: list[torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        return sum(F.cross_entropy(lg.float(), pids, label_smoothing=self.cfg.label_smoothing)
                   for lg in logits)


__all__ = ["ReIDLoss", "batch_hard_triplet", "pairwise_euclidean"]
