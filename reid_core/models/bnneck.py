"""The BNNeck re-ID model (Luo et al., "Bag of Tricks", 2019).

backbone -> global average pooling -> ``before_bn`` feature (triplet loss)
         -> BatchNorm1d with frozen bias -> ``after_bn`` feature
         -> bias-free linear classifier -> ``logits`` (cross-entropy)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reid_core.models.backbone import ResNetBackbone


@dataclass
class ReIDOutput:
    before_bn: torch.Tensor  # (B, D) pooled feature
    after_bn: torch.Tensor  # (B, D) BNNeck feature
    logits: torch.Tensor | None  # (B, num_classes) in training mode, else None


class BNNeck(nn.Module):
    """GAP -> BN (bias frozen at 0, weight 1) -> bias-free classifier (init N(0, 0.001))."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.bn.bias.requires_grad_(False)  # BoT: the BN shift is not learned
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.classifier = nn.Linear(in_features, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, fmap: torch.Tensor) -> ReIDOutput:
        before = fmap.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        after = self.bn(before)
        logits = self.classifier(after) if self.training else None
        return ReIDOutput(before, after, logits)


class BNNeckModel(nn.Module):
    def __init__(self, backbone: ResNetBackbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = BNNeck(backbone.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> ReIDOutput:
        return self.head(self.backbone(x))

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the (possibly ImageNet-pretrained) trunk, for lr multipliers."""
        return list(self.backbone.parameters())
