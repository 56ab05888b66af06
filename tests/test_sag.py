"""SAG (``model.name: sag``): grid sizes at every depth, the two passes, the readings of D1-D3,
and the D4 model against an independent build of the official ``ResNetAttention``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from reid_core.config import ConfigError, ModelConfig
from reid_core.models import build_model
from reid_core.models.heads.sag import SAG_FEATURE

#: Paper Table 1's grid labels for the 160 x 64 input: D1 40x16, D2 20x8, D3 10x4, D4 5x2.
GRIDS = {1: (40, 16), 2: (20, 8), 3: (10, 4), 4: (5, 2)}


def sag(depths, backbone="resnet18", classes=751, size=(160, 64), **options):
    """A SAG model (ResNet-18 unless named: the same strides, so the same grids, faster)."""
    torch.manual_seed(0)
    cfg = ModelConfig(name="sag", backbone=backbone, last_stride=2,
                      options={"depths": depths, **options})
    return build_model(cfg, classes, size)


class OfficialSAG(nn.Module):
    """jpainam/self_attention_grid ``resnet_attention.py::ResNetAttention`` as
    shared/reference/implementation-notes.md 3.1 describes it, written from torchvision alone:
    one ResNet-50 (last stride 2) on x (160 x 64) and on F.upsample(x, 2) (nearest); a 1 x 1
    conv 2048 -> 1 + BN2d(1) + ReLU + softmax over the 5 x 2 grid on the low-resolution layer4;
    the high-resolution layer4 max-pooled 2 x 2; product; average pool; L2 norm; ClassBlock."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.model = tvm.resnet50(weights=None)
        self.conv = nn.Conv2d(2048, 1, 1)
        self.bn = nn.BatchNorm2d(1)
        self.fc = nn.Linear(2048, 512)
        self.bn1 = nn.BatchNorm1d(512)
        self.drop = nn.Dropout(0.5)
        self.cls = nn.Linear(512, classes)

    def trunk(self, x):
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))

    def forward(self, x):
        low = self.trunk(x)
        high = F.max_pool2d(self.trunk(F.interpolate(x, scale_factor=2)), 2, 2)
        a = F.relu(self.bn(self.conv(low)))
        b, _, h, w = a.shape
        a = F.softmax(a.view(b, -1), dim=1).view(b, 1, h, w)
        f = F.normalize(F.adaptive_avg_pool2d(a * high, 1).flatten(1), dim=1)
        return f, self.cls(self.drop(F.leaky_relu(self.bn1(self.fc(f)), 0.1)))


def test_d4_is_the_official_model_in_structure_count_and_output():
    ours, official = sag([4], backbone="resnet50"), OfficialSAG(751)
    # The official module also holds torchvision's unused 1000-way fc (2,049,000 parameters).
    unused_fc = sum(p.numel() for p in official.model.fc.parameters())
    n_official = sum(p.numel() for p in official.parameters()) - unused_fc
    assert sum(p.numel() for p in ours.parameters()) == n_official == 24_945_458
    # Same weights -> the same feature and logits (eval mode: no dropout, BN running stats).
    src = {k: v for k, v in official.state_dict().items() if not k.startswith("model.fc.")}
    names = {"conv": "head.grids.layer4.conv", "bn": "head.grids.layer4.bn",
             "fc": "head.classblock.fc", "bn1": "head.classblock.bn",
             "cls": "head.classblock.classifier"}
    mapped = {}
    for k, v in src.items():
        top, rest = k.split(".", 1)
        mapped[f"backbone.{rest}" if top == "model" else f"{names[top]}.{rest}"] = v
    ours.load_state_dict(mapped, strict=True)
    ours.eval(), official.eval()
    x = torch.randn(2, 3, 160, 64)
    with torch.no_grad():
        f, _ = official(x)
        out = ours(x)
    assert torch.allclose(out.features[SAG_FEATURE], f, atol=1e-5)
    ours.train(), official.train()  # training: the same logits (dropout off to compare)
    ours.head.classblock.dropout.p = official.drop.p = 0.0
    with torch.no_grad():
        torch.manual_seed(1)
        _, logits = official(x)
        torch.manual_seed(1)
        assert torch.allclose(ours(x).train["logits"], logits, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_grid_sizes_at_every_depth_and_the_x2_pass(depth):
    model = sag([depth]).eval()
    seen = {}
    grid = model.head.grids[f"layer{depth}"]
    grid.register_forward_hook(lambda m, i, o: seen.setdefault("grid", o))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 160, 64))
    assert tuple(seen["grid"].shape[2:]) == GRIDS[depth]
    assert torch.allclose(seen["grid"].sum(dim=(2, 3)), torch.ones(2, 1))  # sums to 1
    channels = (64, 128, 256, 512)[depth - 1]  # ResNet-18's stage widths
    assert out.features[SAG_FEATURE].shape == (2, channels)  # truncate: pooled at D_i
    high = model.backbone.stage_shapes((320, 128))[f"layer{depth}"][1:]
    assert high == (2 * GRIDS[depth][0], 2 * GRIDS[depth][1])


def test_flow_runs_on_to_layer4_and_truncate_stops():
    flow = sag([1], continuation="flow").eval()
    truncate = sag([1]).eval()
    x = torch.randn(2, 3, 160, 64)
    with torch.no_grad():
        assert flow(x).features[SAG_FEATURE].shape == (2, 512)
        assert truncate(x).features[SAG_FEATURE].shape == (2, 64)
    assert sag([4], continuation="flow").head.pooled_stage == 4  # the readings agree at D4


def test_l2norm_modes_and_the_baseline_without_a_second_pass():
    x = torch.randn(3, 3, 160, 64)
    with torch.no_grad():
        norms = {mode: sag([4], l2norm=mode).eval()(x).features[SAG_FEATURE].norm(dim=1)
                 for mode in ("on", "off", "auto")}
        assert torch.allclose(norms["on"], torch.ones(3))
        assert not torch.allclose(norms["off"], torch.ones(3))
        assert torch.allclose(norms["auto"], norms["off"])  # auto: not at D4 (paper 4.6)
        assert torch.allclose(sag([2], l2norm="auto").eval()(x).features[SAG_FEATURE]
                              .norm(dim=1), torch.ones(3))
        base = sag([]).eval()
        assert not len(base.head.grids) and base(x).features[SAG_FEATURE].shape == (3, 512)


def test_upsampling_modes_differ():
    x = torch.randn(2, 3, 160, 64)
    with torch.no_grad():
        a = sag([4]).eval()(x).features[SAG_FEATURE]
        b = sag([4], upsample="bilinear").eval()(x).features[SAG_FEATURE]
    assert not torch.allclose(a, b)


def test_attention_convs_train_with_the_trunk_and_the_classblock_does_not():
    model = sag([2, 4], backbone="resnet18", classes=10, size=(64, 32))
    group = {id(p) for p in model.backbone_parameters()}
    assert all(id(p) in group for p in model.head.grids.parameters())
    assert not any(id(p) in group for p in model.head.classblock.parameters())


def test_bad_options_and_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="depths"):
        sag([4, 2])
    with pytest.raises(ConfigError, match="depths"):
        sag([5])
    with pytest.raises(ConfigError, match=r"D4 grid is 4x2 but the x2 pass gives 7x3"):
        sag([4], size=(100, 40))  # odd sizes on the way: 2 x 2 max-pooling cannot align
