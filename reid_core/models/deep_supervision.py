"""Deep supervision of attention stages (CSA, Chen et al., AAAI 2020).

CSA trains every attention stage with its own identity classifier: "deep supervision (GAP +
FC, cross-entropy, lambda = 1.0)" on the output of each stage that carries an attention module
(``paper_tables/csa_table1.yaml``, protocol notes; implementation notes section 4). There is no
official code, so these details are our choices (documented, not verified):

* the classifier reads the stage output *after* its attention module (the module's output is
  what the supervision is meant to shape);
* GAP -> ``Linear(C_stage, num_classes)`` with a bias, no BN, no dropout; initialised like the
  suite's other identity classifiers, weight N(0, 0.001) and bias 0. The paper says "a global
  average pooling layer and fully connected layers" (plural): with
  ``model.attention.deep_supervision_hidden: N`` each classifier is GAP -> ``Linear(C_stage,
  N)`` (torch's default init) -> BatchNorm1d -> ReLU -> the classifier above on N features.
  The default (0) is the single layer: "GAP + FC" in the paper's own protocol summary;
* the classifiers only run in training mode; they are not part of the test feature; their
  logits are the model output's ``train["aux_logits"]`` (:data:`~reid_core.models.output.AUX_LOGITS`);
* the cross-entropy of every classifier is summed and weighted (the ``deep_supervision`` loss
  term, :mod:`reid_core.losses`).

Stages are named by the backbone (``model.attention.stages``), so this works on any registered
backbone.

The classifiers are new layers: they are not in a model's ``backbone_parameters()``, so they
train at the full learning rate even when ``optim.backbone_lr_mult`` < 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from reid_core.config import AttentionConfig, ConfigError
from reid_core.models.backbones.base import Backbone


class DeepSupervision(nn.Module):
    """One GAP -> linear identity classifier per supervised stage.

    ``forward(stages)``: ``{stage: (B, C_stage, H_s, W_s)}`` (from
    :meth:`~reid_core.models.backbones.base.Backbone.forward_stages`) -> a list of
    (B, num_classes) logits, one per supervised stage, in the order of ``stage_channels``
    (:func:`build_deep_supervision` gives the backbone's order: shallowest first).
    """

    def __init__(self, stage_channels: Mapping[str, int], num_classes: int,
                 hidden: int = 0) -> None:
        super().__init__()
        self.classifiers = nn.ModuleDict()
        for stage, channels in stage_channels.items():
            fc = nn.Linear(hidden or channels, num_classes)
            nn.init.normal_(fc.weight, std=0.001)
            nn.init.zeros_(fc.bias)
            self.classifiers[stage] = (fc if not hidden else nn.Sequential(
                nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), fc))

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.classifiers)

    def forward(self, stages: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        return [fc(stages[name].mean(dim=(2, 3))) for name, fc in self.classifiers.items()]


def supervised_stages(cfg: AttentionConfig | None) -> tuple[str, ...]:
    """The stages that get a classifier: those of ``model.attention.stages`` when
    ``model.attention.deep_supervision`` is on, else none."""
    if cfg is None or not cfg.deep_supervision:
        return ()
    return tuple(cfg.stages)


def build_deep_supervision(backbone: Backbone, stages: Sequence[str],
                           num_classes: int, hidden: int = 0) -> DeepSupervision | None:
    """Classifiers for ``stages`` of ``backbone`` (``None`` if there are none), shallowest
    first in the backbone's stage order, whatever order the config lists them in.

    Models build them *after* their head, so that switching deep supervision on does not
    shift the random initialisation of the rest of the model (paired ablations start equal).

    Raises:
        ConfigError: a stage the backbone does not have (naming ``model.attention.stages``
            and the valid stage names), or a negative ``hidden``.
    """
    if not stages:
        return None
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise ConfigError(f"model.attention.deep_supervision_hidden: expected a width >= 0 "
                          f"(0 = a single FC layer), got {hidden!r}")
    wanted = {backbone.stage(s, where="model.attention.stages").name for s in stages}
    return DeepSupervision({s.name: s.channels for s in backbone.stages if s.name in wanted},
                           num_classes, hidden)
