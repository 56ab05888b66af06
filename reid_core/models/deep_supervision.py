"""Deep supervision of attention stages (CSA, Chen et al., AAAI 2020).

CSA trains every attention stage with its own identity classifier: "deep supervision (GAP +
FC, cross-entropy, lambda = 1.0)" on the output of each stage that carries an attention module
(``paper_tables/csa_table1.yaml``, protocol notes; implementation notes section 4). There is no
official code, so these details are our choices (documented, not verified):

* the classifier reads the stage output *after* its attention module (the module's output is
  what the supervision is meant to shape);
* GAP -> ``Linear(C_stage, num_classes)`` with a bias, no BN, no dropout; initialised like the
  suite's other identity classifiers, weight N(0, 0.001) and bias 0;
* the classifiers only run in training mode; they are not part of the test feature;
* the cross-entropy (with ``loss.label_smoothing``) of every classifier is summed and weighted
  by ``loss.deep_supervision_weight`` (``reid_core.losses``).

The classifiers are new layers: they are not in a model's ``backbone_parameters()``, so they
train at the full learning rate even when ``optim.backbone_lr_mult`` < 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from reid_core.config import AttentionConfig
from reid_core.models.backbone import STAGES, ResNetBackbone


class DeepSupervision(nn.Module):
    """One GAP -> linear identity classifier per supervised stage.

    ``forward(stages)``: ``{stage: (B, C_stage, H_s, W_s)}`` (e.g. from
    :meth:`ResNetBackbone.forward_stages`) -> a list of (B, num_classes) logits, one per
    supervised stage, shallowest first.
    """

    def __init__(self, stage_channels: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.classifiers = nn.ModuleDict()
        for stage in STAGES:  # shallowest first, whatever order the config lists them in
            if stage in stage_channels:
                fc = nn.Linear(stage_channels[stage], num_classes)
                nn.init.normal_(fc.weight, std=0.001)
                nn.init.zeros_(fc.bias)
                self.classifiers[stage] = fc

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


def build_deep_supervision(backbone: ResNetBackbone, stages: Sequence[str],
                           num_classes: int) -> DeepSupervision | None:
    """Classifiers for ``stages`` of ``backbone`` (``None`` if there are none).

    Models build them *after* their own head, so that switching deep supervision on does not
    shift the random initialisation of the rest of the model (paired ablations start equal).
    """
    if not stages:
        return None
    return DeepSupervision({s: backbone.stage_channels[s] for s in stages}, num_classes)
