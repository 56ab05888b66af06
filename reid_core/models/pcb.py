"""PCB and PCB-RPP (Sun et al., "Beyond Part Models", ECCV 2018), as the official code builds
them (syfafterzy/PCB_RPP_for_reID, ``reid/models/resnet.py`` and ``resnet_rpp.py``; facts in
``shared/reference/implementation-notes.md`` section 6.1).

PCB::

    ResNet (layer4 stride 1) -> fmap (B, C, H, W)       384x128 input: H x W = 24 x 8
      -> average-pool P horizontal stripes -> g (B, C, P)
      -> dropout -> shared 1x1 conv C -> D (no bias) -> BN2d -> ReLU -> h (B, D, P)
      -> P separate Linear(D, classes) -> part logits (one CE loss each, summed)

PCB-RPP replaces the uniform stripes by *refined part pooling*: a part classifier assigns every
position of the feature map a probability of belonging to each of the P parts, and part p is
the probability-weighted average of the map. The rest of the head is shared with PCB.

Test features, in :class:`ReIDOutput`'s field names (the names are the evaluator's; for PCB they
do not refer to a BNNeck):

* ``before_bn`` = the official test feature ``out0``: the P pooled C-d part features g, each
  L2-normalised on its own, concatenated part by part -> (B, P * C) (12288-d for ResNet-50).
  The official code compares it with the *squared* Euclidean distance
  (``eval.distance: sqeuclidean``). Every part has norm 1, so the whole vector has norm
  sqrt(P); ``eval.normalize: true`` only rescales all distances by 1/P (same ranking).
* ``after_bn`` = the reduced part features h (after conv -> BN -> ReLU, what the classifiers
  see), each part L2-normalised, concatenated -> (B, P * D) (1536-d). The paper allows testing
  with either g or h; the official code returns only g (``out0``), so this one is our choice
  of the point in the head (the paper's h).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import ConfigError, ModelConfig
from reid_core.models.backbone import ResNetBackbone, build_backbone, insert_attention
from reid_core.models.bnneck import ReIDOutput
from reid_core.models.deep_supervision import build_deep_supervision, supervised_stages


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


class PartHead(nn.Module):
    """Shared reduction and the P part classifiers (official init).

    ``forward``: g (B, C, P) -> :class:`ReIDOutput` with ``before_bn`` (B, P * C),
    ``after_bn`` (B, P * D), and in training mode ``part_logits`` = P x (B, num_classes).
    """

    def __init__(self, in_channels: int, parts: int, reduction_dim: int, num_classes: int,
                 dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.reduce = nn.Conv2d(in_channels, reduction_dim, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out")
        self.bn = nn.BatchNorm2d(reduction_dim)  # weight 1, bias 0 (official)
        self.classifiers = nn.ModuleList(nn.Linear(reduction_dim, num_classes)
                                         for _ in range(parts))
        for fc in self.classifiers:
            nn.init.normal_(fc.weight, std=0.001)
            nn.init.zeros_(fc.bias)

    def forward(self, g: torch.Tensor) -> ReIDOutput:
        # As a (B, C, P, 1) map, the 1x1 conv is shared by the parts and the BN's statistics
        # are taken over batch and parts together, as in the official code.
        h = F.relu(self.bn(self.reduce(self.drop(g.unsqueeze(3))))).squeeze(3)  # (B, D, P)
        part_logits = ([fc(h[:, :, p]) for p, fc in enumerate(self.classifiers)]
                       if self.training else None)
        return ReIDOutput(concat_parts(g), concat_parts(h), None, part_logits=part_logits)


def concat_parts(parts: torch.Tensor) -> torch.Tensor:
    """(B, D, P) -> (B, P * D): every part L2-normalised on its own, then concatenated."""
    return F.normalize(parts, dim=1).transpose(1, 2).flatten(1)


class PCBModel(nn.Module):
    """PCB, or PCB-RPP when ``rpp_start_epoch`` is given (module docstring: the features).

    PCB-RPP trains as PCB (uniform stripes) until epoch ``rpp_start_epoch`` (0-based) and with
    refined part pooling from then on; the trainer calls :meth:`set_epoch` before every epoch,
    so the switch depends on the epoch alone and is exact on resume. The mode is also a buffer
    (``rpp_active``) so a saved model evaluates in the mode it was trained in last.

    Unlike the paper's description (train PCB, freeze it and train the part classifier, then
    fine-tune everything), the official schedule does **not** freeze anything in the RPP stage
    (implementation notes sections 6.1 and 8.8): ``RPP.py`` resumes the PCB checkpoint and trains
    all parameters. Neither do we. The official RPP stage starts a new SGD optimizer with
    ``lr_mult`` 1 for every parameter; here one run continues with the same optimizer, its
    parameter groups (``optim.backbone_lr_mult`` keeps applying) and the config's lr schedule,
    as in the CSA paper's protocol (40 epochs PCB + 60 epochs RPP in one 100-epoch schedule).
    The part classifier gets no gradient (and so no weight decay or momentum) before the switch.
    """

    def __init__(self, backbone: ResNetBackbone, num_classes: int, *, parts: int = 6,
                 reduction_dim: int = 256, dropout: float = 0.5,
                 rpp_start_epoch: int | None = None, rpp_group_size: int = 8,
                 rpp_temperature: float = 1.0, aux_stages: Sequence[str] = ()) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = StripePooling(parts)
        self.head = PartHead(backbone.out_channels, parts, reduction_dim, num_classes, dropout)
        # Optional parts are built after the head, so that PCB, PCB-RPP and their deep-
        # supervised variants share the initialisation of everything they have in common.
        self.rpp: RefinedPartPooling | None = None
        self.rpp_start_epoch = rpp_start_epoch
        if rpp_start_epoch is not None:
            self.rpp = RefinedPartPooling(backbone.out_channels, parts, rpp_group_size, dropout,
                                          rpp_temperature)
            self.register_buffer("rpp_active", torch.zeros((), dtype=torch.bool))
            self.set_epoch(0)
        self.aux = build_deep_supervision(backbone, aux_stages, num_classes)

    def set_epoch(self, epoch: int) -> None:
        """Switch to RPP from epoch ``rpp_start_epoch`` (0-based) on; no-op for plain PCB."""
        if self.rpp is not None:
            self.rpp_active.fill_(epoch >= self.rpp_start_epoch)

    @property
    def uses_rpp(self) -> bool:
        return self.rpp is not None and bool(self.rpp_active)

    def forward(self, x: torch.Tensor) -> ReIDOutput:
        stages = self.backbone.forward_stages(x)
        fmap = stages["layer4"]
        g = self.rpp(fmap) if self.uses_rpp else self.pool(fmap)  # (B, C, P)
        out = self.head(g)
        if self.training and self.aux is not None:
            out.aux_logits = self.aux(stages)
        return out

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The ResNet trunk only: attention modules in the stage hooks, deep-supervision
        classifiers and the whole part head are new layers (full lr)."""
        return self.backbone.trunk_parameters()


