"""Backbones behind one protocol (stages by name) and heads from a registry with typed options."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from reid_core.config import AttentionConfig, ConfigError, ModelConfig
from reid_core.config.names import declared_features
from reid_core.models import (
    AUX_LOGITS, HEADS, LOGITS, PART_LOGITS, Backbone, ReIDModel, StageSpec, WeightMismatchError,
    available_backbones, build_backbone, build_model, insert_attention, load_state_strict)
from reid_core.models.backbones.densenet import remap_legacy_keys
from reid_core.models.deep_supervision import build_deep_supervision
from reid_core.models.heads import BNNeck, PCBOptions, PCBRPPOptions, parse_head_options

CLASSES = 5
SIZE = (128, 64)  # divisible by every stride (32), so each map is exactly H/stride x W/stride


@pytest.fixture(scope="module")
def backbones():
    torch.manual_seed(0)
    return {(name, ls): build_backbone(name, last_stride=ls).eval()
            for name in available_backbones() for ls in (1, 2)}


# --------------------------------------------------------------------------- the protocol


def test_the_registry_lists_every_family():
    assert available_backbones() == ["resnet18", "resnet34", "resnet50", "densenet121"]


@pytest.mark.parametrize("last_stride", [1, 2])
@pytest.mark.parametrize("name", available_backbones())
def test_described_stages_match_a_dry_run(backbones, name, last_stride):
    bb = backbones[name, last_stride]
    shapes = bb.stage_shapes(SIZE)
    assert list(shapes) == list(bb.stage_names) and len(bb.stages) == 4
    for spec in bb.stages:
        assert shapes[spec.name] == (spec.channels, SIZE[0] // spec.stride,
                                     SIZE[1] // spec.stride), spec
    assert bb.stages[-1].stride == 16 * last_stride and bb.last_stride == last_stride
    assert bb.out_channels == bb.stages[-1].channels
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        outs = bb.forward_stages(x)
        assert list(outs) == list(bb.stage_names)
        assert {k: tuple(v.shape[1:]) for k, v in outs.items()} == shapes
        assert torch.equal(bb(x), outs[bb.stage_names[-1]])


def test_stage_descriptions():
    r50 = build_backbone("resnet50")
    assert r50.stages == (StageSpec("layer1", 256, 4), StageSpec("layer2", 512, 8),
                          StageSpec("layer3", 1024, 16), StageSpec("layer4", 2048, 16))
    dn = build_backbone("densenet121", last_stride=2)
    assert dn.stages == (StageSpec("denseblock1", 256, 4), StageSpec("denseblock2", 512, 8),
                         StageSpec("denseblock3", 1024, 16), StageSpec("denseblock4", 1024, 32))


def test_state_dict_keys_are_torchvisions_without_the_classifier():
    r18 = build_backbone("resnet18")
    ref = {k for k in tvm.resnet18().state_dict() if not k.startswith("fc.")}
    assert set(r18.state_dict()) == ref
    assert list(r18.state_dict())[0] == "conv1.weight"
    dn = build_backbone("densenet121")
    ref = {f"{k}" for k in tvm.densenet121().state_dict() if not k.startswith("classifier.")}
    assert set(dn.state_dict()) == ref


def test_densenet_last_stride_1_drops_the_last_transitions_pooling():
    torch.manual_seed(0)
    dn2 = build_backbone("densenet121", last_stride=2).eval()
    dn1 = build_backbone("densenet121", last_stride=1).eval()
    assert isinstance(dn2.features.transition3.pool, nn.AvgPool2d)
    assert isinstance(dn1.features.transition3.pool, nn.Identity)
    assert dn1.stage_shapes(SIZE)["denseblock4"] == (1024, 8, 4)
    assert dn2.stage_shapes(SIZE)["denseblock4"] == (1024, 4, 2)
    # The last stage ends like torchvision's DenseNet.forward: ReLU(norm5(...)).
    net = tvm.densenet121().eval()
    dn = build_backbone("densenet121", last_stride=2).eval()
    dn.load_state_dict({k: v for k, v in net.state_dict().items()
                        if not k.startswith("classifier.")})
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        assert torch.allclose(dn(x), torch.relu(net.features(x)), atol=1e-6)
    with pytest.raises(ConfigError, match=r"model\.last_stride: must be 1 or 2, got 3"):
        build_backbone("densenet121", last_stride=3)


def test_trunk_parameters_exclude_the_hooks():
    bb = build_backbone("densenet121")
    insert_attention(bb, AttentionConfig(name="se", stages=["denseblock2", "denseblock4"]), SIZE)
    hooks = {id(p) for p in bb.stage_hooks.parameters()}
    trunk = {id(p) for p in bb.trunk_parameters()}
    assert hooks and not hooks & trunk
    assert trunk == {id(p) for p in bb.features.parameters()}
    assert trunk | hooks == {id(p) for p in bb.parameters()}
    # Hooks come after the trunk (the parameter order optimizer states are saved in).
    names = [n for n, _ in bb.named_parameters()]
    assert names[-1].startswith("stage_hooks.") and not names[0].startswith("stage_hooks.")


# --------------------------------------------------------------------------- attention, DS


def test_attention_and_deep_supervision_on_densenet_by_stage_name():
    att = AttentionConfig(name="se", stages=["denseblock3", "denseblock2"], deep_supervision=True)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="densenet121", attention=att), CLASSES, (64, 32))
    assert list(model.backbone.stage_hooks) == ["denseblock3", "denseblock2"]  # config order
    assert model.aux.stages == ("denseblock2", "denseblock3")  # shallowest first
    assert model.aux.classifiers["denseblock2"].in_features == 512
    assert model.train_outputs == (LOGITS, AUX_LOGITS)
    x = torch.randn(4, 3, 64, 32)
    out = model.train()(x)
    assert out.features["before_bn"].shape == (4, 1024)
    assert [lg.shape for lg in out.train[AUX_LOGITS]] == [(4, CLASSES)] * 2
    stages = model.backbone.forward_stages(x)
    fc = model.aux.classifiers["denseblock3"]
    assert torch.allclose(out.train[AUX_LOGITS][1], fc(stages["denseblock3"].mean(dim=(2, 3))),
                          atol=1e-6)
    assert model.eval()(x).train == {}


@pytest.mark.parametrize("backbone, stage, valid", [
    ("densenet121", "layer3", "denseblock1, denseblock2, denseblock3, denseblock4"),
    ("resnet18", "denseblock2", "layer1, layer2, layer3, layer4"),
])
def test_unknown_stage_names_the_key_and_the_valid_stages(backbone, stage, valid):
    cfg = ModelConfig(backbone=backbone, attention=AttentionConfig(name="se", stages=[stage]))
    match = (rf"model\.attention\.stages: '{stage}' is not a stage of backbone '{backbone}'; "
             rf"valid stages: {valid}")
    with pytest.raises(ConfigError, match=match):
        build_model(cfg, CLASSES, (64, 32))
    with pytest.raises(ConfigError, match=match):
        build_deep_supervision(build_backbone(backbone), [stage], CLASSES)


def test_a_stage_listed_twice_is_a_config_error():
    cfg = ModelConfig(backbone="resnet18",
                      attention=AttentionConfig(name="se", stages=["layer2", "layer2"]))
    with pytest.raises(ConfigError, match=r"model\.attention\.stages: stage 'layer2' is listed "
                                          r"twice"):
        build_model(cfg, CLASSES, (64, 32))


class _TwoStages(Backbone):
    """A backbone defined outside the package: the protocol is all the rest of the suite uses."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.low = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.high = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self._init_stages("toy", [StageSpec("low", 16, 4), StageSpec("high", 32, 8)], 2)

    def forward_stem(self, x):
        return self.stem(x)

    def forward_stage(self, name, x):
        return getattr(self, name)(x)


