"""Batch-hard triplet loss (Hermans et al., "In Defense of the Triplet Loss", 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
