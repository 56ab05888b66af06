"""The BNNeck re-ID model (Luo et al., "Bag of Tricks", 2019), and the model output type.

backbone -> global average pooling -> ``before_bn`` feature (triplet loss)
         -> BatchNorm1d with frozen bias -> ``after_bn`` feature
         -> bias-free linear classifier -> ``logits`` (cross-entropy)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from reid_core.models.backbone import ResNetBackbone
from reid_core.models.deep_supervision import build_deep_supervision


@dataclass
class ReIDOutput:
    """What every model returns. The evaluator reads ``before_bn`` and ``after_bn`` (eval mode);
    the loss reads the rest (training mode).

    BNNeck: ``before_bn`` = the GAP feature, ``after_bn`` = the same after the BNNeck's BN.
    PCB (``reid_core.models.pcb``) reuses the names for its two test features: ``before_bn`` =
    the pooled C-d part features, ``after_bn`` = the reduced part features (see
    :class:`reid_core.models.pcb.PCBModel`).
    """

    before_bn: torch.Tensor  # (B, D) pooled feature
    after_bn: torch.Tensor  # (B, D) BNNeck feature
    logits: torch.Tensor | None  # (B, num_classes) in training mode, else None
    #: PCB: one (B, num_classes) logits tensor per part, in training mode; else None.
    part_logits: list[torch.Tensor] | None = None
    #: Deep supervision: one (B, num_classes) logits tensor per supervised attention stage,
    #: shallowest first, in training mode; else empty.
    aux_logits: list[torch.Tensor] = field(default_factory=list)


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
    """``backbone`` (with any attention in its stage hooks) -> :class:`BNNeck`; with
    ``aux_stages`` (deep supervision) also one auxiliary classifier per listed stage, whose
    logits are ``ReIDOutput.aux_logits`` in training mode."""

    def __init__(self, backbone: ResNetBackbone, num_classes: int,
                 aux_stages: Sequence[str] = ()) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = BNNeck(backbone.out_channels, num_classes)
        # None adds no state-dict keys: models without deep supervision stay as they were.
        self.aux = build_deep_supervision(backbone, aux_stages, num_classes)

    def forward(self, x: torch.Tensor) -> ReIDOutput:
        if self.aux is None:
            return self.head(self.backbone(x))
        stages = self.backbone.forward_stages(x)
        out = self.head(stages["layer4"])
        if self.training:
            out.aux_logits = self.aux(stages)
        return out

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the (possibly ImageNet-pretrained) trunk, for lr multipliers.

        Kept as it always was for this model: it *includes* attention modules in the stage
        hooks (recorded RGA runs and their optimizer checkpoints depend on these groups; with
        ``optim.backbone_lr_mult`` = 1 it makes no difference). Deep-supervision classifiers
        are not included.
        """
        return list(self.backbone.parameters())
