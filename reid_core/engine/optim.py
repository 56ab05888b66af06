"""Optimizers with parameter groups, and the warmup + multi-step schedule of BoT/RGA."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import torch
from torch import nn

from reid_core.config import OptimConfig


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam or SGD over four groups: {backbone, new layers} x {weights, biases}.

    Biases get ``lr * bias_lr_factor`` and ``weight_decay_bias`` (BoT); the backbone gets
    ``lr * backbone_lr_mult`` (PCB uses 0.1 for the ImageNet-pretrained trunk).
    Frozen parameters (e.g. the BNNeck bias) are left out.
    """
    backbone_ids = {id(p) for p in getattr(model, "backbone_parameters", lambda: [])()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (id(p) in backbone_ids, name.endswith("bias"))
        groups.setdefault(key, []).append(p)
    param_groups = []
    for (is_backbone, is_bias), params in sorted(groups.items()):
        lr = cfg.lr * (cfg.backbone_lr_mult if is_backbone else 1.0)
        lr *= cfg.bias_lr_factor if is_bias else 1.0
        wd = cfg.weight_decay_bias if is_bias else cfg.weight_decay
        param_groups.append({"params": params, "lr": lr, "weight_decay": wd,
                             "name": f"{'backbone' if is_backbone else 'new'}/"
                                     f"{'bias' if is_bias else 'weight'}"})
    if cfg.name == "adam":
        return torch.optim.Adam(param_groups, lr=cfg.lr)
    return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


@dataclass
class WarmupMultiStep:
    """lr factor at an epoch: linear warmup from ``warmup_factor`` to 1 over ``warmup_epochs``,
    times ``gamma ** (number of milestones <= epoch)``.

    BoT: warmup 10 epochs from 0.01, milestones 40/70, gamma 0.1. RGA: warmup 20 epochs from
    0.01, milestones 80..360 step 40, gamma 0.5. Both set the lr once per epoch.
    """

    warmup_epochs: int
    warmup_factor: float
    milestones: list[int]
    gamma: float

    def __call__(self, epoch: int) -> float:
        warm = 1.0
        if epoch < self.warmup_epochs:
            alpha = epoch / self.warmup_epochs
            warm = self.warmup_factor * (1 - alpha) + alpha
        return warm * self.gamma ** bisect_right(self.milestones, epoch)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch ``LambdaLR``; call ``.step()`` once at the end of every epoch."""
    rule = WarmupMultiStep(cfg.warmup_epochs, cfg.warmup_factor, list(cfg.milestones), cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
