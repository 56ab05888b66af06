"""Models layer: backbones, heads, and the model registry selected by ``model.name``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from reid_core.config import ModelConfig
from reid_core.models.backbone import BACKBONES, ResNetBackbone, build_backbone, insert_attention
from reid_core.models.bnneck import BNNeckModel, ReIDOutput
from reid_core.models.weights import WeightMismatchError, load_state_strict

ModelBuilder = Callable[[ModelConfig, int, tuple[int, int]], nn.Module]


def _bnneck(cfg: ModelConfig, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    backbone = build_backbone(cfg.backbone, cfg.last_stride, cfg.pretrained)
    if cfg.attention is not None:
        insert_attention(backbone, cfg.attention, input_size)
    return BNNeckModel(backbone, num_classes)


MODELS: dict[str, ModelBuilder] = {"bnneck": _bnneck}


def build_model(cfg: ModelConfig, num_classes: int,
                input_size: tuple[int, int] = (256, 128)) -> nn.Module:
    """Build the model named by ``cfg.name`` with a ``num_classes``-way identity classifier.

    ``input_size`` = (height, width) of the input images; attention modules are built for the
    feature-map sizes it implies.
    """
    if cfg.name not in MODELS:
        raise KeyError(f"model.name: unknown model {cfg.name!r}; valid: {', '.join(MODELS)}")
    return MODELS[cfg.name](cfg, num_classes, input_size)


__all__ = ["BACKBONES", "MODELS", "BNNeckModel", "ReIDOutput", "ResNetBackbone",
           "WeightMismatchError", "build_backbone", "build_model", "load_state_strict"]
