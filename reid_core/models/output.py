"""What every model returns: test features by name, and the training-only outputs.

A head declares the names of its test features (``Head.feature_names``) and of the training
outputs it adds (``Head.train_outputs``); the evaluator reads features by name
(``eval.features``), loss terms read training outputs by the constants below.

>>> out = model(batch)                       # training mode
>>> out.features["before_bn"].shape          # (B, D), in every mode
>>> out.train[LOGITS].shape                  # (B, K), training mode only
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from torch import Tensor

#: ``(B, K)`` identity logits of the head's classifier (BNNeck).
LOGITS: Final = "logits"
#: list of ``(B, K)`` logits, one per part classifier (PCB, PCB-RPP), top part first.
PART_LOGITS: Final = "part_logits"
#: list of ``(B, K)`` logits, one per deep-supervised backbone stage, shallowest stage first
#: (CSA, :mod:`reid_core.models.deep_supervision`).
AUX_LOGITS: Final = "aux_logits"


@dataclass
class ModelOutput:
    """A model's output for one batch.

    Attributes:
        features: the test features, ``{name: (B, D)}``, by the names the head declares
            (``model.head.feature_names``), in that order; computed in training and eval mode.
        train: training-mode outputs (:data:`LOGITS`, :data:`PART_LOGITS`, :data:`AUX_LOGITS`,
            ...); empty in eval mode, where no classifier runs.
    """

    features: dict[str, Tensor]
    train: dict[str, Any] = field(default_factory=dict)


__all__ = ["AUX_LOGITS", "LOGITS", "PART_LOGITS", "ModelOutput"]
