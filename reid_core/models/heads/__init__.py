"""Heads: backbone stage outputs -> test features and training outputs, selected by
``model.name`` from a registry, each with a typed ``model.options`` dataclass.

Importing this package registers every head. A new head is one module here that subclasses
:class:`~reid_core.models.heads.base.Head` and registers itself with
:func:`~reid_core.models.heads.base.register_head`, plus its import below.
"""

from reid_core.models.heads.base import (
    HEADS,
    Head,
    HeadSpec,
    head_feature_names,
    head_spec,
    parse_head_options,
    register_head,
)

# Importing the head modules registers them.
from reid_core.models.heads import bnneck, pcb, sag  # noqa: E402,F401
from reid_core.models.heads.bnneck import BNNeck, BNNeckOptions  # noqa: E402
from reid_core.models.heads.pcb import PCBHead, PCBOptions, PCBRPPHead, PCBRPPOptions  # noqa: E402

__all__ = ["BNNeck", "BNNeckOptions", "HEADS", "Head", "HeadSpec", "PCBHead", "PCBOptions",
           "PCBRPPHead", "PCBRPPOptions", "head_feature_names", "head_spec",
           "parse_head_options", "register_head"]
