"""Squeeze-and-Excitation, the "SE [18]" channel comparator of RGA Table 2.

Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018:

* squeeze, Eq. (2): ``z_c = 1 / (H W) * sum_{i,j} u_c(i, j)`` (global average pooling);
* excitation, Eq. (3): ``s = sigmoid(W_2 ReLU(W_1 z))`` with ``W_1 in R^{C/r x C}``,
  ``W_2 in R^{C x C/r}``;
* scale, Eq. (4): ``x~_c = s_c * u_c``.

RGA (Sec. 4.2, "RGA vs. Other Approaches", channel attention) describes it the same way:
"spatially global average-pooled features ... two fully connected (FC) layers with the
non-linearity".

Choices the papers leave open, as options:

* ``reduction`` (r) = 16, the value Hu et al. use throughout. The hidden width is
  ``max(1, C // r)`` so that small test widths still build.
* Both FC layers carry biases. The equations omit them; biases are the usual (and harmless)
  reading of "fully connected layer", and the parameter counts in the tests assume them.

This module also hosts :func:`reduced_channels`, the hidden-width rule every comparator family
shares (CBAM-C reuses SE's bottleneck; FC and non-local reduce the same way).
"""

from __future__ import annotations

import torch
from torch import nn

from reid_core.models.attention.base import GateModule, register_attention


def reduced_channels(channels: int, reduction: int, option: str = "reduction") -> int:
    """Width of a bottleneck ``channels / reduction``, floored, and at least 1.

    Raises:
        ValueError: ``reduction`` is not a positive integer (named by ``option`` in the message).
    """
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f"{option} must be a positive integer, got {reduction!r}")
    return max(1, channels // reduction)


class SqueezeExcitation(GateModule):
    """SE block: ``x * sigmoid(W_2 ReLU(W_1 GAP(x)))`` (Hu et al. Eqs. (2)-(4)).

    Shapes: x (B, C, H, W) -> z (B, C) -> s (B, C) -> mask (B, C, 1, 1) -> out (B, C, H, W).
    """

    def __init__(self, channels: int, height: int, width: int, reduction: int = 16) -> None:
        super().__init__(channels, height, width)
        hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden)  # W_1: C -> C/r
        self.fc2 = nn.Linear(hidden, channels)  # W_2: C/r -> C

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean(dim=(2, 3))  # squeeze, Eq. (2): (B, C)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # excitation, Eq. (3): (B, C)
        return s[:, :, None, None]  # (B, C, 1, 1): one gate per channel, shared by all positions
        # forward (GateModule): x * s, the scale of Eq. (4)


@register_attention("se")
def build_se(channels: int, height: int, width: int, *, reduction: int = 16) -> SqueezeExcitation:
    """SE channel attention; ``reduction`` r = 16 (hidden width ``max(1, C // r)``)."""
    return SqueezeExcitation(channels, height, width, reduction=reduction)
