"""torchvision ResNet-18/34/50 (He et al., CVPR 2016) with a configurable last stride.

Re-ID models (BoT, RGA, PCB) set the stride of the last stage to 1, doubling the final feature
map (16 x 8 instead of 8 x 4 for a 256 x 128 input). The stages are torchvision's
``layer1`` .. ``layer4``; the state-dict keys are torchvision's without ``fc.*`` (``conv1``,
``bn1``, ``layer1`` .. ``layer4``), so ImageNet files load as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision import models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck

from reid_core.models.backbones.base import Backbone, StageSpec, check_last_stride, register_backbone
from reid_core.models.backbones.pretrained import load_pretrained

STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNetBackbone(Backbone):
    """ResNet trunk (stem + 4 stages), without the ImageNet pooling and classifier.

    Stages (256 x 128 input, last stride 1): ``layer1`` stride 4 (64 x 32), ``layer2`` 8,
    ``layer3`` 16, ``layer4`` 16 (16 x 8); channels 64/128/256/512, x4 for Bottleneck ResNets
    (ResNet-50: 256/512/1024/2048).

    ``last_stride`` is the stride of ``layer4``'s first block (its 3x3 conv and its
    downsampling shortcut): 2 = torchvision (layer4 at stride 32), 1 = re-ID (stride 16).
    """

    def __init__(self, net: tvm.ResNet, last_stride: int, name: str = "resnet") -> None:
        super().__init__()
        check_last_stride(last_stride)
        first = net.layer4[0]
        conv = first.conv2 if isinstance(first, Bottleneck) else first.conv1
        conv.stride = (last_stride, last_stride)
        if first.downsample is not None:
            first.downsample[0].stride = (last_stride, last_stride)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4)
        expansion = Bottleneck.expansion if isinstance(first, Bottleneck) else BasicBlock.expansion
        strides = (4, 8, 16, 16 * last_stride)
        self._init_stages(name, (StageSpec(s, c * expansion, st) for s, c, st in
                                 zip(STAGES, (64, 128, 256, 512), strides)), last_stride)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, name)(x)

    def residual_branch_ends(self, stage: str) -> list[tuple[torch.nn.Module, str]]:
        self.stage(stage, where="model.attention.stages")
        return [(block, "bn3" if isinstance(block, Bottleneck) else "bn2")
                for block in getattr(self, stage)]


def _resnet(name: str, ctor: Callable[..., tvm.ResNet], weights: tvm.WeightsEnum,
            last_stride: int, pretrained: str | None) -> ResNetBackbone:
    net = ctor(weights=None)  # torchvision's default init (random numbers drawn here)
    if pretrained is not None:
        load_pretrained(net, pretrained, weights, name, drop_prefixes=("fc.",))
    return ResNetBackbone(net, last_stride, name)


@register_backbone("resnet18")
def resnet18(last_stride: int = 1, pretrained: str | None = None) -> ResNetBackbone:
    return _resnet("resnet18", tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, last_stride,
                   pretrained)


@register_backbone("resnet34")
def resnet34(last_stride: int = 1, pretrained: str | None = None) -> ResNetBackbone:
    return _resnet("resnet34", tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1, last_stride,
                   pretrained)


@register_backbone("resnet50")
def resnet50(last_stride: int = 1, pretrained: str | None = None) -> ResNetBackbone:
    return _resnet("resnet50", tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1, last_stride,
                   pretrained)
