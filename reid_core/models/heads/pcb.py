"""PCB and PCB-RPP heads (Sun et al., "Beyond Part Models: Person Retrieval with Refined Part
Pooling", ECCV 2018), ``model.name: pcb`` / ``pcb_rpp``, as the official code builds them
(syfafterzy/PCB_RPP_for_reID, ``reid/models/resnet.py`` and ``resnet_rpp.py``; facts in
``shared/reference/implementation-notes.md`` section 6.1).

PCB::

    deepest stage (last stride 1) -> fmap (B, C, H, W)   384x128 input: H x W = 24 x 8
      -> average-pool P horizontal stripes -> g (B, C, P)
      -> dropout -> shared 1x1 conv C -> D (no bias) -> BN2d -> ReLU -> h (B, D, P)
      -> P separate Linear(D, classes) -> part logits (one CE loss each, summed)

PCB-RPP replaces the uniform stripes by *refined part pooling*: a part classifier assigns every
position of the feature map a probability of belonging to each of the P parts, and part p is
the probability-weighted average of the map. The rest of the head is shared with PCB.

Test features (``feature_names``):

* ``parts_pooled`` = the official test feature ``out0``: the P pooled C-d part features g, each
  L2-normalised on its own, concatenated part by part -> (B, P * C) (12288-d for ResNet-50).
  The official code compares it with the *squared* Euclidean distance
  (``eval.distance: sqeuclidean``). Every part has norm 1, so the whole vector has norm
  sqrt(P); ``eval.normalize: true`` only rescales all distances by 1/P (same ranking).
  Also the feature a triplet loss reads (``metric_feature``).
* ``parts_reduced`` = the reduced part features h (after conv -> BN -> ReLU, what the classifiers
  see), each part L2-normalised, concatenated -> (B, P * D) (1536-d). The paper allows testing
  with either g or h; the official code returns only g (``out0``), so this one is our choice
  of the point in the head (the paper's h).

Before issue 11 these were called ``before_bn`` / ``after_bn`` (the BNNeck's names); format-1
configs and records are renamed on read (``reid_core.config.migrate.LEGACY_FEATURE_NAMES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import ConfigError
from reid_core.models.backbones.base import Backbone
from reid_core.models.heads.base import Head, check_option, deepest, option, register_head
from reid_core.models.output import PART_LOGITS, ModelOutput


# ---------------------------------------------------------------------------------------------
# Options (``model.options``)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PCBOptions:
    """``model.options`` of ``pcb``."""

    parts: int = option(6, expected="a positive integer (official: 6)")
    reduction_dim: int = option(256, expected="a positive integer (official: 256)")
    dropout: float = option(0.5, expected="a probability in [0, 1) (official: 0.5)")

    def __post_init__(self) -> None:
        check_option(self, "parts", self.parts >= 1)
        check_option(self, "reduction_dim", self.reduction_dim >= 1)
        check_option(self, "dropout", 0 <= self.dropout < 1)


@dataclass(frozen=True, kw_only=True)
class PCBRPPOptions(PCBOptions):
    """``model.options`` of ``pcb_rpp``: PCB's, plus when and how refined part pooling runs."""

    rpp_start_epoch: int = option(
        expected="the 0-based epoch from which RPP replaces the uniform stripes, an integer "
                 ">= 0 (CSA protocol: 40, i.e. 40 epochs PCB first)")
    rpp_group_size: int = option(8, expected="channels averaged per group in the part "
                                             "classifier, a positive integer (official: 8, "
                                             "2048 -> 256)")
    rpp_temperature: float = option(1.0, expected="the part softmax's temperature factor "
                                                  "T > 0 (official: 1)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_option(self, "rpp_start_epoch", self.rpp_start_epoch >= 0)
        check_option(self, "rpp_group_size", self.rpp_group_size >= 1)
        check_option(self, "rpp_temperature", self.rpp_temperature > 0)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def stripe_pooling_rule(height: int, parts: int) -> tuple[int, int]:
    """(kernel, stride) in rows of the official stripe pooling for a map of ``height`` rows.

    stride = floor(H / P), kernel = H - (P - 1) * stride: always exactly P stripes, which
    tile H when P divides it (24 rows, P = 6: kernel 4, stride 4) and otherwise overlap, the
    last one ending at the bottom row (8 rows: kernel 3, stride 1).
    """
    if height < parts:
        raise ValueError(f"a feature map of {height} rows cannot be cut into {parts} stripes")
    stride = height // parts
    return height - (parts - 1) * stride, stride


class StripePooling(nn.Module):
    """Average-pool a feature map into P horizontal stripes (the official kernel/stride rule).

    ``forward``: (B, C, H, W) -> (B, C, P), P = ``parts``, needs H >= P.
    """

    def __init__(self, parts: int) -> None:
        super().__init__()
        self.parts = parts

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        height, width = fmap.shape[2:]
        kernel, stride = stripe_pooling_rule(height, self.parts)
        pooled = F.avg_pool2d(fmap, kernel_size=(kernel, width), stride=(stride, width))
        return pooled.squeeze(3)  # (B, C, P, 1) -> (B, C, P)


class RefinedPartPooling(nn.Module):
    """RPP: soft assignment of every position to one of P parts, then weighted pooling.

    Part classifier (official ``resnet_rpp.py``): dropout on the feature map -> average over
    groups of ``group_size`` consecutive channels (C -> C / 8 = 256 for ResNet-50; no
    parameters) -> subtract the spatial mean -> 1x1 conv C/8 -> P with bias -> softmax over the
    P parts (temperature T = 1). Part p = GAP(P * fmap * prob_p).

    Shapes: fmap (B, C, H, W) -> probabilities (B, P, H, W) -> pooled (B, C, P).
    """

    def __init__(self, channels: int, parts: int, group_size: int = 8, dropout: float = 0.5,
                 temperature: float = 1.0) -> None:
        super().__init__()
        if channels % group_size:
            raise ConfigError(f"model.options.rpp_group_size: must divide the {channels} "
                              f"channels of the backbone's output, got {group_size}")
        self.parts, self.group_size, self.temperature = parts, group_size, temperature
        self.drop = nn.Dropout(dropout)
        self.part_classifier = nn.Conv2d(channels // group_size, parts, kernel_size=1, bias=True)
        nn.init.kaiming_normal_(self.part_classifier.weight, mode="fan_out")
        nn.init.zeros_(self.part_classifier.bias)

    def part_probabilities(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, P, H, W); at every position the P values sum to 1."""
        b, c, h, w = fmap.shape
        y = self.drop(fmap).reshape(b, c // self.group_size, self.group_size, h, w).mean(2)
        # Centring makes the assignment depend on how a position differs from the image's
        # average, not on the image's overall activation level.
        y = y - y.mean(dim=(2, 3), keepdim=True)
        return torch.softmax(self.temperature * self.part_classifier(y), dim=1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        prob = self.part_probabilities(fmap)
        h, w = fmap.shape[2:]
        # GAP(P * fmap * prob_p) for every p, without materialising (B, C, P, H, W). The factor
        # P (official ``x = x * 6``) makes a uniform assignment (1/P everywhere) give plain GAP.
        return torch.einsum("bchw,bphw->bcp", fmap, prob) * (self.parts / (h * w))


def concat_parts(parts: torch.Tensor) -> torch.Tensor:
    """(B, D, P) -> (B, P * D): every part L2-normalised on its own, then concatenated."""
    return F.normalize(parts, dim=1).transpose(1, 2).flatten(1)


# ---------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------


@register_head("pcb", PCBOptions)
class PCBHead(Head):
    """Stripe pooling, the shared reduction and the P part classifiers (official init).

    ``forward``: stages -> deepest map (B, C, H, W) -> g (B, C, P) -> features
    ``parts_pooled`` (B, P * C), ``parts_reduced`` (B, P * D), and in training mode
    ``part_logits`` = P x (B, num_classes) (module docstring).
    """

    feature_names = ("parts_pooled", "parts_reduced")
    metric_feature = "parts_pooled"
    train_outputs = (PART_LOGITS,)
    # The trunk only: attention modules in the stage hooks, deep-supervision classifiers and
    # the whole part head are new layers (full lr), as PCB always trained them.
    backbone_includes_hooks = False

    def __init__(self, in_channels: int, num_classes: int, *, parts: int = 6,
                 reduction_dim: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.pool = StripePooling(parts)
        self.drop = nn.Dropout(dropout)
        self.reduce = nn.Conv2d(in_channels, reduction_dim, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out")
        self.bn = nn.BatchNorm2d(reduction_dim)  # weight 1, bias 0 (official)
        self.classifiers = nn.ModuleList(nn.Linear(reduction_dim, num_classes)
                                         for _ in range(parts))
        for fc in self.classifiers:
            nn.init.normal_(fc.weight, std=0.001)
            nn.init.zeros_(fc.bias)
        self.rpp: RefinedPartPooling | None = None  # PCB-RPP (:class:`PCBRPPHead`)

    @staticmethod
    def check_backbone(options: PCBOptions, backbone: Backbone,
                       input_size: tuple[int, int]) -> None:
        """PCB's demands on the backbone: the last stage at stride 16 and at least P rows."""
        last = backbone.stages[-1].name
        if backbone.last_stride != 1:
            raise ConfigError(f"model.last_stride: PCB sets {last}'s stride to 1 (24 x 8 maps "
                              f"for 384 x 128 inputs), got {backbone.last_stride}")
        rows = backbone.stage_shapes(input_size)[last][1]
        if rows < options.parts:
            raise ConfigError(
                f"model.options.parts: {options.parts} stripes need a feature map of at least "
                f"as many rows; data.height {input_size[0]} gives {rows} (PCB: 384 -> 24 rows)")

    @classmethod
    def build(cls, options: PCBOptions, backbone: Backbone, num_classes: int,
              input_size: tuple[int, int]) -> PCBHead:
        cls.check_backbone(options, backbone, input_size)
        return cls(backbone.out_channels, num_classes, parts=options.parts,
                   reduction_dim=options.reduction_dim, dropout=options.dropout)

    @property
    def uses_rpp(self) -> bool:
        return False

    def forward(self, stages: Mapping[str, torch.Tensor]) -> ModelOutput:
        fmap = deepest(stages)
        g = self.rpp(fmap) if self.uses_rpp else self.pool(fmap)  # (B, C, P)
        # As a (B, C, P, 1) map, the 1x1 conv is shared by the parts and the BN's statistics
        # are taken over batch and parts together, as in the official code.
        h = F.relu(self.bn(self.reduce(self.drop(g.unsqueeze(3))))).squeeze(3)  # (B, D, P)
        train = ({PART_LOGITS: [fc(h[:, :, p]) for p, fc in enumerate(self.classifiers)]}
                 if self.training else {})
        return ModelOutput({"parts_pooled": concat_parts(g), "parts_reduced": concat_parts(h)},
                           train)

    def accuracy(self, out: ModelOutput, pid: torch.Tensor) -> float:
        """The mean over parts of each part classifier's correct predictions."""
        part_logits = out.train[PART_LOGITS]
        hits = sum(int((lg.argmax(1) == pid).sum()) for lg in part_logits)
        return hits / len(part_logits)


@register_head("pcb_rpp", PCBRPPOptions)
class PCBRPPHead(PCBHead):
    """PCB-RPP: PCB (uniform stripes) until epoch ``rpp_start_epoch`` (0-based), refined part
    pooling from then on.

    The trainer calls :meth:`set_epoch` before every epoch, so the switch depends on the epoch
    alone and is exact on resume. The mode is also a buffer (``rpp_active``) so a saved model
    evaluates in the mode it was trained in last.

    Unlike the paper's description (train PCB, freeze it and train the part classifier, then
    fine-tune everything), the official schedule does **not** freeze anything in the RPP stage
    (implementation notes sections 6.1 and 8.8): ``RPP.py`` resumes the PCB checkpoint and trains
    all parameters. Neither do we. The official RPP stage starts a new SGD optimizer with
    ``lr_mult`` 1 for every parameter; here one run continues with the same optimizer, its
    parameter groups (``optim.backbone_lr_mult`` keeps applying) and the config's lr schedule,
    as in the CSA paper's protocol (40 epochs PCB + 60 epochs RPP in one 100-epoch schedule).
    The part classifier gets no gradient (and so no weight decay or momentum) before the switch.
    """

    def __init__(self, in_channels: int, num_classes: int, *, rpp_start_epoch: int,
                 parts: int = 6, reduction_dim: int = 256, dropout: float = 0.5,
                 rpp_group_size: int = 8, rpp_temperature: float = 1.0) -> None:
        # The RPP is built after PCB's layers, so that PCB and PCB-RPP (and their deep-
        # supervised variants) share the initialisation of everything they have in common.
        super().__init__(in_channels, num_classes, parts=parts, reduction_dim=reduction_dim,
                         dropout=dropout)
        self.rpp = RefinedPartPooling(in_channels, parts, rpp_group_size, dropout,
                                      rpp_temperature)
        self.rpp_start_epoch = rpp_start_epoch
        self.register_buffer("rpp_active", torch.zeros((), dtype=torch.bool))
        self.set_epoch(0)

    @classmethod
    def build(cls, options: PCBRPPOptions, backbone: Backbone, num_classes: int,
              input_size: tuple[int, int]) -> PCBRPPHead:
        cls.check_backbone(options, backbone, input_size)
        return cls(backbone.out_channels, num_classes, parts=options.parts,
                   reduction_dim=options.reduction_dim, dropout=options.dropout,
                   rpp_start_epoch=options.rpp_start_epoch,
                   rpp_group_size=options.rpp_group_size,
                   rpp_temperature=options.rpp_temperature)

    def set_epoch(self, epoch: int) -> None:
        """Switch to RPP from epoch ``rpp_start_epoch`` (0-based) on."""
        self.rpp_active.fill_(epoch >= self.rpp_start_epoch)

    @property
    def uses_rpp(self) -> bool:
        return bool(self.rpp_active)
