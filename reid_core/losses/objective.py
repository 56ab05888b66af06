"""The training objective: the weighted sum of the configured loss terms.

``loss.terms`` (:class:`reid_core.config.LossConfig`) lists ``{name, weight, options}``;
:func:`build_objective` checks every term's options and that the model produces what the term
reads, before any data is loaded. The total is summed in config order (the float order of
format-1 configs is kept by their migration); each term's value is logged under its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reid_core.config import ConfigError, LossConfig, parse_options
from reid_core.losses.base import LOSS_TERMS, LossTerm
from reid_core.models.output import ModelOutput


@dataclass(frozen=True)
class WeightedTerm:
    name: str
    weight: float
    term: LossTerm


class Objective:
    """``Σ_i weight_i * term_i(outputs, batch)`` over the terms with a non-zero weight."""

    def __init__(self, terms: list[WeightedTerm]) -> None:
        # A 0-weight term stays in the config (and its identity) but is not computed.
        self.terms = [t for t in terms if t.weight]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    def __call__(self, outputs: ModelOutput, batch: Mapping[str, Any]
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """The total loss, and every term's (unweighted) value as a float for logging."""
        values = {t.name: t.term(outputs, batch) for t in self.terms}
        total = sum(t.weight * values[t.name] for t in self.terms)
        return total, {k: float(v.detach()) for k, v in values.items()}


def build_objective(cfg: LossConfig, model: nn.Module) -> Objective:
    """Build the terms of ``cfg`` for ``model``.

    Raises:
        ConfigError: an unknown term, a term given twice, an invalid option, or a term that
            reads a training output the model does not produce (naming ``loss.terms[i]``).
    """
    provided = set(model.train_outputs)
    terms, seen = [], set()
    for i, tc in enumerate(cfg.terms):
        where = f"loss.terms[{i}]"
        try:
            spec = LOSS_TERMS.get(tc.name)
        except KeyError as e:
            raise ConfigError(f"{where}.name: {e.args[0]}") from None
        if tc.name in seen:
            raise ConfigError(f"{where}.name: term {tc.name!r} is listed twice (give it one "
                              f"weight)")
        seen.add(tc.name)
        missing = [n for n in spec.needs if n not in provided]
        if missing:
            raise ConfigError(
                f"{where}: term {tc.name!r} reads the model's {', '.join(missing)}, which this "
                f"model does not produce (it produces: {', '.join(sorted(provided)) or 'none'})"
                + _hint(tc.name))
        options = parse_options(spec.options, tc.options, f"{where}.options")
        try:
            term = spec.build(options, model)
        except ConfigError as e:
            raise ConfigError(f"{where}.{e}") from None
        terms.append(WeightedTerm(tc.name, tc.weight, term))
    return Objective(terms)


def _hint(name: str) -> str:
    return {
        "deep_supervision": "; switch on model.attention.deep_supervision",
        "ce": "; a part model (PCB) is trained with part_ce",
        "part_ce": "; only part models (PCB, PCB-RPP) have part classifiers, use ce",
    }.get(name, "")
