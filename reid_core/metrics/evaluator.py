"""Retrieval evaluation of a model on a query/gallery split: features -> distances -> CMC/mAP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import DataConfig, EvalConfig
from reid_core.data.base import ImageItem
from reid_core.data.image_dataset import ImageDataset, cache_decoded
from reid_core.data.transforms import build_test_transform
from reid_core.engine.features import extract_features
from reid_core.metrics.distance import compute_distance_matrix
from reid_core.metrics.rank import evaluate_rank
from reid_core.utils.device import DeviceSettings


class RetrievalEvaluator:
    """Evaluate a model under the Market-1501 single-query protocol.

    Calling it returns ``{feature: {"R1": ..., "R5": ..., "mAP": ...}}`` in **percent**, one
    entry per feature in ``eval_cfg.features`` (``before_bn`` / ``after_bn``).
    """

    def __init__(self, query: Sequence[ImageItem], gallery: Sequence[ImageItem],
                 data_cfg: DataConfig, eval_cfg: EvalConfig, device: DeviceSettings) -> None:
        tf = build_test_transform(data_cfg)
        workers = data_cfg.workers
        self.query = ImageDataset(query, tf, cache=cache_decoded(len(query), workers))
        self.gallery = ImageDataset(gallery, tf, cache=cache_decoded(len(gallery), workers))
        self.cfg, self.device, self.workers = eval_cfg, device, data_cfg.workers

    def features(self, model: nn.Module):
        kw = dict(device=self.device, batch_size=self.cfg.batch_size, flip=self.cfg.flip,
                  workers=self.workers)
        return extract_features(model, self.query, **kw), extract_features(model, self.gallery, **kw)

    def __call__(self, model: nn.Module) -> dict[str, dict[str, float]]:
        (qf, q_pids, q_cams), (gf, g_pids, g_cams) = self.features(model)
        max_rank = max(self.cfg.ranks)
        out: dict[str, dict[str, float]] = {}
        for name in self.cfg.features:
            q, g = qf[name], gf[name]
            if self.cfg.normalize:
                q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
            dist = compute_distance_matrix(q, g, self.cfg.distance)
            cmc, mAP = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams,
                                     max_rank=max_rank, ap_mode=self.cfg.ap_mode)
            out[name] = {**{f"R{r}": round(100 * float(cmc[r - 1]), 4) for r in self.cfg.ranks},
                         "mAP": round(100 * mAP, 4)}
        return out
