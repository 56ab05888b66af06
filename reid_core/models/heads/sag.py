"""The self attention grid (SAG; Ainam, Qin, Liu, Luo: "Self Attention Grid for Person
Re-Identification"), ``model.name: sag``.

One trunk, two resolutions (paper Sec. 3; official code ``resnet_attention.py::ResNetAttention``):

* the low-resolution image x (160 x 64) runs through the trunk; at each attention depth D_i
  (after stage ``layer_i``) a 1 x 1 conv -> BN -> ReLU -> softmax over all h x w positions
  gives the grid A_i (B, 1, h, w), which sums to 1 (Eqs. 3-5);
* the same image upsampled x2 (``upsample``: the code's ``nearest``, the paper's ``bilinear``)
  runs through the same trunk; its stage-i map (B, C, 2h, 2w) is max-pooled 2 x 2 onto the grid,
  the "sample-based discretisation", and weighted by it: F_i = A_i * maxpool(H_i) (Eq. 6);
* the attended map is average-pooled, L2-normalised (Eq. 7; ``l2norm``) and classified by the
  ``ClassBlock`` (Linear C -> 512, BN, LeakyReLU 0.1, dropout 0.5, Linear 512 -> classes).

Test feature ``sag``: the L2-normalised pooled vector (before the ClassBlock), which the
evaluator ranks by cosine (flip TTA: sum and re-normalise, ``eval.flip``).

``depths`` lists the attention depths (``[4]`` = SAG as the code builds it; ``[1, 2]`` ... the
paper's stacks; ``[]`` = the baseline: GAP of the low-resolution layer4, no second pass). The
paper does not say how the network continues after a module at D_i < 4 (the final code only
builds D4); ``continuation`` names the two readings (shared/reference/research-notes.md B.1):

* ``truncate`` (default): the network ends at the deepest listed depth, whose attended map is
  pooled and classified (the paper: "D1-D3 architectures consist only of three or two
  convolution layers"); modules at shallower listed depths replace their stage's output;
* ``flow``: every attended map replaces its stage's low-resolution output and the trunk runs on
  to layer4, whose output is pooled (the style of the code's unused ``ResNetAttentionModel``).

The two agree for ``[4]``. ``l2norm``: ``on`` = the code (the pooled vector is normalised);
``off``; ``auto`` = the paper's advice (Sec. 4.6: normalise only when the deepest depth is
D1-D3). The attention conv trains with the trunk (the code's lr 0.01), the ClassBlock at the
full lr (0.1): :meth:`SAGHead.backbone_group_parameters`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import ConfigError
from reid_core.models.backbones.base import Backbone
from reid_core.models.heads.base import Head, check_option, option, register_head
from reid_core.models.output import LOGITS, ModelOutput

#: The test feature (declared with the suite's others in ``reid_core.config.names``).
SAG_FEATURE = "sag"


@dataclass(frozen=True, kw_only=True)
class SAGOptions:
    """``model.options`` of ``model.name: sag`` (see the module docstring)."""

    depths: list[int] = option(
        [4], expected="increasing attention depths out of 1, 2, 3, 4 ([4] = SAG, [] = the "
                      "baseline)")
    continuation: Literal["truncate", "flow"] = option(
        "truncate", expected="'truncate' (pool at the deepest depth) or 'flow' (run on to "
                             "layer4)")
    upsample: Literal["nearest", "bilinear"] = option(
        "nearest", expected="'nearest' (the code) or 'bilinear' (the paper)")
    l2norm: Literal["on", "off", "auto"] = option(
        "on", expected="'on' (the code), 'off' or 'auto' (the paper: only below D4)")
    bottleneck: int = option(512, expected="a positive integer (the ClassBlock's 512)")
    dropout: float = option(0.5, expected="a probability in [0, 1) (the code: 0.5)")

    def __post_init__(self) -> None:
        depths = list(self.depths)
        check_option(self, "depths", sorted(set(depths)) == depths and set(depths) <= {1, 2, 3, 4})
        check_option(self, "bottleneck", self.bottleneck >= 1)
        check_option(self, "dropout", 0 <= self.dropout < 1)


class AttentionGrid(nn.Module):
    """1 x 1 conv (C -> 1, with bias; kaiming fan-in) -> BN2d(1) -> ReLU -> softmax over the
    h x w positions (paper Eqs. 3-5): (B, C, h, w) -> (B, 1, h, w), summing to 1 per image."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.kaiming_normal_(self.conv.weight, a=0, mode="fan_in")
        nn.init.zeros_(self.conv.bias)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = F.relu(self.bn(self.conv(x)))
        b, _, h, w = score.shape
        return F.softmax(score.view(b, h * w), dim=1).view(b, 1, h, w)


