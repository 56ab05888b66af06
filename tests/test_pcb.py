"""PCB / PCB-RPP (official-code structure), deep supervision, their loss, and training + resume."""

from __future__ import annotations

import io
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from reid_core.config import (
    AttentionConfig, ConfigError, ModelConfig, OptimConfig, config_from_dict)
from reid_core.engine.optim import build_optimizer
from reid_core.losses import batch_hard_triplet, build_objective
from reid_core.models import AUX_LOGITS, LOGITS, PART_LOGITS, ModelOutput, build_model
from reid_core.models.heads.pcb import StripePooling, concat_parts, stripe_pooling_rule

CLASSES = 5


def pcb(name: str = "pcb", size: tuple[int, int] = (96, 32), attention=None, **options):
    if name == "pcb_rpp":
        options.setdefault("rpp_start_epoch", 0)
    cfg = ModelConfig(name=name, backbone="resnet18", options=options, attention=attention)
    return build_model(cfg, CLASSES, size)


def part_norms(feature: torch.Tensor, parts: int) -> torch.Tensor:
    """(B, P * D) -> (B, P) L2 norm of every part (features are concatenated part by part)."""
    return feature.reshape(feature.shape[0], parts, -1).norm(dim=2)


# --------------------------------------------------------------------------- shapes, pooling


@pytest.mark.parametrize("size, fmap", [((384, 128), (24, 8)), ((96, 32), (6, 2))])
def test_output_shapes_and_per_part_normalisation(size, fmap):
    torch.manual_seed(0)
    model = pcb("pcb_rpp", size, rpp_start_epoch=1)
    assert model.backbone.stage_shapes(size)["layer4"] == (512, *fmap)  # layer4 stride 1
    x = torch.randn(2, 3, *size)
    model.set_epoch(0)  # PCB stripes, training mode
    out = model.train()(x)
    pooled, reduced = out.features["parts_pooled"], out.features["parts_reduced"]
    assert out.train.get(LOGITS) is None and out.train.get(AUX_LOGITS, []) == []
    part_logits = out.train[PART_LOGITS]
    assert len(part_logits) == 6 and all(lg.shape == (2, CLASSES) for lg in part_logits)
    assert pooled.shape == (2, 6 * 512) and reduced.shape == (2, 6 * 256)
    for feat in (pooled, reduced):
        assert torch.allclose(part_norms(feat, 6), torch.ones(2, 6), atol=1e-5)
    model.set_epoch(1)  # refined parts, eval mode
    out = model.eval()(x)
    pooled, reduced = out.features["parts_pooled"], out.features["parts_reduced"]
    assert (out.train.get(PART_LOGITS) is None and out.train.get(LOGITS) is None
            and out.train.get(AUX_LOGITS, []) == [])
    assert pooled.shape == (2, 6 * 512) and reduced.shape == (2, 6 * 256)
    for feat in (pooled, reduced):
        assert torch.allclose(part_norms(feat, 6), torch.ones(2, 6), atol=1e-5)


def test_stripe_pooling_is_the_official_kernel_stride_rule():
    # Official resnet.py: sx = H // 6, kx = H - 5 * sx, avg_pool2d(kernel (kx, W), stride (sx, W)).
    assert stripe_pooling_rule(24, 6) == (4, 4)  # 384 x 128 input: six disjoint 4-row stripes
    assert stripe_pooling_rule(8, 6) == (3, 1)  # overlapping, the last ends at the bottom row
    g = torch.Generator().manual_seed(0)
    for height in (6, 7, 8, 13, 24, 25):
        fmap = torch.randn(2, 4, height, 3, generator=g)
        sx = height // 6
        kx = height - 5 * sx
        expected = torch.stack([fmap[:, :, i * sx:i * sx + kx].mean(dim=(2, 3)) for i in range(6)],
                               dim=2)
        assert torch.allclose(StripePooling(6)(fmap), expected, atol=1e-6), height
    assert StripePooling(4)(torch.randn(1, 2, 9, 2)).shape == (1, 2, 4)
    with pytest.raises(ValueError, match="5 rows cannot be cut into 6 stripes"):
        StripePooling(6)(torch.randn(1, 2, 5, 2))


