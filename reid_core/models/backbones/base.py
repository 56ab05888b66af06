"""The backbone protocol: a stem followed by named stages, with optional hooks after stages.

Every backbone (ResNet, DenseNet, ...) describes its stages as :class:`StageSpec` entries
(name, output channels, output stride) and computes them one after the other. Attention
modules (``model.attention.stages``) and deep-supervision classifiers refer to stages by these
names, so they work on any registered backbone.

A new backbone is one module in this package that subclasses :class:`Backbone` and registers
a builder ``(last_stride, pretrained) -> Backbone`` with :func:`register_backbone`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from reid_core.config import ConfigError
from reid_core.models.backbones.pretrained import resolve_pretrained
from reid_core.utils.registry import Registry


@dataclass(frozen=True)
class StageSpec:
    """One stage of a backbone.

    Attributes:
        name: the stage's name in configs (``model.attention.stages``), e.g. ``"layer3"``.
        channels: C of the stage's output.
        stride: total stride of the output with respect to the input image: an input of
            H x W gives a map of about H / stride x W / stride (exactly, when the stride
            divides H and W).
    """

    name: str
    channels: int
    stride: int


class Backbone(nn.Module):
    """Base class of the trunks: stem -> stage 1 -> ... -> stage n, each stage optionally
    followed by a hook module (an attention module) of the same input and output shape.

    Subclasses build their layers, then call :meth:`_init_stages` (last, see there), and
    implement :meth:`forward_stem` and :meth:`forward_stage`.

    Attributes:
        name: the registry name (``model.backbone``), for error messages.
        last_stride: the ``model.last_stride`` it was built with (each backbone documents what
            it changes).
        stages: the stages, shallowest first.
        stage_hooks: modules applied after a stage, by stage name (``nn.ModuleDict``).
    """

    name: str
    last_stride: int
    stages: tuple[StageSpec, ...]
    stage_hooks: nn.ModuleDict

    def _init_stages(self, name: str, stages: Iterable[StageSpec], last_stride: int) -> None:
        """Describe the stages and create the (empty) hook container.

        Called at the end of a subclass's ``__init__``: the hooks are registered after the
        trunk, so the trunk's parameters come first in ``parameters()`` and ``state_dict()``,
        the order that optimizer states of recorded runs were saved in.
        """
        self.name, self.last_stride = name, last_stride
        self.stages = tuple(stages)
        self.stage_hooks = nn.ModuleDict()

    # ------------------------------------------------------------------ what subclasses define

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the input of the first stage."""
        raise NotImplementedError

    def forward_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Stage ``name`` applied to the previous stage's output (the stem's for the first),
        without its hook."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    @property
    def out_channels(self) -> int:
        """Channels of the last stage's output (what a head reads)."""
        return self.stages[-1].channels

    def stage(self, name: str, where: str = "model.attention.stages") -> StageSpec:
        """The stage called ``name``.

        Raises:
            ConfigError: no such stage; names ``where`` (the config key that asked for it)
                and the backbone's valid stage names.
        """
        for spec in self.stages:
            if spec.name == name:
                return spec
        raise ConfigError(f"{where}: {name!r} is not a stage of backbone {self.name!r}; "
                          f"valid stages: {', '.join(self.stage_names)}")

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output, each *after* its hook, from one pass.

        (B, 3, H, W) -> ``{stage: (B, C_s, H / stride_s, W / stride_s)}``, shallowest stage
        first (heads read the deepest as the last item). Deep supervision reads the hooked
        stages from here, so it needs no second forward pass.
        """
        x = self.forward_stem(x)
        outputs = {}
        for name in self.stage_names:
            x = self.forward_hooked_stage(name, x)
            outputs[name] = x
        return outputs

    def forward_hooked_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Stage ``name`` and its hook (if any): what :meth:`forward_stages` runs per stage,
        for heads that drive the stages themselves (SAG's two passes)."""
        x = self.forward_stage(name, x)
        return self.stage_hooks[name](x) if name in self.stage_hooks else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the last stage's output (B, C, H / stride, W / stride)."""
        return self.forward_stages(x)[self.stages[-1].name]

    @torch.no_grad()
    def stage_shapes(self, input_size: tuple[int, int]) -> dict[str, tuple[int, int, int]]:
        """(C, H, W) of every stage's output for an input of (height, width), by a dry run.

        Runs in eval mode (BatchNorm statistics untouched, no dropout: no random numbers are
        drawn) and without the hooks, so it can size the hooks before they exist.
        """
        was_training = self.training
        self.eval()
        try:
            x = self.forward_stem(torch.zeros(1, 3, *input_size))
            shapes = {}
            for name in self.stage_names:
                x = self.forward_stage(name, x)
                shapes[name] = tuple(x.shape[1:])
        finally:
            self.train(was_training)
        return shapes

    def residual_branch_ends(self, stage: str) -> list[tuple[nn.Module, str]]:
        """``(block, attribute)`` of the last layer of each residual branch in ``stage``
        (ResNet Bottleneck: ``bn3``, BasicBlock: ``bn2``), where a module inside every block
        goes (``model.attention.placement: residual``, SE-ResNet style).

        Raises:
            ConfigError: the backbone has no residual blocks to put modules in.
        """
        raise ConfigError(f"model.attention.placement: backbone {self.name!r} has no residual "
                          f"blocks; use placement 'stage'")

    def trunk_parameters(self) -> list[nn.Parameter]:
        """The backbone's own parameters (stem and stages), without the attention modules in
        ``stage_hooks`` or inside its blocks: those are new layers and train at the full
        learning rate."""
        new = {id(p) for p in self.stage_hooks.parameters()}
        new |= {id(p) for m in self.modules() if isinstance(m, GatedBranchEnd)
                for p in m.gate.parameters()}
        return [p for p in self.parameters() if id(p) not in new]


