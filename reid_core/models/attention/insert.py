"""Attention modules after backbone stages (``model.attention``), on any registered backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from reid_core.config import AttentionConfig, ConfigError
from reid_core.models.attention.base import build_attention
from reid_core.models.backbones.base import GatedBranchEnd

if TYPE_CHECKING:
    from reid_core.models.backbones.base import Backbone


def uniform_bn_weights(module: nn.Module) -> None:
    """PyTorch <= 1.1's BatchNorm init: every BN weight drawn from U(0, 1) (in ``modules()``
    order), the bias left at 0. (Its conv and linear defaults were already today's
    distributions: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).)"""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
            nn.init.uniform_(m.weight, 0.0, 1.0)


def insert_attention(backbone: Backbone, cfg: AttentionConfig,
                     input_size: tuple[int, int], *, bn_weight_init: str = "ones") -> None:
    """Put one ``cfg.name`` module after each stage in ``cfg.stages`` (by the backbone's stage
    names; RGA: all four ResNet stages), each built for that stage's output size at
    ``input_size`` = (height, width); with ``cfg.placement == "residual"``, one inside every
    residual block of those stages instead (:class:`GatedBranchEnd`).

    The modules are built in the order ``cfg.stages`` lists them (the random-number order of
    recorded runs). ``bn_weight_init="uniform"`` redraws each module's BN weights from U(0, 1)
    right after it is built (``model.bn_weight_init``; ``"ones"`` draws nothing).

    Raises:
        ConfigError: a stage the backbone does not have, or one listed twice (naming
            ``model.attention.stages``), or an option the module does not take (naming
            ``model.attention.options``).
    """
    for i, stage in enumerate(cfg.stages):
        backbone.stage(stage, where="model.attention.stages")
        if stage in cfg.stages[:i]:
            raise ConfigError(f"model.attention.stages: stage {stage!r} is listed twice "
                              f"(one module per stage)")
    if bn_weight_init not in ("ones", "uniform"):
        raise ValueError(f"bn_weight_init must be 'ones' or 'uniform', got {bn_weight_init!r}")
    shapes = backbone.stage_shapes(input_size)
    for stage in cfg.stages:
        c, h, w = shapes[stage]
        if cfg.placement == "stage":
            backbone.stage_hooks[stage] = _build(cfg, c, h, w, bn_weight_init)
            continue
        # Inside every block: each residual branch ends at the stage's output size.
        for block, attr in backbone.residual_branch_ends(stage):
            gate = _build(cfg, c, h, w, bn_weight_init)
            setattr(block, attr, GatedBranchEnd(getattr(block, attr), gate))


def _build(cfg: AttentionConfig, c: int, h: int, w: int, bn_weight_init: str) -> nn.Module:
    try:
        module = build_attention(cfg.name, c, h, w, **cfg.options)
    except TypeError as e:  # an option the builder does not take: a config mistake
        raise ConfigError(f"model.attention.options for {cfg.name!r}: {e}") from None
    if bn_weight_init == "uniform":
        uniform_bn_weights(module)
    return module
