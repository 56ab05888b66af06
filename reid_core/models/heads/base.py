"""The head protocol, the ``HEADS`` registry (``model.name``) and head options.

A head turns the backbone's stage outputs into a :class:`~reid_core.models.output.ModelOutput`:
test features by name in every mode, classifier outputs in training mode. It declares what it
produces, so that the evaluator (``eval.features``), the loss terms and the tools can check a
config against it before any compute:

* ``feature_names``: its test features, e.g. BNNeck ``("before_bn", "after_bn")``;
* ``metric_feature``: the feature a metric-learning loss (triplet) uses by default;
* ``train_outputs``: the training outputs it adds (``LOGITS``, ``PART_LOGITS``, ...);
* ``accuracy(out, pid)``: the number of correct identity predictions in a batch.

A head is registered with the dataclass of its ``model.options``::

    @register_head("bnneck", BNNeckOptions)
    class BNNeck(Head):
        @classmethod
        def build(cls, options, backbone, num_classes, input_size): ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from reid_core.config import ConfigError, parse_options
from reid_core.config.names import declared_features
from reid_core.models.backbones.base import Backbone
from reid_core.models.output import ModelOutput
from reid_core.utils.registry import Registry

T = TypeVar("T")
HeadClass = TypeVar("HeadClass", bound=type)


class Head(nn.Module):
    """Base class of the heads: ``forward(stages) -> ModelOutput``.

    ``stages`` is :meth:`Backbone.forward_stages`'s dict, shallowest stage first; most heads
    read only the deepest (:func:`deepest`).
    """

    #: Names of the test features in ``ModelOutput.features``, in this order.
    feature_names: ClassVar[tuple[str, ...]]
    #: The feature a metric-learning loss reads unless its options name another.
    metric_feature: ClassVar[str]
    #: Keys this head puts in ``ModelOutput.train`` in training mode.
    train_outputs: ClassVar[tuple[str, ...]]
    #: Whether ``model.backbone_parameters()`` (the parameters trained at
    #: ``optim.backbone_lr_mult``) includes the attention modules in the backbone's stage
    #: hooks. Each head keeps what its model always did, since the optimizer groups (and
    #: optimizer checkpoints) of recorded runs depend on it: BNNeck includes them, PCB does not.
    backbone_includes_hooks: ClassVar[bool] = False

    @classmethod
    def build(cls, options: Any, backbone: Backbone, num_classes: int,
              input_size: tuple[int, int]) -> Head:
        """The head for ``backbone`` (with its attention already inserted), a
        ``num_classes``-way identity classifier and inputs of ``input_size`` = (H, W).

        Raises:
            ConfigError: ``options`` that do not fit the backbone or the input size.
        """
        raise NotImplementedError

    def run(self, backbone: Backbone, img: torch.Tensor
            ) -> tuple[dict[str, torch.Tensor], ModelOutput]:
        """The backbone pass(es) and this head on an image batch: (the stage outputs, which
        deep supervision reads, and the output). One pass here; SAG runs two resolutions."""
        stages = backbone.forward_stages(img)
        return stages, self(stages)

    def backbone_group_parameters(self) -> list[nn.Parameter]:
        """Head parameters that train with the trunk (``optim.backbone_lr_mult``); none here."""
        return []

    def forward(self, stages: Mapping[str, torch.Tensor]) -> ModelOutput:
        raise NotImplementedError

    def accuracy(self, out: ModelOutput, pid: torch.Tensor) -> float:
        """Correct identity predictions in a training batch (a count, as a float)."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer before every epoch (0-based); heads whose structure changes
        during training (PCB-RPP) switch here, so a resumed run switches when an unbroken one
        does."""


def deepest(stages: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The last (deepest) stage output of :meth:`Backbone.forward_stages`'s ordered dict."""
    return next(reversed(stages.values()))


