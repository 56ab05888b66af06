"""torchvision DenseNet-121 (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017)
as a backbone with named stages and a configurable last stride.

DenseNet-121 is ``conv0/norm0/relu0/pool0`` (stride 4), then four dense blocks of 6, 12, 24
and 16 layers (growth rate 32) with a *transition* (BN-ReLU-1x1 conv halving the channels,
then 2x2 average pooling) between consecutive blocks, and a final ``norm5``. A stage here is
one dense block together with the transition *before* it, named after the block; the last
stage also applies ``norm5`` and the ReLU that torchvision's ``DenseNet.forward`` applies
before its pooling, so the last stage's output is exactly the map torchvision classifies:

===============  ========================================  ========  ==============
stage            modules (``features.*``)                  channels  stride
===============  ========================================  ========  ==============
``denseblock1``  denseblock1                                    256  4
``denseblock2``  transition1, denseblock2                       512  8
``denseblock3``  transition2, denseblock3                      1024  16
``denseblock4``  transition3, denseblock4, norm5, ReLU         1024  32 (16: last stride 1)
===============  ========================================  ========  ==============

``last_stride`` 1 drops the average pooling of ``transition3`` (the last downsampling of the
network), so ``denseblock4`` runs at stride 16 like a ResNet with last stride 1 (16 x 8 maps
for a 256 x 128 input). The transition's 1x1 conv is kept, so the ImageNet weights load
unchanged and only the resolution changes.

State-dict keys are torchvision's without the ``classifier.*`` (``features.conv0.weight``,
``features.denseblock1.denselayer1.norm1.weight``, ...). ImageNet files from torchvision's
URLs use the legacy layer names of old torchvision (``norm.1`` for ``norm1``, ...), which
:func:`remap_legacy_keys` renames, as torchvision itself does when it loads them.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from reid_core.models.backbones.base import Backbone, StageSpec, check_last_stride, register_backbone
from reid_core.models.backbones.pretrained import StateDict, load_pretrained

#: ``features`` children run by each stage, in order (``norm5`` is followed by a ReLU).
STAGE_LAYERS: dict[str, tuple[str, ...]] = {
    "denseblock1": ("denseblock1",),
    "denseblock2": ("transition1", "denseblock2"),
    "denseblock3": ("transition2", "denseblock3"),
    "denseblock4": ("transition3", "denseblock4", "norm5"),
}
_STEM = ("conv0", "norm0", "relu0", "pool0")

# "...denselayer3.norm.1.weight" -> "...denselayer3.norm1.weight": module names with a dot in
# them are no longer allowed, but the published files predate that.
_LEGACY_LAYER_KEY = re.compile(r"^(.*\.denselayer\d+\.(?:norm|relu|conv))\.([12])\.([a-z_]+)$")


def remap_legacy_keys(state: StateDict) -> StateDict:
    """Rename the legacy dense-layer keys of a DenseNet state dict (others are unchanged)."""
    return {_LEGACY_LAYER_KEY.sub(r"\1\2.\3", k): v for k, v in state.items()}


class DenseNetBackbone(Backbone):
    """A torchvision DenseNet's ``features`` as four stages (module docstring: the stages and
    what ``last_stride`` changes), without the ImageNet classifier."""

    def __init__(self, net: tvm.DenseNet, last_stride: int, name: str = "densenet") -> None:
        super().__init__()
        check_last_stride(last_stride)
        self.features = net.features
        if last_stride == 1:
            # Parameter-free: the state dict and the pretrained weights are unaffected.
            self.features.transition3.pool = nn.Identity()
        f = self.features
        channels = (f.transition1.norm.num_features, f.transition2.norm.num_features,
                    f.transition3.norm.num_features, f.norm5.num_features)
        strides = (4, 8, 16, 16 * last_stride)
        self._init_stages(name, (StageSpec(s, c, st) for s, c, st in
                                 zip(STAGE_LAYERS, channels, strides)), last_stride)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        for layer in _STEM:
            x = getattr(self.features, layer)(x)
        return x

    def forward_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        for layer in STAGE_LAYERS[name]:
            x = getattr(self.features, layer)(x)
        if name == "denseblock4":
            x = F.relu(x)  # torchvision applies it in DenseNet.forward, outside `features`
        return x


@register_backbone("densenet121")
def densenet121(last_stride: int = 1, pretrained: str | None = None) -> DenseNetBackbone:
    net = tvm.densenet121(weights=None)  # torchvision's init (random numbers drawn here)
    if pretrained is not None:
        load_pretrained(net, pretrained, tvm.DenseNet121_Weights.IMAGENET1K_V1, "densenet121",
                        drop_prefixes=("classifier.",), remap=remap_legacy_keys)
    return DenseNetBackbone(net, last_stride, "densenet121")
