"""Attention modules, one family per file, selected by name from a registry.

Importing this package registers every family.
"""

from reid_core.models.attention.base import (
    SizedModule,
    available_attention,
    build_attention,
    register_attention,
)

# Importing the family modules registers them.
from reid_core.models.attention import rga, cbam, fc, nonlocal_block, se  # noqa: E402,F401
from reid_core.models.attention import sa, csa  # noqa: E402,F401
from reid_core.models.attention.insert import insert_attention  # noqa: E402

__all__ = ["SizedModule", "available_attention", "build_attention", "insert_attention",
           "register_attention"]
