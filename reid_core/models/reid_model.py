"""The one composed re-ID model: backbone (with attention in its stage hooks) -> head, plus
optional deep supervision of backbone stages.

::

    image (B, 3, H, W) -> backbone.forward_stages -> {stage: (B, C_s, H_s, W_s)}
                       -> head   -> ModelOutput(features={name: (B, D)}, train={...})
                       -> aux    -> train["aux_logits"] (deep supervision, training mode)

State-dict keys: ``backbone.*`` (the trunk's own names, then ``backbone.stage_hooks.*``; with
``model.attention.placement: residual`` the modules sit in the blocks instead, e.g.
``backbone.layer1.0.bn3.gate.*`` next to ``backbone.layer1.0.bn3.norm.*``), ``head.*``,
``aux.classifiers.<stage>.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from reid_core.data.batch import IMG
from reid_core.models.backbones.base import Backbone
from reid_core.models.deep_supervision import DeepSupervision
from reid_core.models.heads.base import Head
from reid_core.models.output import AUX_LOGITS, ModelOutput

#: Top-level names (module or buffer) of models saved before issue 11 that are the head's now:
#: PCB-RPP's refined part pooling (``rpp.*``) and its mode flag (``rpp_active``) belonged to
#: the whole model (``PCBModel``) then, and are ``head.rpp.*`` / ``head.rpp_active`` now.
#: Nothing else moved: every other key of every model is what it was.
MOVED_TO_HEAD = frozenset({"rpp", "rpp_active"})


class ReIDModel(nn.Module):
    """``backbone`` -> ``head``; with ``aux`` also one identity classifier per supervised
    stage, whose logits are ``out.train[AUX_LOGITS]`` in training mode.

    ``forward(x)``: ``x`` is an image batch (B, 3, H, W) or a batch dict (its ``"img"``).
    """

    def __init__(self, backbone: Backbone, head: Head, aux: DeepSupervision | None = None
                 ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        # None adds no state-dict keys: models without deep supervision stay as they were.
        self.aux = aux
        self.register_load_state_dict_pre_hook(_upgrade_hook)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.head.feature_names

    @property
    def train_outputs(self) -> tuple[str, ...]:
        """The keys of ``ModelOutput.train`` in training mode: the head's, then ``aux_logits``
        with deep supervision."""
        return self.head.train_outputs + ((AUX_LOGITS,) if self.aux is not None else ())

    def forward(self, x: torch.Tensor | Mapping[str, Any]) -> ModelOutput:
        img = x[IMG] if isinstance(x, Mapping) else x
        stages, out = self.head.run(self.backbone, img)
        if self.training and self.aux is not None:
            out.train[AUX_LOGITS] = self.aux(stages)
        return out

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer before every epoch (PCB-RPP switches its pooling)."""
        self.head.set_epoch(epoch)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the (possibly ImageNet-pretrained) trunk, for ``optim.backbone_lr_mult``.

        The trunk's own parameters, plus the attention modules in its stage hooks when the
        head says so (:attr:`Head.backbone_includes_hooks`: BNNeck yes, PCB no, as each model
        always did). Head and deep-supervision classifiers are never included.
        """
        trunk = (list(self.backbone.parameters()) if self.head.backbone_includes_hooks
                 else self.backbone.trunk_parameters())
        return trunk + self.head.backbone_group_parameters()

    def upgrade_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` with the keys of older checkpoints renamed to this model's
        (:data:`MOVED_TO_HEAD`); called by :func:`reid_core.models.weights.load_state_strict`
        (and by ``load_state_dict``), so old checkpoints load, strictly, as they are."""
        return _upgrade(dict(state), "", set(self.state_dict(keep_vars=True)))


def _upgrade(state: dict[str, Any], prefix: str, own: set[str]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        local = key[len(prefix):] if key.startswith(prefix) else None
        if local is not None and local.split(".", 1)[0] in MOVED_TO_HEAD \
                and f"{prefix}head.{local}" in own:
            key = f"{prefix}head.{local}"
        out[key] = value
    return out


def _upgrade_hook(module: ReIDModel, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    own = {prefix + k for k in module.state_dict(keep_vars=True)}
    upgraded = _upgrade(dict(state_dict), prefix, own)
    state_dict.clear()
    state_dict.update(upgraded)