def test_rpp_switches_at_rpp_start_epoch_and_remembers_it():
    torch.manual_seed(0)
    model = pcb("pcb_rpp", rpp_start_epoch=2).eval()
    x = torch.randn(2, 3, 96, 32)
    fmap = model.backbone(x)
    stripes = concat_parts(model.head.pool(fmap))
    refined = concat_parts(model.head.rpp(fmap))
    assert not torch.allclose(stripes, refined, atol=1e-3)
    for epoch, rpp_on in ((0, False), (1, False), (2, True), (7, True)):
        model.set_epoch(epoch)
        assert model.head.uses_rpp == rpp_on
        assert torch.allclose(model(x).features["parts_pooled"], refined if rpp_on else stripes,
                              atol=1e-6)
    # The mode is part of the state: a reloaded model evaluates as it was last trained.
    fresh = pcb("pcb_rpp", rpp_start_epoch=2)
    assert not fresh.head.uses_rpp
    fresh.load_state_dict(model.state_dict())
    assert fresh.head.uses_rpp
    # Plain PCB has no RPP and no extra state, and it shares PCB-RPP's initialisation of
    # everything else: before the switch, the two compute the same function.
    torch.manual_seed(0)
    plain = pcb("pcb").eval()
    plain.set_epoch(5)
    assert plain.head.rpp is None and "head.rpp_active" not in plain.state_dict()
    model.set_epoch(0)
    a, b = plain(x).features, model(x).features
    assert (torch.equal(a["parts_pooled"], b["parts_pooled"])
            and torch.equal(a["parts_reduced"], b["parts_reduced"]))


def test_rpp_part_probabilities_and_pooling_follow_the_official_code():
    torch.manual_seed(0)
    model = pcb("pcb_rpp").eval()  # eval: dropout off
    rpp = model.head.rpp
    fmap = torch.randn(2, 512, 6, 2)
    prob = rpp.part_probabilities(fmap)
    assert prob.shape == (2, 6, 6, 2)
    assert torch.allclose(prob.sum(dim=1), torch.ones(2, 6, 2), atol=1e-6)
    # Official resnet_rpp.py: avg_pool3d over groups of 8 channels, minus the spatial mean,
    # 1x1 conv (with bias), softmax over parts; part p = GAP(6 * x * prob_p).
    y = F.avg_pool3d(fmap.unsqueeze(1), kernel_size=(8, 1, 1), stride=(8, 1, 1)).squeeze(1)
    y = y - y.mean(dim=(2, 3), keepdim=True)
    official = torch.softmax(rpp.part_classifier(y), dim=1)
    assert rpp.part_classifier.in_channels == 512 // 8
    assert torch.allclose(prob, official, atol=1e-6)
    pooled = torch.stack([(6 * fmap * official[:, p:p + 1]).mean(dim=(2, 3)) for p in range(6)],
                         dim=2)
    assert torch.allclose(rpp(fmap), pooled, atol=1e-5)


def test_official_init_of_the_part_head():
    torch.manual_seed(0)
    head = pcb("pcb").head
    assert head.reduce.bias is None and head.reduce.weight.shape == (256, 512, 1, 1)
    # kaiming fan_out: std = sqrt(2 / (256 * 1 * 1))
    assert head.reduce.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)
    assert len(head.classifiers) == 6
    for fc in head.classifiers:
        assert fc.weight.std().item() == pytest.approx(0.001, rel=0.1)
        assert torch.equal(fc.bias, torch.zeros(CLASSES))
    assert head.drop.p == 0.5


# --------------------------------------------------------------------------- deep supervision


SE_DS = AttentionConfig(name="se", stages=["layer3", "layer2"], deep_supervision=True)


@pytest.mark.parametrize("name", ["bnneck", "pcb"])
def test_deep_supervision_reads_the_attention_stage_outputs(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, backbone="resnet18", attention=SE_DS),
                        CLASSES, (96, 32)).train()
    assert model.aux.stages == ("layer2", "layer3")  # shallowest first
    x = torch.randn(4, 3, 96, 32)
    torch.manual_seed(1)  # same dropout masks in both passes
    out = model(x)
    aux_logits = out.train[AUX_LOGITS]
    assert [lg.shape for lg in aux_logits] == [(4, CLASSES), (4, CLASSES)]
    torch.manual_seed(1)
    stages = model.backbone.forward_stages(x)  # outputs after the SE modules
    for lg, stage in zip(aux_logits, ("layer2", "layer3")):
        fc = model.aux.classifiers[stage]
        assert torch.allclose(lg, fc(stages[stage].mean(dim=(2, 3))), atol=1e-6)
    # The auxiliary loss trains the attention modules and the classifiers.
    sum(F.cross_entropy(lg, torch.arange(4) % CLASSES) for lg in aux_logits).backward()
    assert model.backbone.stage_hooks["layer2"].fc1.weight.grad.abs().sum() > 0
    assert model.aux.classifiers["layer3"].weight.grad.abs().sum() > 0
    model.eval()
    assert model(x).train.get(AUX_LOGITS, []) == []


