"""Loss terms: the registry the config's ``loss.terms`` select from.

A term is ``term(outputs, batch) -> Tensor`` (a scalar): it reads the model's
:class:`~reid_core.models.output.ModelOutput` (training outputs such as ``logits``, or a test
feature for metric learning) and the batch dict (``pid``; ``mask``, ``keypoints``, ``views``
when ``data.annotations`` / ``data.views`` ask for them).
A term is registered with its option dataclass and the training outputs it needs, so a config
asking for a term the model cannot feed fails before any compute (:func:`build_objective`)::

    @register_term("center", CenterOptions, needs=())
    def center(options: CenterOptions, model: nn.Module) -> LossTerm: ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from reid_core.models.output import ModelOutput
from reid_core.utils.registry import Registry


class LossTerm(Protocol):
    def __call__(self, outputs: ModelOutput, batch: Mapping[str, Any]) -> torch.Tensor: ...


@dataclass(frozen=True)
class TermSpec:
    """A registered term: its options, its builder and the training outputs it reads."""

    options: type
    build: Callable[[Any, nn.Module], LossTerm]
    needs: tuple[str, ...] = ()


LOSS_TERMS: Registry[TermSpec] = Registry("loss term")


def register_term(name: str, options: type, *, needs: tuple[str, ...] = ()
                  ) -> Callable[[Callable[[Any, nn.Module], LossTerm]],
                                Callable[[Any, nn.Module], LossTerm]]:
    """Register ``builder(options, model) -> term`` as loss term ``name``."""
    def deco(build: Callable[[Any, nn.Module], LossTerm]) -> Callable[[Any, nn.Module], LossTerm]:
        LOSS_TERMS.register(name)(TermSpec(options, build, needs))
        return build

    return deco


def available_terms() -> list[str]:
    return LOSS_TERMS.names()
