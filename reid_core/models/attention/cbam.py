"""CBAM, the "CBAM-S / CBAM-C / CBAM-CS [38]" comparators of RGA Table 2.

Woo, Park, Lee & Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018:

* Eq. (1), the whole block, channel first then spatial:
  ``F' = M_c(F) (x) F``, ``F'' = M_s(F') (x) F'``;
* Eq. (2), channel attention:
  ``M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))``
  ``       = sigmoid(W_1(W_0(F_avg)) + W_1(W_0(F_max)))``
  with one MLP shared by both descriptors, ``W_0 in R^{C/r x C}`` followed by ReLU,
  ``W_1 in R^{C x C/r}``;
* Eq. (3), spatial attention:
  ``M_s(F) = sigmoid(f^{7x7}([AvgPool(F); MaxPool(F)]))``, pooling along the channel axis and a
  single 7x7 convolution over the two stacked maps.

RGA (Sec. 4.2, "RGA vs. Other Approaches") uses the spatial part alone (CBAM-S), the channel
part alone (CBAM-C, "similar to SE but it additionally uses global max-pooled features") and both
in CBAM's order (CBAM-CS).

Choices the papers leave open, as options:

* ``reduction`` (r) = 16, CBAM's setting (it follows SE). Hidden width ``max(1, C // r)``.
* ``kernel_size`` = 7, the "large filter size of 7x7" both papers name; odd sizes only, padded
  by ``k // 2`` so the map keeps its H x W.
* The MLP layers and the 7x7 conv carry biases and there is no BN before the sigmoid: Eqs. (2)
  and (3) have none. (CBAM's released code adds a BN after the 7x7 conv; we follow the paper.)
"""

from __future__ import annotations

import torch
from torch import nn

from reid_core.models.attention.base import GateModule, SizedModule, register_attention
from reid_core.models.attention.se import reduced_channels


class CBAMChannelGate(GateModule):
    """CBAM-C: ``x * M_c(x)``, Woo et al. Eq. (2).

    Shapes: x (B, C, H, W) -> avg, max (B, C) -> shared MLP (B, C) each -> sum -> sigmoid
    -> mask (B, C, 1, 1).
    """

    def __init__(self, channels: int, height: int, width: int, reduction: int = 16) -> None:
        super().__init__(channels, height, width)
        hidden = reduced_channels(channels, reduction)
        # One MLP for both descriptors: the paper's "shared network" (W_0, W_1 used twice).
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden),  # W_0: C -> C/r
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),  # W_1: C/r -> C
        )

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        f_avg = x.mean(dim=(2, 3))  # (B, C)
        f_max = x.amax(dim=(2, 3))  # (B, C)
        logits = self.mlp(f_avg) + self.mlp(f_max)  # summed before the sigmoid, Eq. (2)
        return torch.sigmoid(logits)[:, :, None, None]  # (B, C, 1, 1)



class CBAMSpatialGate(GateModule):
    """CBAM-S: ``x * M_s(x)``, Woo et al. Eq. (3).

    Shapes: x (B, C, H, W) -> [mean_c; max_c] (B, 2, H, W) -> k x k conv (B, 1, H, W) -> sigmoid.
    """

    def __init__(self, channels: int, height: int, width: int, kernel_size: int = 7) -> None:
        super().__init__(channels, height, width)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) \
                or kernel_size < 1 or kernel_size % 2 == 0:
            # An even kernel cannot be padded symmetrically to keep H x W.
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)  # f^{7x7}

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat(
            [x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1
        )  # (B, 2, H, W): channel-wise average and max
        return torch.sigmoid(self.conv(pooled))  # (B, 1, H, W): one gate per position



class CBAM(SizedModule):
    """CBAM-CS: channel gate, then spatial gate on the channel-refined map (Woo et al. Eq. (1)).

    The order matters: ``M_s`` is computed from ``F' = M_c(F) (x) F``, not from ``F``.
    """

    def __init__(self, channels: int, height: int, width: int, reduction: int = 16,
                 kernel_size: int = 7) -> None:
        super().__init__(channels, height, width)
        self.channel = CBAMChannelGate(channels, height, width, reduction=reduction)
        self.spatial = CBAMSpatialGate(channels, height, width, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.spatial(self.channel(x))  # F'' = M_s(F') (x) F', F' = M_c(F) (x) F


@register_attention("cbam_c")
def build_cbam_c(channels: int, height: int, width: int, *,
                 reduction: int = 16) -> CBAMChannelGate:
    """CBAM channel attention; ``reduction`` r = 16."""
    return CBAMChannelGate(channels, height, width, reduction=reduction)


@register_attention("cbam_s")
def build_cbam_s(channels: int, height: int, width: int, *,
                 kernel_size: int = 7) -> CBAMSpatialGate:
    """CBAM spatial attention; ``kernel_size`` = 7."""
    return CBAMSpatialGate(channels, height, width, kernel_size=kernel_size)


@register_attention("cbam_cs")
def build_cbam_cs(channels: int, height: int, width: int, *, reduction: int = 16,
                  kernel_size: int = 7) -> CBAM:
    """Full CBAM (channel then spatial); ``reduction`` r = 16, ``kernel_size`` = 7."""
    return CBAM(channels, height, width, reduction=reduction, kernel_size=kernel_size)
