"""Backbones: trunks with named stages, selected by ``model.backbone`` from a registry.

Importing this package registers every family. A new family is one module here that
subclasses :class:`~reid_core.models.backbones.base.Backbone` and registers its builders with
:func:`~reid_core.models.backbones.base.register_backbone`, plus its import below.
"""

from reid_core.models.backbones.base import (
    BACKBONES,
    Backbone,
    BackboneBuilder,
    StageSpec,
    available_backbones,
    build_backbone,
    register_backbone,
)

from reid_core.models.backbones.pretrained import (  # noqa: E402
    PRETRAINED_SOURCES,
    PretrainedSource,
    check_pretrained_name,
    pretrained_source,
    register_pretrained_source,
)

# Importing the family modules registers them (in this order in error messages).
from reid_core.models.backbones import resnet, densenet  # noqa: E402,F401
from reid_core.models.backbones.densenet import DenseNetBackbone  # noqa: E402
from reid_core.models.backbones.resnet import ResNetBackbone  # noqa: E402

__all__ = ["BACKBONES", "Backbone", "BackboneBuilder", "DenseNetBackbone", "PRETRAINED_SOURCES",
           "PretrainedSource", "ResNetBackbone", "StageSpec", "available_backbones",
           "build_backbone", "check_pretrained_name", "pretrained_source", "register_backbone",
           "register_pretrained_source"]