class ClassBlock(nn.Module):
    """Linear C -> N (kaiming fan-out) -> BN1d (weight N(1, 0.02)) -> LeakyReLU(0.1) ->
    dropout -> Linear N -> classes (N(0, 0.001)): the code's ``ClassBlock`` (layumi's)."""

    def __init__(self, in_features: int, num_classes: int, bottleneck: int, dropout: float
                 ) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, bottleneck)
        nn.init.kaiming_normal_(self.fc.weight, a=0, mode="fan_out")
        nn.init.zeros_(self.fc.bias)
        self.bn = nn.BatchNorm1d(bottleneck)
        nn.init.normal_(self.bn.weight, 1.0, 0.02)
        nn.init.zeros_(self.bn.bias)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bottleneck, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(F.leaky_relu(self.bn(self.fc(x)), 0.1)))


@register_head("sag", SAGOptions)
class SAGHead(Head):
    """See the module docstring. Feature ``sag`` (B, C_D) with C_D the channels of the stage
    that is pooled; training output ``logits`` (B, classes)."""

    feature_names = (SAG_FEATURE,)
    metric_feature = SAG_FEATURE
    train_outputs = (LOGITS,)

    def __init__(self, options: SAGOptions, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.options = options
        names = backbone.stage_names
        if len(names) != 4:
            raise ConfigError(f"model.name sag: needs a backbone of 4 stages (D1-D4), "
                              f"{backbone.name!r} has {len(names)}")
        self.stage_names = names
        self.grids = nn.ModuleDict({names[d - 1]: AttentionGrid(backbone.stages[d - 1].channels)
                                    for d in options.depths})
        deepest = max(options.depths, default=4)
        self.pooled_stage = 4 if options.continuation == "flow" else deepest
        self.normalise = options.l2norm == "on" or (options.l2norm == "auto" and deepest < 4)
        channels = backbone.stages[self.pooled_stage - 1].channels
        self.classblock = ClassBlock(channels, num_classes, options.bottleneck, options.dropout)

    @classmethod
    def build(cls, options: SAGOptions, backbone: Backbone, num_classes: int,
              input_size: tuple[int, int]) -> SAGHead:
        if options.depths:  # the 2x pass must max-pool 2 x 2 exactly onto each grid
            low = backbone.stage_shapes(input_size)
            high = backbone.stage_shapes((2 * input_size[0], 2 * input_size[1]))
            for d in options.depths:
                name = backbone.stage_names[d - 1]
                (_, h, w), (_, h2, w2) = low[name], high[name]
                if (h2, w2) != (2 * h, 2 * w):
                    raise ConfigError(
                        f"model.options.depths: at input {input_size[0]}x{input_size[1]} the "
                        f"D{d} grid is {h}x{w} but the x2 pass gives {h2}x{w2}, not "
                        f"{2 * h}x{2 * w}; use an input whose sides halve evenly at every stride")
        return cls(options, backbone, num_classes)

    def backbone_group_parameters(self) -> list[nn.Parameter]:
        """The attention convs train with the trunk (the code: lr 0.01 for all but the
        ClassBlock)."""
        return list(self.grids.parameters())

    def run(self, backbone: Backbone, img: torch.Tensor
            ) -> tuple[dict[str, torch.Tensor], ModelOutput]:
        """Both passes, stage by stage: (the low-resolution stage outputs, the output)."""
        opts = self.options
        last = self.pooled_stage
        high_until = max(opts.depths, default=0)
        low = backbone.forward_stem(img)
        high = None
        if high_until:
            up = F.interpolate(img, scale_factor=2, mode=opts.upsample,
                               **({} if opts.upsample == "nearest" else {"align_corners": False}))
            high = backbone.forward_stem(up)
        stages: dict[str, torch.Tensor] = {}
        for i, name in enumerate(self.stage_names[:last], 1):
            low = backbone.forward_hooked_stage(name, low)
            if high is not None and i <= high_until:
                high = backbone.forward_hooked_stage(name, high)
            if name in self.grids:
                grid = self.grids[name](low)
                low = grid * F.max_pool2d(high, kernel_size=2, stride=2)  # Eq. 6
            stages[name] = low
        return stages, self(stages)

    def forward(self, stages: Mapping[str, torch.Tensor]) -> ModelOutput:
        pooled = stages[self.stage_names[self.pooled_stage - 1]].mean(dim=(2, 3))
        feature = F.normalize(pooled, dim=1) if self.normalise else pooled  # Eq. 7
        train = {LOGITS: self.classblock(feature)} if self.training else {}
        return ModelOutput({SAG_FEATURE: feature}, train)

    def accuracy(self, out: ModelOutput, pid: torch.Tensor) -> float:
        return float(int((out.train[LOGITS].argmax(1) == pid).sum()))