# ---------------------------------------------------------------------------------------------
# Builders (``model.name: pcb`` / ``pcb_rpp``) and their ``model.options``
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One ``model.options`` entry: default (``REQUIRED`` = none), check, and what it expects."""

    default: Any
    check: Callable[[Any], bool]
    expected: str


REQUIRED = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


PCB_OPTIONS: dict[str, Option] = {
    "parts": Option(6, lambda v: _is_int(v) and v >= 1, "a positive integer (official: 6)"),
    "reduction_dim": Option(256, lambda v: _is_int(v) and v >= 1,
                            "a positive integer (official: 256)"),
    "dropout": Option(0.5, lambda v: _is_number(v) and 0 <= v < 1,
                      "a probability in [0, 1) (official: 0.5)"),
}
RPP_OPTIONS: dict[str, Option] = {
    **PCB_OPTIONS,
    "rpp_start_epoch": Option(REQUIRED, lambda v: _is_int(v) and v >= 0,
                              "the 0-based epoch from which RPP replaces the uniform stripes, "
                              "an integer >= 0 (CSA protocol: 40, i.e. 40 epochs PCB first)"),
    "rpp_group_size": Option(8, lambda v: _is_int(v) and v >= 1,
                             "channels averaged per group in the part classifier, a positive "
                             "integer (official: 8, 2048 -> 256)"),
    "rpp_temperature": Option(1.0, lambda v: _is_number(v) and v > 0,
                              "the part softmax's temperature factor T > 0 (official: 1)"),
}


def parse_options(model: str, options: dict[str, Any], spec: dict[str, Option]) -> dict[str, Any]:
    """Check ``model.options`` against ``spec``; return every option (defaults filled in).

    Raises:
        ConfigError: an unknown key, a missing required key, or an invalid value, naming
            ``model.options.<key>`` and what was expected.
    """
    unknown = sorted(set(options) - set(spec))
    if unknown:
        raise ConfigError(f"model.options.{unknown[0]}: not an option of model {model!r}; "
                          f"valid options: {', '.join(spec)}")
    out = {}
    for key, opt in spec.items():
        value = options.get(key, opt.default)
        if value is REQUIRED:
            raise ConfigError(f"model.options.{key}: required for model {model!r}: "
                              f"{opt.expected}")
        if not opt.check(value):
            raise ConfigError(f"model.options.{key}: expected {opt.expected}, got {value!r}")
        out[key] = value
    return out


def _build(cfg: ModelConfig, num_classes: int, input_size: tuple[int, int],
           with_rpp: bool) -> PCBModel:
    opts = parse_options(cfg.name, cfg.options, RPP_OPTIONS if with_rpp else PCB_OPTIONS)
    if cfg.last_stride != 1:
        raise ConfigError(f"model.last_stride: PCB sets layer4's stride to 1 (24 x 8 maps for "
                          f"384 x 128 inputs), got {cfg.last_stride}")
    backbone = build_backbone(cfg.backbone, cfg.last_stride, cfg.pretrained)
    rows = backbone.stage_shapes(input_size)["layer4"][1]
    if rows < opts["parts"]:
        raise ConfigError(
            f"model.options.parts: {opts['parts']} stripes need a feature map of at least as "
            f"many rows; data.height {input_size[0]} gives {rows} (PCB: 384 -> 24 rows)")
    if cfg.attention is not None:
        insert_attention(backbone, cfg.attention, input_size)
    rpp = {k: opts[k] for k in ("rpp_start_epoch", "rpp_group_size", "rpp_temperature")
           } if with_rpp else {}
    return PCBModel(backbone, num_classes, parts=opts["parts"],
                    reduction_dim=opts["reduction_dim"], dropout=opts["dropout"], **rpp,
                    aux_stages=supervised_stages(cfg.attention))


def build_pcb(cfg: ModelConfig, num_classes: int, input_size: tuple[int, int]) -> PCBModel:
    """``model.name: pcb``; options: ``parts``, ``reduction_dim``, ``dropout``."""
    return _build(cfg, num_classes, input_size, with_rpp=False)


def build_pcb_rpp(cfg: ModelConfig, num_classes: int, input_size: tuple[int, int]) -> PCBModel:
    """``model.name: pcb_rpp``; PCB's options plus ``rpp_start_epoch`` (required),
    ``rpp_group_size`` and ``rpp_temperature``."""
    return _build(cfg, num_classes, input_size, with_rpp=True)
