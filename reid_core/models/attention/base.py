"""The attention-module registry and the shared size check.

Every attention module is built for one feature-map size ``(C, H, W)`` (RGA's relation
embeddings depend on ``N = H * W``; we hold every module to the same contract so that a wrong
input size fails loudly instead of broadcasting silently) and maps ``(B, C, H, W)`` to
``(B, C, H, W)``.

A builder has the signature ``builder(channels, height, width, **options) -> nn.Module``;
register it with ``@register_attention("name")``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from reid_core.utils.registry import Registry

AttentionBuilder = Callable[..., nn.Module]
ATTENTION: Registry[AttentionBuilder] = Registry("attention")


def register_attention(name: str) -> Callable[[AttentionBuilder], AttentionBuilder]:
    return ATTENTION.register(name)


def available_attention() -> list[str]:
    return ATTENTION.names()


def build_attention(name: str, channels: int, height: int, width: int, **options) -> nn.Module:
    """Build attention module ``name`` for feature maps of shape (C, H, W) = (channels, height, width).

    Raises:
        KeyError: unknown name (lists the valid ones).
        TypeError: an option the module does not take.
    """
    return ATTENTION.get(name)(channels, height, width, **options)


class SizedModule(nn.Module):
    """Base class: remembers the (C, H, W) it was built for and checks inputs against it."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.in_shape = (channels, height, width)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            c, h, w = self.in_shape
            raise ValueError(
                f"{type(self).__name__} was built for inputs of shape (B, {c}, {h}, {w}) "
                f"(C x H x W = {c} x {h} x {w}), got {tuple(x.shape)}; build the model for "
                f"this input size (data.height / data.width) instead"
            )


class GateModule(SizedModule):
    """A gating attention: ``forward(x) = x * mask(x)``, the mask in (0, 1) broadcast over
    channels (spatial gates, (B, 1, H, W)) or positions (channel gates, (B, C, 1, 1)).
    Subclasses implement ``_mask`` (inputs already size-checked)."""

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """The gate in (0, 1), for inspection and visualisation."""
        self.check_input(x)
        return self._mask(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return x * self._mask(x)
