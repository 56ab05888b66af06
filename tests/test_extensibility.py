"""A new paper is new files: a toy backbone, head and loss term defined here, registered through
the public API, train through ``run_experiment`` without any change to the core.

Also: every registered head declares feature names that configs can select, and every loss
term's options are a dataclass the config checker validates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reid_core.app.experiment import run_experiment
from reid_core.config import ConfigError, config_from_dict
from reid_core.config.names import (
    declared_features, register_test_feature, unregister_test_feature)
from reid_core.data.batch import PID
from reid_core.losses import LOSS_TERMS, register_term
from reid_core.models import (
    BACKBONES, HEADS, LOGITS, Backbone, Head, ModelOutput, StageSpec, register_backbone,
    register_head)


# --- a toy backbone: two conv stages --------------------------------------------------------

class ToyBackbone(Backbone):
    def __init__(self, last_stride: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.s1 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.s2 = nn.Conv2d(16, 32, 3, stride=last_stride, padding=1)
        self._init_stages("toy_convnet", [StageSpec("s1", 16, 4), StageSpec("s2", 32, 4 * last_stride)],
                          last_stride)

    def forward_stem(self, x):
        return F.relu(self.stem(x))

    def forward_stage(self, name, x):
        return F.relu(getattr(self, name)(x))


def toy_convnet(last_stride: int = 1, pretrained: str | None = None) -> ToyBackbone:
    assert pretrained is None
    return ToyBackbone(last_stride)


# --- a toy head: GAP -> embedding -> classifier ---------------------------------------------

EMBEDDING = "toy_embedding"


@dataclasses.dataclass
class ToyHeadOptions:
    dim: int = 12

    def __post_init__(self):
        if self.dim < 1:
            raise ConfigError(f"dim: must be >= 1, got {self.dim}")


class ToyHead(Head):
    feature_names = (EMBEDDING,)
    metric_feature = EMBEDDING
    train_outputs = (LOGITS,)

    def __init__(self, channels: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Linear(channels, dim)
        self.classifier = nn.Linear(dim, num_classes)

    @classmethod
    def build(cls, options, backbone, num_classes, input_size):
        return cls(backbone.out_channels, options.dim, num_classes)

    def forward(self, stages: Mapping[str, torch.Tensor]) -> ModelOutput:
        emb = self.embed(next(reversed(stages.values())).mean(dim=(2, 3)))
        out = ModelOutput({EMBEDDING: emb})
        if self.training:
            out.train[LOGITS] = self.classifier(emb)
        return out

    def accuracy(self, out, pid):
        return float((out.train[LOGITS].argmax(1) == pid).sum())


# --- a toy loss term: the embedding's mean squared norm ------------------------------------

@dataclasses.dataclass
class NormOptions:
    target: float = 1.0


def toy_norm(options: NormOptions, model: nn.Module):
    def term(outputs: ModelOutput, batch) -> torch.Tensor:
        norms = outputs.features[EMBEDDING].norm(dim=1)
        assert len(batch[PID]) == len(norms)  # terms see the batch dict
        return ((norms - options.target) ** 2).mean()
    return term


@pytest.fixture(autouse=True, scope="module")
def toy_plugins():
    """Register the toy parts as a plug-in would (the public decorators), for this module only:
    other tests see the suite's registries as they are."""
    register_backbone("toy_convnet")(toy_convnet)
    register_test_feature(EMBEDDING, "the toy head's embedding (test only)")
    register_head("toy_head", ToyHeadOptions)(ToyHead)
    register_term("toy_norm", NormOptions)(toy_norm)
    yield
    BACKBONES.unregister("toy_convnet")
    HEADS.unregister("toy_head")
    LOSS_TERMS.unregister("toy_norm")
    unregister_test_feature(EMBEDDING)


TOY = {
    "name": "toy",
    "data": {"dataset": "synthetic-tiny", "height": 32, "width": 16, "batch_size": 16,
             "num_instances": 4, "augment": "none", "erasing_p": 0.0},
    "model": {"name": "toy_head", "backbone": "toy_convnet", "options": {"dim": 6},
              "attention": {"name": "se", "stages": ["s1"], "deep_supervision": True}},
    "loss": {"terms": [{"name": "ce", "weight": 1.0},
                       {"name": "toy_norm", "weight": 0.1, "options": {"target": 2.0}},
                       {"name": "deep_supervision", "weight": 0.5}]},
    "optim": {"epochs": 1, "warmup_epochs": 0, "milestones": [1]},
    "eval": {"features": ["toy_embedding"], "ranks": [1]},
}