def test_any_backbone_works_with_attention_deep_supervision_and_heads():
    bb = _TwoStages()
    insert_attention(bb, AttentionConfig(name="cbam_cs", stages=["low"]), (32, 16))
    assert bb.stage_shapes((32, 16)) == {"low": (16, 8, 4), "high": (32, 4, 2)}
    model = ReIDModel(bb, BNNeck.build(None, bb, CLASSES, (32, 16)),
                      build_deep_supervision(bb, ["high", "low"], CLASSES))
    out = model.train()(torch.randn(2, 3, 32, 16))
    assert out.features["after_bn"].shape == (2, 32) and len(out.train[AUX_LOGITS]) == 2


# --------------------------------------------------------------------------- pretrained


def _legacy(state):
    """torchvision's published DenseNet files name the dense layers' modules 'norm.1' etc."""
    return {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
            for k, v in state.items()}


def test_densenet_legacy_keys_are_remapped():
    ref = tvm.densenet121().state_dict()
    legacy = _legacy(ref)
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert set(remap_legacy_keys(legacy)) == set(ref)
    assert remap_legacy_keys(ref).keys() == ref.keys()  # modern names are left alone


def test_densenet_local_imagenet_file_loads_strictly(tmp_path):
    ref = tvm.densenet121()
    path = tmp_path / "densenet121.pth"
    torch.save(_legacy(ref.state_dict()), path)
    bb = build_backbone("densenet121", pretrained=str(path))
    assert torch.equal(bb.features.conv0.weight, ref.features.conv0.weight)
    assert torch.equal(bb.features.denseblock4.denselayer16.conv2.weight,
                       ref.features.denseblock4.denselayer16.conv2.weight)
    torch.save({k: v for k, v in ref.state_dict().items() if "denseblock4" not in k}, path)
    with pytest.raises(WeightMismatchError, match="missing keys"):
        build_backbone("densenet121", pretrained=str(path))