class GatedBranchEnd(nn.Module):
    """The last layer of a residual branch followed by an attention module, before the
    shortcut is added (SE-ResNet: ``x + SE(F(x))``). Replaces that layer in its block, so its
    keys become ``<layer>.norm.*`` (the original layer) and ``<layer>.gate.*``."""

    def __init__(self, norm: nn.Module, gate: nn.Module) -> None:
        super().__init__()
        self.norm, self.gate = norm, gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.norm(x))


#: ``builder(last_stride, pretrained) -> Backbone``; ``pretrained`` is ``None`` (random init),
#: ``"imagenet"`` or a local state-dict file.
BackboneBuilder = Callable[[int, "str | None"], Backbone]
BACKBONES: Registry[BackboneBuilder] = Registry("backbone")


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Register ``builder(last_stride, pretrained) -> Backbone`` as ``model.backbone: name``."""
    return BACKBONES.register(name)


def available_backbones() -> list[str]:
    """The registered names, in registration order (families together)."""
    return list(BACKBONES)


def build_backbone(name: str, last_stride: int = 1, pretrained: str | None = None) -> Backbone:
    """Build the backbone registered as ``name``.

    Args:
        name: ``model.backbone``, see :func:`available_backbones`.
        last_stride: ``model.last_stride`` (re-ID: 1, keeping the last stage at stride 16).
        pretrained: ``None`` (random init), ``"imagenet"`` (torchvision's weights API), the
            name of a registered source of weights files (``"synthetic"``, see
            :mod:`reid_core.models.backbones.pretrained`; resolved to its file here, made on
            first use) or a path to a local state dict; loading is strict (only the ImageNet
            classifier is dropped).

    Raises:
        KeyError: unknown name (lists the valid ones).
    """
    if name not in BACKBONES:
        raise KeyError(f"model.backbone: unknown backbone {name!r}; valid: "
                       f"{', '.join(available_backbones())}")
    return BACKBONES.get(name)(last_stride, resolve_pretrained(pretrained, name))


def check_last_stride(last_stride: int) -> None:
    if last_stride not in (1, 2):
        raise ConfigError(f"model.last_stride: must be 1 or 2, got {last_stride}")
