"""Losses layer: registered loss terms and the objective they form.

Terms (``loss.terms[*].name``): ``ce`` (label-smoothed cross-entropy of the logits), ``part_ce``
(PCB: sum over the part classifiers), ``triplet`` (batch-hard, Hermans et al. 2017),
``deep_supervision`` (CSA: sum over the attention stages' classifiers). Importing this package
registers them; a new term is one new module registering itself with
:func:`~reid_core.losses.base.register_term` (imported here).
"""

from reid_core.losses.base import LOSS_TERMS, LossTerm, TermSpec, available_terms, register_term
from reid_core.losses import cross_entropy  # noqa: F401  (registers ce, part_ce, deep_supervision)
from reid_core.losses.objective import Objective, WeightedTerm, build_objective
from reid_core.losses.triplet import TripletOptions, batch_hard_triplet, pairwise_euclidean

__all__ = ["LOSS_TERMS", "LossTerm", "Objective", "TermSpec", "TripletOptions", "WeightedTerm",
           "available_terms", "batch_hard_triplet", "build_objective", "pairwise_euclidean",
           "register_term"]
