"""torchvision ResNet backbones with a configurable last stride.

Re-ID models (BoT, RGA, PCB) set the stride of the last stage to 1, doubling the final feature
map (16x8 instead of 8x4 for a 256x128 input). The backbone returns the stage outputs so that
attention modules can be inserted after any of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck

from reid_core.config import AttentionConfig, ConfigError
from reid_core.models.weights import load_state_strict, read_state_file

STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNetBackbone(nn.Module):
    """ResNet trunk (stem + 4 stages), without the ImageNet pooling and classifier.

    ``forward(x)``: (B, 3, H, W) -> (B, C, H/16, W/16) with last stride 1 (H/32 with 2).
    ``forward_stages(x)``: every stage's output (after its hook), by stage name.
    ``stage_hooks``: optional modules applied after each stage (e.g. attention), by stage name.
    """

    def __init__(self, net: tvm.ResNet, last_stride: int) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"model.last_stride must be 1 or 2, got {last_stride}")
        first = net.layer4[0]
        conv = first.conv2 if isinstance(first, Bottleneck) else first.conv1
        conv.stride = (last_stride, last_stride)
        if first.downsample is not None:
            first.downsample[0].stride = (last_stride, last_stride)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4)
        block = type(net.layer1[0])
        expansion = 4 if block is Bottleneck else 1
        self.stage_channels = {s: c * expansion for s, c in zip(STAGES, (64, 128, 256, 512))}
        self.out_channels = self.stage_channels["layer4"]
        self.stage_hooks = nn.ModuleDict()

    @torch.no_grad()
    def stage_shapes(self, input_size: tuple[int, int]) -> dict[str, tuple[int, int, int]]:
        """(C, H, W) of every stage output for an input of (height, width), by a dry run."""
        was_training = self.training
        self.eval()
        x = self.maxpool(self.relu(self.bn1(self.conv1(torch.zeros(1, 3, *input_size)))))
        shapes = {}
        for name in STAGES:
            x = getattr(self, name)(x)
            shapes[name] = tuple(x.shape[1:])
        self.train(was_training)
        return shapes

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of all four stages, each *after* its stage hook, from one pass.

        (B, 3, H, W) -> ``{"layer1": (B, C1, H/4, W/4), ..., "layer4": (B, C4, H/16, W/16)}``
        (last stride 1). Deep supervision reads the attention stages' outputs from here, so it
        needs no second forward pass.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = {}
        for name in STAGES:
            x = getattr(self, name)(x)
            if name in self.stage_hooks:
                x = self.stage_hooks[name](x)
            outputs[name] = x
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)["layer4"]

    def trunk_parameters(self) -> list[nn.Parameter]:
        """The ResNet's own parameters (stem + 4 stages), without the modules in
        ``stage_hooks``: those are new layers and train at the full learning rate."""
        hooks = {id(p) for p in self.stage_hooks.parameters()}
        return [p for p in self.parameters() if id(p) not in hooks]


_TORCHVISION: dict[str, tuple[Callable[..., tvm.ResNet], object]] = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1),
}
BACKBONES = tuple(_TORCHVISION)


def build_backbone(name: str, last_stride: int = 1, pretrained: str | None = None) -> ResNetBackbone:
    """Build a ResNet backbone.

    Args:
        name: one of :data:`BACKBONES`.
        last_stride: stride of the first block of ``layer4`` (1 for re-ID).
        pretrained: ``None`` (random init, torchvision's default init), ``"imagenet"``
            (torchvision's weights API, ``IMAGENET1K_V1``; needs the weights in torch's hub
            cache or a network), or a path to a local ImageNet state dict. Loading is strict:
            only the ImageNet classifier ``fc.*`` is dropped.
    """
    if name not in _TORCHVISION:
        raise KeyError(f"model.backbone: unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    ctor, weights = _TORCHVISION[name]
    net = ctor(weights=None)
    if pretrained is not None:
        if pretrained == "imagenet":
            try:
                state = weights.get_state_dict(progress=True)
            except Exception as e:  # no network and no cached file: a missing-file problem
                raise FileNotFoundError(
                    f"could not fetch torchvision's ImageNet weights for {name} ({e}). Put the "
                    f"file in torch's hub cache, or set model.pretrained to a local file path."
                ) from e
            source = f"torchvision {weights}"
        else:
            state, source = read_state_file(pretrained), str(pretrained)
        load_state_strict(net, state, source, drop_prefixes=("fc.",))
    return ResNetBackbone(net, last_stride)


def insert_attention(backbone: ResNetBackbone, cfg: AttentionConfig,
                     input_size: tuple[int, int]) -> None:
    """Put one ``cfg.name`` module after each stage in ``cfg.stages`` (RGA: all four), each
    built for that stage's output size at ``input_size`` = (height, width)."""
    from reid_core.models.attention import build_attention

    shapes = backbone.stage_shapes(input_size)
    for stage in cfg.stages:
        c, h, w = shapes[stage]
        try:
            backbone.stage_hooks[stage] = build_attention(cfg.name, c, h, w, **cfg.options)
        except TypeError as e:  # an option the builder does not take: a config mistake
            raise ConfigError(f"model.attention.options for {cfg.name!r}: {e}") from None
