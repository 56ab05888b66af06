"""The BNNeck head (Luo et al., "Bag of Tricks and a Strong Baseline for Deep Person
Re-identification", CVPRW 2019), ``model.name: bnneck``.

deepest stage (B, C, H, W) -> global average pooling -> ``before_bn`` (B, C) (triplet loss)
                           -> BatchNorm1d with frozen bias -> ``after_bn`` (B, C)
                           -> bias-free linear classifier -> ``logits`` (B, K) (cross-entropy)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from reid_core.models.backbones.base import Backbone
from reid_core.models.heads.base import Head, deepest, register_head
from reid_core.models.output import LOGITS, ModelOutput


@dataclass(frozen=True)
class BNNeckOptions:
    """BNNeck takes no ``model.options``."""


@register_head("bnneck", BNNeckOptions)
class BNNeck(Head):
    """GAP -> BN (bias frozen at 0, weight 1) -> bias-free classifier (init N(0, 0.001)).

    Features: ``before_bn`` = the GAP feature, ``after_bn`` = the same after the BN; both
    (B, C). Training output: ``logits`` (B, num_classes) of the post-BN feature.
    """

    feature_names = ("before_bn", "after_bn")
    metric_feature = "before_bn"
    train_outputs = (LOGITS,)
    # Kept as it always was for this model: recorded RGA runs and their optimizer checkpoints
    # depend on these groups (with optim.backbone_lr_mult = 1 it makes no difference).
    backbone_includes_hooks = True

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.bn.bias.requires_grad_(False)  # BoT: the BN shift is not learned
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.classifier = nn.Linear(in_features, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    @classmethod
    def build(cls, options: BNNeckOptions, backbone: Backbone, num_classes: int,
              input_size: tuple[int, int]) -> BNNeck:
        return cls(backbone.out_channels, num_classes)

    def forward(self, stages: Mapping[str, torch.Tensor]) -> ModelOutput:
        before = deepest(stages).mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        after = self.bn(before)
        train = {LOGITS: self.classifier(after)} if self.training else {}
        return ModelOutput({"before_bn": before, "after_bn": after}, train)

    def accuracy(self, out: ModelOutput, pid: torch.Tensor) -> float:
        return float(int((out.train[LOGITS].argmax(1) == pid).sum()))