def test_densenet_imagenet_through_the_weights_api(monkeypatch):
    ref = tvm.densenet121()
    published = _legacy(ref.state_dict())
    monkeypatch.setattr(type(tvm.DenseNet121_Weights.IMAGENET1K_V1), "get_state_dict",
                        lambda self, *a, **k: dict(published))
    bb = build_backbone("densenet121", pretrained="imagenet")
    assert torch.equal(bb.features.norm5.running_var, ref.features.norm5.running_var)

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(type(tvm.DenseNet121_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(FileNotFoundError, match="densenet121.*local file path"):
        build_backbone("densenet121", pretrained="imagenet")


# --------------------------------------------------------------------------- heads


def test_heads_declare_what_they_produce():
    assert HEADS.names() == ["bnneck", "pcb", "pcb_rpp", "sag"]
    for name in HEADS.names():
        head = HEADS.get(name).head
        assert set(head.feature_names) <= set(declared_features()), name
        assert head.metric_feature in head.feature_names, name
    assert HEADS.get("bnneck").head.backbone_includes_hooks
    assert not HEADS.get("pcb").head.backbone_includes_hooks
    assert not HEADS.get("pcb_rpp").head.backbone_includes_hooks


@pytest.mark.parametrize("name, options", [("pcb", {}), ("pcb_rpp", {"rpp_start_epoch": 0})])
def test_pcb_features_are_named_parts_pooled_and_parts_reduced(name, options):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, backbone="resnet18", options=options),
                        CLASSES, (96, 32))
    assert model.head.feature_names == ("parts_pooled", "parts_reduced")
    assert model.head.metric_feature == "parts_pooled"
    x = torch.randn(2, 3, 96, 32)
    out = model.train()(x)
    assert tuple(out.features) == model.head.feature_names
    assert tuple(out.train) == model.train_outputs == (PART_LOGITS,)
    assert out.features["parts_pooled"].shape == (2, 6 * 512)
    assert out.features["parts_reduced"].shape == (2, 6 * 256)
    pid = torch.tensor([0, 1])
    hits = sum(int((lg.argmax(1) == pid).sum()) for lg in out.train[PART_LOGITS])
    assert model.head.accuracy(out, pid) == hits / 6


