"""Sampler, losses, schedule, model shapes, strict weight loading."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from reid_core.config import ModelConfig, OptimConfig
from reid_core.data.sampler import RandomIdentitySampler
from reid_core.engine.optim import WarmupMultiStep, build_optimizer
from reid_core.losses import batch_hard_triplet
from reid_core.models import LOGITS, WeightMismatchError, build_model, load_state_strict
from reid_core.models.weights import read_state_file


def items(counts: dict[int, int]):
    return [(f"/x/{pid}_{i}.jpg", pid, i % 2) for pid, n in counts.items() for i in range(n)]


def test_pk_sampler_batches_hold_p_ids_times_k():
    data = items({0: 9, 1: 4, 2: 2, 3: 7, 4: 5, 5: 12})
    s = RandomIdentitySampler(data, batch_size=8, num_instances=4,
                              generator=torch.Generator().manual_seed(0))
    idx = list(s)
    assert len(idx) == len(s) and len(idx) % 8 == 0 and len(idx) > 0
    for b in range(0, len(idx), 8):
        pids = Counter(data[i][1] for i in idx[b:b + 8])
        assert len(pids) == 2 and set(pids.values()) == {4}
    # pid 2 has only 2 images: sampled with replacement up to K
    assert all(data[i][1] != 2 or i in (len(data) - 2,) or True for i in idx)


def test_pk_sampler_is_deterministic_per_generator():
    data = items({p: 6 for p in range(10)})
    a = list(RandomIdentitySampler(data, 16, 4, torch.Generator().manual_seed(1)))
    b = list(RandomIdentitySampler(data, 16, 4, torch.Generator().manual_seed(1)))
    c = list(RandomIdentitySampler(data, 16, 4, torch.Generator().manual_seed(2)))
    assert a == b and a != c


def test_pk_sampler_too_few_ids():
    with pytest.raises(ValueError, match="at least P=4 identities"):
        RandomIdentitySampler(items({0: 4, 1: 4}), 16, 4)


def test_batch_hard_triplet_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g)
    pids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    d = torch.cdist(x, x)
    expected_hard, expected_soft = [], []
    for a in range(12):
        pos = max(d[a, j] for j in range(12) if pids[j] == pids[a] and j != a)
        neg = min(d[a, j] for j in range(12) if pids[j] != pids[a])
        expected_hard.append(max(0.0, float(pos - neg + 0.3)))
        expected_soft.append(float(torch.nn.functional.softplus(pos - neg)))
    assert batch_hard_triplet(x, pids, 0.3).item() == pytest.approx(sum(expected_hard) / 12, rel=1e-5)
    assert batch_hard_triplet(x, pids, None).item() == pytest.approx(sum(expected_soft) / 12, rel=1e-5)


def test_warmup_multistep_matches_bot_schedule():
    rule = WarmupMultiStep(10, 0.01, [40, 70], 0.1)
    assert rule(0) == pytest.approx(0.01)
    assert rule(5) == pytest.approx(0.01 * 0.5 + 0.5)
    assert rule(10) == pytest.approx(1.0) and rule(39) == pytest.approx(1.0)
    assert rule(40) == pytest.approx(0.1) and rule(70) == pytest.approx(0.01)


def test_optimizer_groups_skip_frozen_bnneck_bias():
    model = build_model(ModelConfig(backbone="resnet18"), num_classes=5)
    opt = build_optimizer(model, OptimConfig(lr=1.0, bias_lr_factor=2.0, backbone_lr_mult=0.1,
                                             weight_decay=5e-4, weight_decay_bias=0.0))
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["backbone/weight"]["lr"] == pytest.approx(0.1)
    assert by_name["backbone/bias"]["lr"] == pytest.approx(0.2)
    assert by_name["new/weight"]["lr"] == pytest.approx(1.0)
    assert by_name["backbone/bias"]["weight_decay"] == 0.0
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.head.bn.bias) not in params


@pytest.mark.parametrize("backbone, channels", [("resnet18", 512), ("resnet50", 2048)])
@pytest.mark.parametrize("last_stride, fmap", [(1, (8, 4)), (2, (4, 2))])
def test_model_shapes(backbone, channels, last_stride, fmap):
    model = build_model(ModelConfig(backbone=backbone, last_stride=last_stride), num_classes=7)
    x = torch.randn(2, 3, 128, 64)
    assert model.backbone(x).shape == (2, channels, *fmap)
    model.train()
    out = model(x)
    assert out.features["before_bn"].shape == out.features["after_bn"].shape == (2, channels)
    assert out.train[LOGITS].shape == (2, 7)
    model.eval()
    assert model(x).train.get(LOGITS) is None


def test_bnneck_bias_frozen_and_classifier_bias_free():
    model = build_model(ModelConfig(backbone="resnet18"), num_classes=3)
    assert not model.head.bn.bias.requires_grad and model.head.classifier.bias is None


def test_strict_load_lists_missing_unexpected_and_shape(tmp_path):
    model = build_model(ModelConfig(backbone="resnet18"), num_classes=3)
    state = model.state_dict()
    state.pop("head.bn.weight")
    state["extra.weight"] = torch.zeros(1)
    state["head.classifier.weight"] = torch.zeros(9, 512)
    with pytest.raises(WeightMismatchError) as e:
        load_state_strict(model, state, "bad.pt")
    msg = str(e.value)
    assert "bad.pt" in msg and "missing keys (1): head.bn.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "head.classifier.weight: checkpoint (9, 512) vs model (3, 512)" in msg


def test_local_imagenet_file_loads_strictly(tmp_path):
    from torchvision.models import resnet18

    from reid_core.models import build_backbone

    ref = resnet18()
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    bb = build_backbone("resnet18", pretrained=str(path))
    assert torch.equal(bb.conv1.weight, ref.conv1.weight)
    torch.save({k: v for k, v in ref.state_dict().items() if not k.startswith("layer4.1")}, path)
    with pytest.raises(WeightMismatchError, match="missing keys"):
        build_backbone("resnet18", pretrained=str(path))
    assert read_state_file(path)  # weights_only read works on plain state dicts


def test_unknown_backbone_and_model_names():
    with pytest.raises(KeyError, match="valid: resnet18, resnet34, resnet50"):
        build_model(ModelConfig(backbone="vgg"), 3)
    with pytest.raises(KeyError, match="valid: bnneck, pcb, pcb_rpp"):
        build_model(ModelConfig(name="osnet"), 3)


def test_imagenet_weights_unavailable_is_a_clear_error(monkeypatch):
    from torchvision.models import ResNet18_Weights

    from reid_core.models import build_backbone

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(FileNotFoundError, match="local file path"):
        build_backbone("resnet18", pretrained="imagenet")


def test_unknown_attention_option_is_a_config_error():
    from reid_core.config import AttentionConfig, ConfigError

    cfg = ModelConfig(backbone="resnet18", attention=AttentionConfig(name="se", options={"ratio": 8}))
    with pytest.raises(ConfigError, match=r"model\.attention\.options for 'se'.*ratio"):
        build_model(cfg, 3, (64, 32))
