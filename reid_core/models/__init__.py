"""Models layer: backbones, heads, and the model registry selected by ``model.name``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from reid_core.config import ConfigError, ModelConfig
from reid_core.models.backbone import BACKBONES, ResNetBackbone, build_backbone, insert_attention
from reid_core.models.bnneck import BNNeckModel, ReIDOutput
from reid_core.models.deep_supervision import DeepSupervision, supervised_stages
from reid_core.models.pcb import PCBModel, build_pcb, build_pcb_rpp
from reid_core.models.weights import WeightMismatchError, load_state_strict

ModelBuilder = Callable[[ModelConfig, int, tuple[int, int]], nn.Module]


def _bnneck(cfg: ModelConfig, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    if cfg.options:
        raise ConfigError(f"model.options.{sorted(cfg.options)[0]}: model 'bnneck' takes no "
                          f"options (model.options must be empty)")
    backbone = build_backbone(cfg.backbone, cfg.last_stride, cfg.pretrained)
    if cfg.attention is not None:
        insert_attention(backbone, cfg.attention, input_size)
    return BNNeckModel(backbone, num_classes, aux_stages=supervised_stages(cfg.attention))


MODELS: dict[str, ModelBuilder] = {"bnneck": _bnneck, "pcb": build_pcb, "pcb_rpp": build_pcb_rpp}


def build_model(cfg: ModelConfig, num_classes: int,
                input_size: tuple[int, int] = (256, 128)) -> nn.Module:
    """Build the model named by ``cfg.name`` with a ``num_classes``-way identity classifier.

    ``input_size`` = (height, width) of the input images; attention modules are built for the
    feature-map sizes it implies.
    """
    if cfg.name not in MODELS:
        raise KeyError(f"model.name: unknown model {cfg.name!r}; valid: {', '.join(MODELS)}")
    return MODELS[cfg.name](cfg, num_classes, input_size)


__all__ = ["BACKBONES", "MODELS", "BNNeckModel", "DeepSupervision", "PCBModel", "ReIDOutput",
           "ResNetBackbone", "WeightMismatchError", "build_backbone", "build_model",
           "load_state_strict"]
