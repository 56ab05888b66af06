"""Batch-hard triplet loss (Hermans et al., "In Defense of the Triplet Loss", 2017)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import ConfigError
from reid_core.data.batch import PID
from reid_core.losses.base import LossTerm, register_term
from reid_core.models.output import ModelOutput


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) Euclidean distances; squared distance clamped at 1e-12 before the sqrt
    (as in the BoT/RGA code) so the gradient stays finite on the diagonal."""
    sq = (x * x).sum(dim=1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def batch_hard_triplet(
    features: torch.Tensor, pids: torch.Tensor, margin: float | None = 0.3
) -> torch.Tensor:
    """For each anchor: hardest positive (largest distance, same id, itself excluded) and
    hardest negative (smallest distance, other id).

    Args:
        features: (B, D), not normalised (BoT/RGA apply it to the pre-BN feature).
        pids: (B,) identity labels; every anchor needs >= 1 other image of its id (P x K, K >= 2).
        margin: ``m`` in ``relu(d_ap - d_an + m)``; ``None`` = soft margin ``softplus(d_ap - d_an)``.

    Returns:
        the mean loss over anchors (scalar).
    """
    dist = pairwise_euclidean(features.float())
    same = pids.unsqueeze(0) == pids.unsqueeze(1)
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    pos_mask, neg_mask = same & ~eye, ~same
    if not pos_mask.any(dim=1).all() or not neg_mask.any(dim=1).all():
        raise ValueError("batch-hard triplet needs a positive and a negative for every anchor "
                         "(use the P x K identity sampler with K >= 2 and P >= 2)")
    d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(~neg_mask, float("inf")).amin(dim=1)
    if margin is None:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


# ---------------------------------------------------------------------------------------------
# The ``triplet`` loss term
# ---------------------------------------------------------------------------------------------


@dataclass
class TripletOptions:
    #: ``m`` of the hinge; ``None`` = soft margin (softplus).
    margin: float | None = 0.3
    #: The test feature it is applied to; ``None`` = the head's metric feature (BNNeck: the
    #: pre-BN feature, as BoT and RGA do; PCB: the pooled stripes).
    feature: str | None = None

    def __post_init__(self) -> None:
        if self.margin is not None and self.margin < 0:
            raise ConfigError(f"margin: must be >= 0 or null (soft margin), got {self.margin!r}")


@register_term("triplet", TripletOptions)
def triplet(options: TripletOptions, model: nn.Module) -> LossTerm:
    head = model.head
    feature = options.feature or head.metric_feature
    if feature not in head.feature_names:
        raise ConfigError(f"options.feature: the model's head has no feature {feature!r}; "
                          f"its features: {', '.join(head.feature_names)}")

    def term(outputs: ModelOutput, batch: Mapping[str, Any]) -> torch.Tensor:
        return batch_hard_triplet(outputs.features[feature], batch[PID], options.margin)
    return term