def test_toy_backbone_head_and_loss_train_through_the_public_api(tmp_path, synthetic_cache):
    rec = run_experiment(config_from_dict(TOY), data_root=synthetic_cache, out=tmp_path,
                         device="cpu")
    (epoch,) = rec["history"]
    assert {"ce", "toy_norm", "deep_supervision"} <= set(epoch)
    assert all(torch.isfinite(torch.tensor(epoch[k])) for k in ("ce", "toy_norm", "loss"))
    assert set(rec["final"]) == {"toy_embedding"} and 0 <= rec["final"]["toy_embedding"]["R1"] <= 100


@pytest.mark.parametrize("change, pattern", [
    ({"model": {**TOY["model"], "options": {"dim": 0}}}, r"model\.options\.dim: must be >= 1"),
    ({"model": {**TOY["model"], "options": {"dims": 3}}}, r"model\.options\.dims: not an option"),
    ({"loss": {"terms": [{"name": "toy_norm", "options": {"targett": 1}}]}},
     r"loss\.terms\[0\]\.options: unknown key\(s\) 'targett'"),
    ({"loss": {"terms": [{"name": "part_ce"}]}},
     r"loss\.terms\[0\]: term 'part_ce' reads the model's part_logits"),
    ({"model": {**TOY["model"], "attention": {"name": "se", "stages": ["layer1"]}}},
     r"model\.attention\.stages: 'layer1' is not a stage of backbone 'toy_convnet'; "
     r"valid stages: s1, s2"),
    ({"eval": {"features": ["after_bn"]}}, r"eval\.features"),
])
def test_toy_config_mistakes_are_caught_before_data_is_read(tmp_path, change, pattern):
    cfg = config_from_dict({**TOY, **change})
    with pytest.raises((ConfigError, KeyError), match=pattern):
        # No dataset root: a mistake must surface before any data is looked at.
        run_experiment(cfg, data_root=tmp_path / "no-such-dataset", out=tmp_path, device="cpu")


def test_every_registered_head_declares_selectable_features():
    for name in HEADS.names():
        head = HEADS.get(name).head
        assert set(head.feature_names) <= set(declared_features()), name
        assert head.metric_feature in head.feature_names, name


def test_every_loss_term_has_option_dataclass_defaults():
    for name in LOSS_TERMS.names():
        spec = LOSS_TERMS.get(name)
        assert dataclasses.is_dataclass(spec.options), name
        spec.options()  # every option has a default


def test_training_batches_carry_the_configured_annotations_and_views(synthetic_cache):
    from reid_core.app.experiment import load_data
    from reid_core.app.training import training_dataset
    from reid_core.data.batch import IMG, KEYPOINTS, MASK, VIEWS
    from reid_core.engine.loader import EpochLoader

    raw = {**TOY, "data": {**TOY["data"], "annotations": ["mask", "keypoints"],
                           "views": {"low": [16, 8]}}}
    cfg = config_from_dict(raw)
    data = load_data(cfg, synthetic_cache)
    dataset = training_dataset(data.train, cfg, data.root)
    loader = EpochLoader(dataset, data.train, batch_size=16, num_instances=4, seed=0)
    batch = next(iter(loader(0)))
    assert batch[IMG].shape == (16, 3, 32, 16)
    assert batch[MASK].shape == (16, 1, 32, 16) and set(batch[MASK].unique().tolist()) <= {0, 1}
    assert batch[KEYPOINTS].shape == (16, 17, 3)
    assert batch[VIEWS]["low"].shape == (16, 3, 16, 8)
    # The same config without them has the same identity as before they existed.
    assert config_from_dict(TOY).config_hash() == config_from_dict(
        {**TOY, "data": {**TOY["data"], "annotations": [], "views": {}}}).config_hash()


def test_bad_views_and_annotations_name_the_key():
    with pytest.raises(ConfigError, match=r"data\.views\.low: must be \[height, width\]"):
        config_from_dict({**TOY, "data": {**TOY["data"], "views": {"low": [16]}}})
    with pytest.raises(ConfigError, match=r"data\.annotations\[0\]: 'masks' is not one of"):
        config_from_dict({**TOY, "data": {**TOY["data"], "annotations": ["masks"]}})


def test_annotation_names_are_the_sidecar_keys():
    import typing

    from reid_core.config import DataConfig
    from reid_core.data.sidecars import SIDECAR_KEYS

    (literal,) = typing.get_args(typing.get_type_hints(DataConfig)["annotations"])
    assert typing.get_args(literal) == SIDECAR_KEYS
