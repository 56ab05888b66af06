"""Models layer: backbones and heads from registries, composed into one :class:`ReIDModel`.

``model.backbone`` selects a backbone (:data:`BACKBONES`), ``model.attention`` inserts
attention modules after its stages (optionally deep-supervised), ``model.name`` selects the
head (:data:`HEADS`) and ``model.options`` are the head's options.
"""

from __future__ import annotations

from reid_core.config import ModelConfig
from reid_core.models.attention import insert_attention
from reid_core.models.backbones import (
    BACKBONES, PRETRAINED_SOURCES, Backbone, PretrainedSource, StageSpec, available_backbones,
    build_backbone, check_pretrained_name, pretrained_source, register_backbone,
    register_pretrained_source)
from reid_core.models.deep_supervision import (
    DeepSupervision, build_deep_supervision, supervised_stages)
from reid_core.models.heads import (
    HEADS, Head, head_feature_names, head_spec, parse_head_options, register_head)
from reid_core.models.output import AUX_LOGITS, LOGITS, PART_LOGITS, ModelOutput
from reid_core.models.reid_model import ReIDModel
from reid_core.models.weights import WeightMismatchError, load_state_strict


def build_model(cfg: ModelConfig, num_classes: int,
                input_size: tuple[int, int] = (256, 128)) -> ReIDModel:
    """Build ``model.name``'s head on ``model.backbone`` with a ``num_classes``-way identity
    classifier.

    ``input_size`` = (height, width) of the input images; attention modules are built for the
    feature-map sizes it implies. Parts are created in a fixed order -- backbone, attention
    (in ``model.attention.stages`` order), head, deep supervision -- which is the order the
    random initialisation of recorded runs was drawn in.

    Raises:
        KeyError: unknown ``model.name`` or ``model.backbone`` (lists the valid names).
        ConfigError: invalid ``model.options``, ``model.last_stride`` or
            ``model.attention`` (naming the key).
    """
    spec = head_spec(cfg.name)
    options = parse_head_options(cfg.name, spec.options, cfg.options)
    backbone = build_backbone(cfg.backbone, cfg.last_stride, cfg.pretrained)
    if cfg.attention is not None:
        insert_attention(backbone, cfg.attention, input_size, bn_weight_init=cfg.bn_weight_init)
    head = spec.build(options, backbone, num_classes, input_size)
    aux = build_deep_supervision(backbone, supervised_stages(cfg.attention), num_classes,
                                 cfg.attention.deep_supervision_hidden if cfg.attention else 0)
    return ReIDModel(backbone, head, aux)


__all__ = ["AUX_LOGITS", "BACKBONES", "Backbone", "DeepSupervision", "HEADS", "Head", "LOGITS",
           "ModelOutput", "PART_LOGITS", "PRETRAINED_SOURCES", "PretrainedSource", "ReIDModel",
           "StageSpec", "WeightMismatchError", "available_backbones", "build_backbone",
           "build_model", "check_pretrained_name", "head_feature_names", "insert_attention",
           "load_state_strict", "pretrained_source", "register_backbone", "register_head",
           "register_pretrained_source"]
