"""Models layer: backbones, heads, and the model registry selected by ``model.name``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from reid_core.config import ModelConfig
from reid_core.models.backbone import BACKBONES, ResNetBackbone, build_backbone
from reid_core.models.bnneck import BNNeckModel, ReIDOutput
from reid_core.models.weights import WeightMismatchError, load_state_strict

ModelBuilder = Callable[[ModelConfig, int], nn.Module]


def _bnneck(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return BNNeckModel(build_backbone(cfg.backbone, cfg.last_stride, cfg.pretrained), num_classes)


MODELS: dict[str, ModelBuilder] = {"bnneck": _bnneck}


def build_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """Build the model named by ``cfg.name`` with a ``num_classes``-way identity classifier."""
    if cfg.name not in MODELS:
        raise KeyError(f"model.name: unknown model {cfg.name!r}; valid: {', '.join(MODELS)}")
    return MODELS[cfg.name](cfg, num_classes)


__all__ = ["BACKBONES", "MODELS", "BNNeckModel", "ReIDOutput", "ResNetBackbone",
           "WeightMismatchError", "build_backbone", "build_model", "load_state_strict"]
