"""Fully-connected attention, the "FC-S / FC-C / FC-S//C [23]" comparators of RGA Table 2.

Source: Liu, Yuan, Zhou & Li, "Spatial and Temporal Mutual Promotion for Video-based Person
Re-identification", AAAI 2019, whose attention is built from fully connected layers inside a
recurrent unit for video. RGA re-implements it as stand-alone image attention on its baseline and
describes it only in words (RGA Sec. 4.2, "RGA vs. Other Approaches"):

* FC-S: "fully connection over the (channel-pooled) spatial feature maps" (the RGA text says
  "FC-C" in that sentence of the *spatial* paragraph; Table 2 lists it as FC-S, which we follow);
* FC-C: "a FC layer over spatially average pooled features. Before their pooling, the features
  are further embedded through 1x1 convolutions";
* FC-S//C: spatial and channel in parallel (Table 2, "Both"); RGA Sec. 3.1 also notes that such
  global FC attention "requires a large number of parameters especially when the number of
  features N is large [23]".

What we build (every detail below beyond those sentences is a choice, exposed as an option):

* Embedding: 1x1 conv C -> C_e = ``max(1, C // embed_reduction)`` + BN + ReLU, the embedding
  style RGA uses for its own modules. ``embed_reduction`` = 8 is RGA's s_1 = 8 (RGA Sec. 4.1).
  The conv has no bias because BN follows it.
* FC-S: embed -> mean over the C_e channels -> one H x W map, flattened to N = H W values ->
  FC N -> N -> sigmoid -> one gate per position, shared by all channels. The FC weight is N x N,
  so this module is tied to the H x W it was built for (a different size fails loudly).
* FC-C: embed -> spatial average pooling -> (C_e,) -> FC C_e -> C -> sigmoid -> one gate per
  channel, shared by all positions.
* ``hidden_reduction`` = None: a single FC layer, as RGA describes ("a FC layer"). An integer r
  instead inserts a hidden layer, FC n -> max(1, n // r) -> ReLU -> FC -> n (n = N for FC-S,
  n = C for FC-C), which cuts FC-S's N^2 weights to 2 N^2 / r at large feature maps.
* The FC layers carry biases; no BN before the sigmoid (neither text mentions one).
* FC-S//C: both gates are computed from the same input x, each with its own embedding, and
  applied as a product, ``out = x * M_s(x) * M_c(x)``: a parallel combination that, like a
  sequential one, keeps the output a gated copy of x (mirroring RGA-S//C's "parallel with a
  fusion"; the exact fusion is not specified for either).
"""

from __future__ import annotations

import torch
from torch import nn

from reid_core.models.attention.base import GateModule, SizedModule, register_attention
from reid_core.models.attention.se import reduced_channels


def _embedding(channels: int, embed_channels: int) -> nn.Sequential:
    """1x1 conv (no bias: BN follows) + BN + ReLU, the "embedded through 1x1 convolutions" step."""
    return nn.Sequential(
        nn.Conv2d(channels, embed_channels, 1, bias=False),
        nn.BatchNorm2d(embed_channels),
        nn.ReLU(inplace=True),
    )


def _fc(in_features: int, out_features: int, hidden_reduction: int | None) -> nn.Module:
    """A single FC layer, or FC -> ReLU -> FC through ``max(1, out // hidden_reduction)`` units."""
    if hidden_reduction is None:
        return nn.Linear(in_features, out_features)
    hidden = reduced_channels(out_features, hidden_reduction, option="hidden_reduction")
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features)
    )


class FCSpatialGate(GateModule):
    """FC-S: a per-position gate from a fully connected layer over the channel-pooled map.

    Shapes: x (B, C, H, W) -> embed (B, C_e, H, W) -> mean_c (B, N) -> FC (B, N) -> sigmoid
    -> mask (B, 1, H, W).
    """

    def __init__(self, channels: int, height: int, width: int, embed_reduction: int = 8,
                 hidden_reduction: int | None = None) -> None:
        super().__init__(channels, height, width)
        embed = reduced_channels(channels, embed_reduction, option="embed_reduction")
        positions = height * width
        self.embed = _embedding(channels, embed)
        self.fc = _fc(positions, positions, hidden_reduction)  # N x N: tied to H x W

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        pooled = self.embed(x).mean(dim=1).flatten(1)  # (B, N) channel-pooled spatial map
        return torch.sigmoid(self.fc(pooled)).view(b, 1, h, w)  # (B, 1, H, W)



class FCChannelGate(GateModule):
    """FC-C: a per-channel gate from an FC layer over embedded, spatially averaged features.

    Shapes: x (B, C, H, W) -> embed (B, C_e, H, W) -> mean_hw (B, C_e) -> FC (B, C) -> sigmoid
    -> mask (B, C, 1, 1).
    """

    def __init__(self, channels: int, height: int, width: int, embed_reduction: int = 8,
                 hidden_reduction: int | None = None) -> None:
        super().__init__(channels, height, width)
        embed = reduced_channels(channels, embed_reduction, option="embed_reduction")
        self.embed = _embedding(channels, embed)
        self.fc = _fc(embed, channels, hidden_reduction)  # C_e -> C

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.embed(x).mean(dim=(2, 3))  # (B, C_e)
        return torch.sigmoid(self.fc(pooled))[:, :, None, None]  # (B, C, 1, 1)



class FCParallel(SizedModule):
    """FC-S//C: ``x * M_s(x) * M_c(x)``, both gates computed from the same x (not sequential)."""

    def __init__(self, channels: int, height: int, width: int, embed_reduction: int = 8,
                 hidden_reduction: int | None = None) -> None:
        super().__init__(channels, height, width)
        self.spatial = FCSpatialGate(channels, height, width, embed_reduction, hidden_reduction)
        self.channel = FCChannelGate(channels, height, width, embed_reduction, hidden_reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        # (B,1,H,W) * (B,C,1,1) broadcasts to one gate per (channel, position).
        return x * (self.spatial.mask(x) * self.channel.mask(x))


@register_attention("fc_s")
def build_fc_s(channels: int, height: int, width: int, *, embed_reduction: int = 8,
               hidden_reduction: int | None = None) -> FCSpatialGate:
    """FC spatial attention; ``embed_reduction`` = 8, ``hidden_reduction`` = None (one N x N FC)."""
    return FCSpatialGate(channels, height, width, embed_reduction, hidden_reduction)


@register_attention("fc_c")
def build_fc_c(channels: int, height: int, width: int, *, embed_reduction: int = 8,
               hidden_reduction: int | None = None) -> FCChannelGate:
    """FC channel attention; ``embed_reduction`` = 8, ``hidden_reduction`` = None (one FC)."""
    return FCChannelGate(channels, height, width, embed_reduction, hidden_reduction)


@register_attention("fc_s_par_c")
def build_fc_s_par_c(channels: int, height: int, width: int, *, embed_reduction: int = 8,
                     hidden_reduction: int | None = None) -> FCParallel:
    """FC-S and FC-C in parallel, masks multiplied; options shared by both branches."""
    return FCParallel(channels, height, width, embed_reduction, hidden_reduction)
