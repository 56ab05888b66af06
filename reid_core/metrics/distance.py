"""Query-gallery distance matrices (torch)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from reid_core.metrics.rank import require_finite

DISTANCE_METRICS: tuple[str, ...] = ("euclidean", "sqeuclidean", "cosine")


def compute_distance_matrix(qf: Any, gf: Any, metric: str = "euclidean") -> torch.Tensor:
    """A wrapper function for computing a distance matrix.

    Args:
        qf (torch.Tensor): query features of shape (num_query, dim). numpy arrays are
            accepted and converted.
        gf (torch.Tensor): gallery features of shape (num_gallery, dim), same device as qf.
        metric (str, optional): ``"euclidean"`` (true Euclidean distance, the square root of
            the squared distance clamped at 0), ``"sqeuclidean"`` (squared Euclidean) or
            ``"cosine"`` (``1 - cosine similarity``; features are L2-normalised inside, an
            all-zero feature has similarity 0 to everything, and the result is clamped to
            [0, 2]). Default is ``"euclidean"``.

    Returns:
        torch.Tensor: float32 distance matrix of shape (num_query, num_gallery), on the
        features' device.

    Notes:
        Euclidean distances use the expansion ``|q|^2 + |g|^2 - 2 q.g`` (one matrix product,
        the only practical way at Market scale). It is computed in float32 at least (float64
        if either input is float64) and cancels for near-identical features: a true distance
        of 0 can come out around ``sqrt(eps) * |q|`` rather than 0. The clamp keeps rounding
        from producing negative squared distances (and NaN from ``sqrt``).

    Raises:
        ValueError: on an unknown metric, incompatible shapes, or NaN / inf in a feature (the
            message counts them and names their rows: a NaN feature would otherwise turn
            into NaN distances that surface much later, far from their cause).
    """
    if metric not in DISTANCE_METRICS:
        raise ValueError(
            f"unknown distance metric {metric!r}; valid metrics: {', '.join(DISTANCE_METRICS)}"
        )
    qf = torch.as_tensor(qf)
    gf = torch.as_tensor(gf)
    if qf.dim() != 2 or gf.dim() != 2:
        raise ValueError(
            f"qf and gf must be 2-D (num, dim), got shapes {tuple(qf.shape)} and {tuple(gf.shape)}"
        )
    if qf.size(1) != gf.size(1):
        raise ValueError(
            f"feature dims differ: qf has shape {tuple(qf.shape)}, gf has shape {tuple(gf.shape)}"
        )
    require_finite(qf, "query features", "compute_distance_matrix")
    require_finite(gf, "gallery features", "compute_distance_matrix")

    dtype = _compute_dtype(qf.dtype, gf.dtype)
    qf, gf = qf.to(dtype), gf.to(dtype)
    if metric == "cosine":
        sim = F.normalize(qf, dim=1) @ F.normalize(gf, dim=1).t()
        dist = (1.0 - sim).clamp_(0.0, 2.0)
    else:
        sq = _squared_euclidean(qf, gf)
        dist = sq.sqrt_() if metric == "euclidean" else sq
    return dist.to(torch.float32)


def _compute_dtype(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    """float64 if either input is float64, else float32 (half precision would lose ranks)."""
    return torch.float64 if torch.float64 in (a, b) else torch.float32


def _squared_euclidean(qf: torch.Tensor, gf: torch.Tensor) -> torch.Tensor:
    q_sq = qf.pow(2).sum(dim=1, keepdim=True)  # (Q, 1)
    g_sq = gf.pow(2).sum(dim=1, keepdim=True).t()  # (1, G)
    # addmm fuses the -2 q.g^T product into the sum of norms: one (Q, G) buffer.
    dist = torch.addmm(q_sq + g_sq, qf, gf.t(), beta=1.0, alpha=-2.0)
    return dist.clamp_(min=0.0)
