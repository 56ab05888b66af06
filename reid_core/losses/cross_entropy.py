"""Identity cross-entropy terms, with label smoothing (Szegedy et al. 2016).

With smoothing ε the target is 1 - ε + ε/K on the true class and ε/K elsewhere (identical to
torchreid's ``CrossEntropyLabelSmooth``; BoT uses ε = 0.1).

* ``ce``: of the head's ``logits`` (BNNeck: the post-BN classifier).
* ``part_ce``: the **sum** of the P part classifiers' cross-entropies (PCB), each with weight 1
  as in the official trainer (which *displays* the sum / P; we log the sum that is trained).
* ``deep_supervision``: the sum over the deep-supervision classifiers of the attention stages
  (CSA, ``reid_core.models.deep_supervision``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import ConfigError
from reid_core.data.batch import PID
from reid_core.losses.base import LossTerm, register_term
from reid_core.models.output import AUX_LOGITS, LOGITS, PART_LOGITS, ModelOutput


@dataclass
class CrossEntropyOptions:
    label_smoothing: float = 0.1  #: ε in [0, 1); 1 would make the target uniform

    def __post_init__(self) -> None:
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing!r}")


def summed_cross_entropy(logits: Sequence[torch.Tensor], pids: torch.Tensor,
                         label_smoothing: float) -> torch.Tensor:
    """Σ_i CE(logits_i, pids): each (B, K) logits tensor against the (B,) labels."""
    return sum(F.cross_entropy(lg.float(), pids, label_smoothing=label_smoothing)
               for lg in logits)


@register_term("ce", CrossEntropyOptions, needs=(LOGITS,))
def cross_entropy(options: CrossEntropyOptions, model: nn.Module) -> LossTerm:
    def term(outputs: ModelOutput, batch: Mapping[str, Any]) -> torch.Tensor:
        return F.cross_entropy(outputs.train[LOGITS].float(), batch[PID],
                               label_smoothing=options.label_smoothing)
    return term


def _summed_over(output: str):
    """The builder of a term summing the cross-entropies of the logits list ``output``."""
    def build(options: CrossEntropyOptions, model: nn.Module) -> LossTerm:
        def term(outputs: ModelOutput, batch: Mapping[str, Any]) -> torch.Tensor:
            return summed_cross_entropy(outputs.train[output], batch[PID],
                                        options.label_smoothing)
        return term
    return build


part_cross_entropy = register_term("part_ce", CrossEntropyOptions, needs=(PART_LOGITS,))(
    _summed_over(PART_LOGITS))
deep_supervision = register_term("deep_supervision", CrossEntropyOptions, needs=(AUX_LOGITS,))(
    _summed_over(AUX_LOGITS))