@dataclass(frozen=True)
class HeadSpec:
    """A registered head: the dataclass of its ``model.options`` and the head class (whose
    :meth:`Head.build` is the builder)."""

    options: type
    head: type[Head]

    def build(self, options: Any, backbone: Backbone, num_classes: int,
              input_size: tuple[int, int]) -> Head:
        return self.head.build(options, backbone, num_classes, input_size)


HEADS: Registry[HeadSpec] = Registry("model")


def register_head(name: str, options: type) -> Any:
    """Class decorator: register a :class:`Head` subclass as ``model.name: name``, with its
    options dataclass (validated by :func:`parse_head_options`)."""
    def deco(head: HeadClass) -> HeadClass:
        undeclared = [f for f in head.feature_names if f not in declared_features()]
        if undeclared:  # configs could not select them (eval.features), records not key by them
            raise KeyError(f"head {name!r}: declare its test feature(s) "
                           f"{', '.join(map(repr, undeclared))} with "
                           f"reid_core.config.names.register_test_feature first")
        HEADS.register(name)(HeadSpec(options, head))
        return head
    return deco


def head_spec(name: str) -> HeadSpec:
    """The head registered as ``model.name: name``.

    Raises:
        KeyError: unknown name (``model.name``, listing the valid ones).
    """
    if name not in HEADS:
        raise KeyError(f"model.name: unknown model {name!r}; valid: {', '.join(HEADS.names())}")
    return HEADS.get(name)


def head_feature_names(name: str) -> tuple[str, ...]:
    """The test features of the head ``model.name: name`` (without building a model)."""
    return head_spec(name).head.feature_names


# --------------------------------------------------------------------------------- options


def option(default: Any = dataclasses.MISSING, *, expected: str) -> Any:
    """A field of a head's options dataclass: its default (none: the option is required; a
    list is copied for each instance) and what it expects, in words, for error messages
    (``"a positive integer (official: 6)"``)."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default),
                                 metadata={"expected": expected})
    return dataclasses.field(default=default, metadata={"expected": expected})


def check_option(options: Any, key: str, ok: bool) -> None:
    """For ``__post_init__``: ``ConfigError("<key>: expected <what>, got <value>")`` unless
    ``ok`` (the config checker prefixes ``model.options``)."""
    if not ok:
        raise ConfigError(f"{key}: expected {_expected(options, key)}, got "
                          f"{getattr(options, key)!r}")


def _expected(cls: Any, key: str) -> str:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return fields[key].metadata.get("expected", "a valid value")


def parse_head_options(name: str, cls: type[T], raw: Mapping[str, Any] | None,
                       where: str = "model.options") -> T:
    """``model.options`` of head ``name`` validated into its dataclass ``cls``.

    Types and ranges are checked by :func:`reid_core.config.parse_options` (ranges in the
    dataclass's ``__post_init__``); the messages say what the option expects in words, and
    unknown or missing keys name the model.

    Raises:
        ConfigError: naming ``model.options.<key>`` and what was expected.
    """
    raw = dict(raw or {})
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        if not names:
            raise ConfigError(f"{where}.{unknown[0]}: model {name!r} takes no options "
                              f"({where} must be empty)")
        raise ConfigError(f"{where}.{unknown[0]}: not an option of model {name!r}; "
                          f"valid options: {', '.join(names)}")
    for f in fields:
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in raw:
            raise ConfigError(f"{where}.{f.name}: required for model {name!r}: "
                              f"{f.metadata.get('expected', 'a value')}")
    try:
        return parse_options(cls, raw, where)
    except ConfigError as e:
        # A wrong type ("expected an integer, got '6'") is reported as what the option
        # expects in words, like a value out of range.
        for f in fields:
            if (str(e).startswith(f"{where}.{f.name}:") and f.name in raw
                    and "expected" in f.metadata):
                raise ConfigError(f"{where}.{f.name}: expected {f.metadata['expected']}, "
                                  f"got {raw[f.name]!r}") from None
        raise