def test_bnneck_output_and_accuracy():
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18"), CLASSES, (64, 32)).train()
    x = torch.randn(3, 3, 64, 32)
    torch.manual_seed(1)
    out = model(x)
    assert tuple(out.features) == ("before_bn", "after_bn") and tuple(out.train) == (LOGITS,)
    pid = out.train[LOGITS].argmax(1)
    assert model.head.accuracy(out, pid) == 3.0
    torch.manual_seed(1)
    from_batch = model({"img": x, "pid": pid})  # a batch dict works too
    assert torch.equal(from_batch.features["after_bn"], out.features["after_bn"])


def test_head_options_are_typed_dataclasses():
    opts = parse_head_options("pcb_rpp", PCBRPPOptions, {"rpp_start_epoch": 3,
                                                         "rpp_temperature": 2})
    assert opts == PCBRPPOptions(rpp_start_epoch=3, rpp_temperature=2.0)
    assert isinstance(opts.rpp_temperature, float) and opts.parts == 6 and opts.dropout == 0.5
    assert parse_head_options("pcb", PCBOptions, None) == PCBOptions()


@pytest.mark.parametrize("name, cls, raw, match", [
    ("pcb", PCBOptions, {"parts": 0}, r"model\.options\.parts: expected a positive integer "
                                      r"\(official: 6\), got 0"),
    ("pcb", PCBOptions, {"parts": True}, r"model\.options\.parts: expected a positive integer"),
    ("pcb", PCBOptions, {"dropout": "0.5"}, r"model\.options\.dropout: expected a probability"),
    ("pcb", PCBOptions, {"reduction_dim": 2.5}, r"model\.options\.reduction_dim: expected a "
                                                r"positive integer"),
    ("pcb_rpp", PCBRPPOptions, {"rpp_start_epoch": -1}, r"model\.options\.rpp_start_epoch: "
                                                        r"expected the 0-based epoch"),
    ("pcb_rpp", PCBRPPOptions, {"rpp_start_epoch": 1, "rpp_temperature": 0},
     r"model\.options\.rpp_temperature: expected the part softmax's temperature"),
    ("pcb_rpp", PCBRPPOptions, {"rpp_start_epoch": 1, "partz": 6},
     r"model\.options\.partz: not an option of model 'pcb_rpp'; valid options: parts, "
     r"reduction_dim, dropout, rpp_start_epoch, rpp_group_size, rpp_temperature"),
])
def test_head_option_errors_name_the_key(name, cls, raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_head_options(name, cls, raw)


def test_unknown_backbone_and_head_name_the_key():
    with pytest.raises(KeyError, match=r"model\.backbone: unknown backbone 'osnet'; valid: "
                                       r"resnet18, resnet34, resnet50, densenet121"):
        build_model(ModelConfig(backbone="osnet"), CLASSES)
    with pytest.raises(KeyError, match=r"model\.name: unknown model 'mgn'; valid: bnneck, pcb, "
                                       r"pcb_rpp"):
        build_model(ModelConfig(name="mgn"), CLASSES)


# --------------------------------------------------------------------------- checkpoints


def _legacy_pcb_rpp_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as ``PCBModel`` (before issue 11) saved it: RPP at the top level."""
    return {k.removeprefix("head.") if k.startswith(("head.rpp.", "head.rpp_active")) else k: v
            for k, v in model.state_dict().items()}


def test_old_pcb_rpp_checkpoints_load_through_the_key_remap():
    cfg = ModelConfig(name="pcb_rpp", backbone="resnet18", options={"rpp_start_epoch": 1})
    torch.manual_seed(0)
    trained = build_model(cfg, CLASSES, (96, 32))
    trained.set_epoch(3)
    old = _legacy_pcb_rpp_state(trained)
    assert "rpp_active" in old and "rpp.part_classifier.weight" in old
    for load in ("strict", "torch"):
        torch.manual_seed(1)
        fresh = build_model(cfg, CLASSES, (96, 32))
        assert not fresh.head.uses_rpp
        if load == "strict":
            load_state_strict(fresh, old, "old.pt")
        else:
            fresh.load_state_dict(old)
        assert fresh.head.uses_rpp
        for k, v in trained.state_dict().items():
            assert torch.equal(fresh.state_dict()[k], v), k
    # Only keys the model has are moved: plain PCB reports an RPP key as unexpected.
    pcb = build_model(ModelConfig(name="pcb", backbone="resnet18"), CLASSES, (96, 32))
    with pytest.raises(WeightMismatchError, match="unexpected keys .*rpp_active"):
        load_state_strict(pcb, {**pcb.state_dict(), "rpp_active": torch.tensor(True)}, "x.pt")


def test_deep_supervision_head_with_a_hidden_layer_is_an_option():
    """``deep_supervision_hidden: 0`` (default) keeps the single GAP -> FC classifier and its
    keys; N > 0 inserts FC(C, N) -> BN -> ReLU before it (CSA's "fully connected layers")."""
    def model(hidden=None):
        att = AttentionConfig(name="se", stages=["layer2", "layer3"], deep_supervision=True)
        if hidden is not None:
            att.deep_supervision_hidden = hidden
        torch.manual_seed(0)
        return build_model(ModelConfig(backbone="resnet18", attention=att), CLASSES, (64, 32))

    default, zero, two = model(), model(0), model(64)
    assert default.state_dict().keys() == zero.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(),
                                                 zero.state_dict().values()))
    layer2 = two.aux.classifiers["layer2"]
    assert [type(m) for m in layer2] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (layer2[0].in_features, layer2[0].out_features, layer2[3].in_features,
            layer2[3].out_features) == (128, 64, 64, CLASSES)
    logits = two.train()(torch.randn(4, 3, 64, 32)).train[AUX_LOGITS]
    assert [t.shape for t in logits] == [(4, CLASSES), (4, CLASSES)]
    with pytest.raises(ConfigError, match=r"deep_supervision_hidden: expected a width >= 0"):
        model(-1)