def test_deep_supervision_off_leaves_the_bnneck_model_as_it_was():
    cfg = ModelConfig(backbone="resnet18", attention=AttentionConfig(name="se", stages=["layer2"]))
    torch.manual_seed(0)
    model = build_model(cfg, CLASSES, (64, 32))
    assert model.aux is None and not any(k.startswith("aux") for k in model.state_dict())
    cfg.attention.deep_supervision = True
    torch.manual_seed(0)
    with_ds = build_model(cfg, CLASSES, (64, 32))
    assert set(with_ds.state_dict()) - set(model.state_dict()) == {
        "aux.classifiers.layer2.weight", "aux.classifiers.layer2.bias"}
    x = torch.randn(2, 3, 64, 32)
    model.train(), with_ds.train()
    a, b = model(x), with_ds(x)
    assert (torch.equal(a.features["before_bn"], b.features["before_bn"])
            and torch.equal(a.train[LOGITS], b.train[LOGITS]))
    assert a.train.get(AUX_LOGITS, []) == [] and len(b.train[AUX_LOGITS]) == 1


@pytest.mark.parametrize("name", ["bnneck", "pcb_rpp"])
def test_backbone_parameters_exclude_new_layers(name):
    att = AttentionConfig(name="se", stages=["layer1", "layer2", "layer3"], deep_supervision=True)
    model = pcb("pcb_rpp", attention=att) if name == "pcb_rpp" else build_model(
        ModelConfig(backbone="resnet18", attention=att), CLASSES, (96, 32))
    backbone_ids = {id(p) for p in model.backbone_parameters()}
    aux_ids = {id(p) for p in model.aux.parameters()}
    assert aux_ids and not aux_ids & backbone_ids
    hook_ids = {id(p) for p in model.backbone.stage_hooks.parameters()}
    trunk_ids = {id(p) for n, p in model.backbone.named_parameters()
                 if not n.startswith("stage_hooks.")}
    if name == "bnneck":  # kept as before: the BNNeck model counts its attention as backbone
        assert backbone_ids == trunk_ids | hook_ids
        return
    assert backbone_ids == trunk_ids and not hook_ids & backbone_ids
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.1, backbone_lr_mult=0.1))
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert {round(lr_of[i], 9) for i in trunk_ids} == {0.01}
    new = hook_ids | aux_ids | {id(p) for p in (*model.head.parameters(),
                                                 *model.head.rpp.parameters())}
    assert {round(lr_of[i], 9) for i in new} == {0.1}


# --------------------------------------------------------------------------- loss


def ce_by_hand(logits: torch.Tensor, pids: torch.Tensor, eps: float) -> float:
    """Label-smoothed CE: -(1 - eps) log p_y - eps / K sum_k log p_k, averaged over the batch."""
    logp = logits.log_softmax(dim=1)
    k = logits.shape[1]
    per = [-(1 - eps) * logp[i, pids[i]] - eps / k * logp[i].sum() for i in range(len(pids))]
    return float(sum(per) / len(per))


def objective_of(head, loss: dict, deep_supervision: bool = True):
    """The objective a format-1 ``loss`` section migrates to, for a ``head`` model that
    produces the training outputs of that head (+ deep supervision)."""
    from types import SimpleNamespace

    from reid_core.models import HEADS

    model = {"name": head}
    if deep_supervision:
        model["attention"] = {"name": "se", "deep_supervision": True}
    cfg = config_from_dict({"name": "t", "model": model, "loss": loss})
    head_cls = HEADS.get(head).head
    outputs = head_cls.train_outputs + ((AUX_LOGITS,) if deep_supervision else ())
    return build_objective(cfg.loss, SimpleNamespace(train_outputs=outputs, head=head_cls))


