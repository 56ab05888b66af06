"""Attention modules after backbone stages (``model.attention``), on any registered backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reid_core.config import AttentionConfig, ConfigError
from reid_core.models.attention.base import build_attention

if TYPE_CHECKING:
    from reid_core.models.backbones.base import Backbone


def insert_attention(backbone: Backbone, cfg: AttentionConfig,
                     input_size: tuple[int, int]) -> None:
    """Put one ``cfg.name`` module after each stage in ``cfg.stages`` (by the backbone's stage
    names; RGA: all four ResNet stages), each built for that stage's output size at
    ``input_size`` = (height, width).

    The modules are built in the order ``cfg.stages`` lists them (the random-number order of
    recorded runs).

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
    shapes = backbone.stage_shapes(input_size)
    for stage in cfg.stages:
        c, h, w = shapes[stage]
        try:
            backbone.stage_hooks[stage] = build_attention(cfg.name, c, h, w, **cfg.options)
        except TypeError as e:  # an option the builder does not take: a config mistake
            raise ConfigError(f"model.attention.options for {cfg.name!r}: {e}") from None