# --- model.attention.placement: residual (SE-ResNet style) --------------------------------------


def test_residual_placement_puts_one_module_in_every_block_before_the_shortcut():
    from reid_core.config import AttentionConfig, ConfigError, ModelConfig
    from reid_core.models import build_model
    from reid_core.models.backbones.base import GatedBranchEnd

    plain = build_model(ModelConfig(backbone="resnet50"), 10, (64, 32))
    cfg = ModelConfig(backbone="resnet50",
                      attention=AttentionConfig(name="se", placement="residual",
                                                options={"reduction": 16}))
    model = build_model(cfg, 10, (64, 32))
    gated = [m for m in model.backbone.modules() if isinstance(m, GatedBranchEnd)]
    assert len(gated) == 3 + 4 + 6 + 3 and not len(model.backbone.stage_hooks)
    # Each gate sits after bn3 of its block, sized for the block's output channels.
    for stage, channels in zip(("layer1", "layer2", "layer3", "layer4"), (256, 512, 1024, 2048)):
        for block in getattr(model.backbone, stage):
            assert isinstance(block.bn3, GatedBranchEnd)
            assert block.bn3.gate.fc2.out_features == channels
    # The trunk is the plain trunk; the gates are new layers (full learning rate).
    assert sum(p.numel() for p in model.backbone.trunk_parameters()) == \
        sum(p.numel() for p in plain.backbone.trunk_parameters())
    # With the plain network's weights and gates that pass everything through (sigmoid -> 1),
    # it computes the plain network: the gate multiplies the branch, before the shortcut.
    for g in gated:
        torch.nn.init.zeros_(g.gate.fc2.weight)
        torch.nn.init.constant_(g.gate.fc2.bias, 1e4)
    own = model.state_dict()
    for k, v in plain.state_dict().items():
        own[k.replace(".bn3.", ".bn3.norm.")] = v
    model.load_state_dict(own)
    model.eval(), plain.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(model(x).features["after_bn"], plain(x).features["after_bn"],
                              atol=1e-5)
    with pytest.raises(ConfigError, match="placement"):
        build_model(ModelConfig(backbone="densenet121", attention=AttentionConfig(
            name="se", placement="residual", stages=["denseblock1"])), 10, (64, 32))