def test_pcb_loss_is_the_sum_of_part_ces_plus_weighted_aux():
    g = torch.Generator().manual_seed(0)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    parts = [torch.randn(8, 7, generator=g) for _ in range(6)]
    aux = [torch.randn(8, 7, generator=g) for _ in range(3)]
    feat = torch.randn(8, 12, generator=g)
    out = ModelOutput({"parts_pooled": feat, "parts_reduced": feat},
                      {PART_LOGITS: parts, AUX_LOGITS: aux})
    batch = {"pid": pids}
    # Format-1 names: "ce" is the part_ce term for PCB, "aux" the deep_supervision term.
    cfg = {"label_smoothing": 0.1, "triplet_weight": 0.0, "deep_supervision_weight": 0.5}
    total, logged = objective_of("pcb", cfg)(out, batch)
    ce = sum(ce_by_hand(lg, pids, 0.1) for lg in parts)
    aux_ce = sum(ce_by_hand(lg, pids, 0.1) for lg in aux)
    assert set(logged) == {"part_ce", "deep_supervision"}
    assert logged["part_ce"] == pytest.approx(ce, rel=1e-5)
    assert logged["deep_supervision"] == pytest.approx(aux_ce, rel=1e-5)
    assert total.item() == pytest.approx(ce + 0.5 * aux_ce, rel=1e-5)
    # Triplet only when weighted, on the metric feature (PCB: parts_pooled, the old before_bn).
    with_tri = {"label_smoothing": 0.1, "triplet_weight": 2.0, "triplet_margin": 0.3,
                "deep_supervision_weight": 0.5}
    total, logged = objective_of("pcb", with_tri)(out, batch)
    tri = batch_hard_triplet(feat, pids, 0.3).item()
    assert logged["triplet"] == pytest.approx(tri, rel=1e-6)
    assert total.item() == pytest.approx(ce + 2.0 * tri + 0.5 * aux_ce, rel=1e-5)
    # lambda = 0 switches deep supervision off.
    _, logged = objective_of("pcb", {"triplet_weight": 0.0, "deep_supervision_weight": 0.0})(
        out, batch)
    assert "deep_supervision" not in logged


def test_bnneck_loss_is_unchanged_by_the_new_fields():
    g = torch.Generator().manual_seed(0)
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    logits, feat = torch.randn(6, 4, generator=g), torch.randn(6, 5, generator=g)
    out = ModelOutput({"before_bn": feat, "after_bn": feat}, {LOGITS: logits})
    total, logged = objective_of("bnneck", {}, deep_supervision=False)(out, {"pid": pids})
    ce = F.cross_entropy(logits, pids, label_smoothing=0.1)
    tri = batch_hard_triplet(feat, pids, 0.3)
    assert torch.equal(total, 1.0 * ce + 1.0 * tri) and set(logged) == {"ce", "triplet"}


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("name, options, size, match", [
    ("pcb", {"stripes": 4}, (96, 32),
     r"model\.options\.stripes: not an option of model 'pcb'; valid options: parts, "
     r"reduction_dim, dropout"),
    ("pcb", {"rpp_start_epoch": 3}, (96, 32), r"model\.options\.rpp_start_epoch: not an option"),
    ("pcb_rpp", {}, (96, 32), r"model\.options\.rpp_start_epoch: required for model 'pcb_rpp'"),
    ("pcb", {"dropout": 1.5}, (96, 32), r"model\.options\.dropout: expected a probability"),
    ("pcb", {"parts": "6"}, (96, 32), r"model\.options\.parts: expected a positive integer"),
    ("pcb_rpp", {"rpp_start_epoch": 0, "rpp_group_size": 7}, (96, 32),
     r"model\.options\.rpp_group_size: must divide the 512 channels"),
    ("pcb", {}, (64, 32), r"model\.options\.parts: 6 stripes .* data\.height 64 gives 4"),
    ("bnneck", {"parts": 6}, (64, 32), r"model\.options\.parts: model 'bnneck' takes no options"),
])
def test_invalid_model_options_name_the_key(name, options, size, match):
    with pytest.raises(ConfigError, match=match):
        build_model(ModelConfig(name=name, backbone="resnet18", options=options), 3, size)


def test_pcb_needs_last_stride_1():
    with pytest.raises(ConfigError, match=r"model\.last_stride: PCB sets layer4's stride to 1"):
        build_model(ModelConfig(name="pcb", backbone="resnet18", last_stride=2), 3, (96, 32))


# --------------------------------------------------------------------------- training


TINY_RPP = {
    "name": "tiny-pcb-rpp",
    "seed": 5,
    "data": {"dataset": "synthetic-tiny", "height": 96, "width": 32, "batch_size": 8,
             "num_instances": 4, "augment": "pcb", "erasing_p": 0.0},
    "model": {"name": "pcb_rpp", "backbone": "resnet18",
              "options": {"rpp_start_epoch": 1, "reduction_dim": 32},
              "attention": {"name": "se", "stages": ["layer2", "layer3"],
                            "deep_supervision": True}},
    "loss": {"label_smoothing": 0.0, "triplet_weight": 0.0},
    "optim": {"name": "sgd", "lr": 0.05, "weight_decay": 1e-4, "weight_decay_bias": 1e-4,
              "backbone_lr_mult": 0.1, "epochs": 2, "warmup_epochs": 0, "milestones": [1]},
}


def test_tiny_pcb_rpp_trains_through_fit_and_resumes_exactly(tmp_path, synthetic_cache,
                                                             monkeypatch):
    import reid_core.engine.checkpoint as checkpoint
    from reid_core.app.training import train as fit
    from reid_core.data import build_dataset
    from reid_core.engine.checkpoint import read_checkpoint
    from reid_core.utils.device import resolve_device
    from reid_core.utils.seed import seed_everything

    cfg = config_from_dict(json.loads(json.dumps(TINY_RPP)))
    data = build_dataset("synthetic-tiny", synthetic_cache)
    train = [item for item in data.train if item[1] < 4]  # 4 identities: a few batches/epoch
    device = resolve_device("cpu")

    def new_model(seed: int):
        seed_everything(seed)
        return build_model(cfg.model, data.num_train_pids, (cfg.data.height, cfg.data.width))

    # The uninterrupted run; keep a copy of its checkpoint after epoch 1 to resume from.
    original_write = checkpoint.write_checkpoint

    def write_and_keep_epoch_1(path, state):
        original_write(path, state)
        if state["epoch"] == 1:
            shutil.copy(path, tmp_path / "after_epoch_1.pt")

    monkeypatch.setattr(checkpoint, "write_checkpoint", write_and_keep_epoch_1)
    log = io.StringIO()
    full = new_model(cfg.seed)
    init_rpp = full.head.rpp.part_classifier.weight.detach().clone()
    history = fit(full, train, cfg, device, tmp_path / "full.pt",
                  console=Console(file=log, width=200))
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        # Logged under the terms' names (format 1 logged part_ce as "ce", deep_supervision as "aux").
        assert (h["part_ce"] > 0 and h["deep_supervision"] > 0 and "triplet" not in h
                and 0 <= h["train_acc"] <= 1)
    assert " deep_supervision " in log.getvalue()
    assert full.head.uses_rpp  # epoch index 1 >= rpp_start_epoch
    assert not torch.equal(full.head.rpp.part_classifier.weight, init_rpp)  # trained in epoch 2

    ckpt = read_checkpoint(tmp_path / "after_epoch_1.pt")
    assert ckpt["epoch"] == 1 and not ckpt["model"]["head.rpp_active"]
    # The PCB epoch gave the unused part classifier no gradient, hence no decay either.
    assert torch.equal(ckpt["model"]["head.rpp.part_classifier.weight"], init_rpp)

    monkeypatch.setattr(checkpoint, "write_checkpoint", original_write)
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed = new_model(99)  # another init: the checkpoint must overwrite it
    history_b = fit(resumed, train, cfg, device, tmp_path / "after_epoch_1.pt",
                    resume=True, console=Console(file=io.StringIO()))
    strip = lambda hist: [{k: v for k, v in h.items() if k not in ("time_s", "images_per_s")}
                          for h in hist]
    assert strip(history_b) == strip(history)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_rpp_switch_after_the_last_epoch_is_a_config_error():
    from reid_core.config import ConfigError, config_from_dict

    raw = {"name": "x", "model": {"name": "pcb_rpp", "options": {"rpp_start_epoch": 5}},
           "optim": {"epochs": 5}}
    with pytest.raises(ConfigError, match="rpp_start_epoch \\(5\\) must be below optim.epochs"):
        config_from_dict(raw)
    raw["optim"]["epochs"] = 6
    assert config_from_dict(raw).model.options["rpp_start_epoch"] == 5
