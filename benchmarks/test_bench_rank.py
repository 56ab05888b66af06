"""evaluate_rank at Market-1501 size (3,368 queries x 15,913 gallery images).

Measures, never asserts timings: run with ``tox -e bench`` or
``python -m pytest benchmarks --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_core.metrics import compute_distance_matrix, evaluate_rank


def market_sized_problem(seed: int = 0):
    """Features with identity structure: 751 test ids + distractors, 6 cameras, 2048-d."""
    rng = np.random.default_rng(seed)
    ids = 751
    centres = rng.normal(size=(ids, 256)).astype(np.float32)
    q_pids = rng.integers(1, ids, 3368)
    g_pids = np.concatenate([rng.integers(1, ids, 15913 - 2793), np.zeros(2793, dtype=np.int64)])
    q_cams, g_cams = rng.integers(0, 6, 3368), rng.integers(0, 6, 15913)
    noise = lambda n: rng.normal(scale=1.5, size=(n, 256)).astype(np.float32)  # noqa: E731
    qf = centres[q_pids] + noise(3368)
    gf = np.where(g_pids[:, None] > 0, centres[g_pids], rng.normal(size=(15913, 256))) + noise(15913)
    dist = compute_distance_matrix(torch.from_numpy(qf), torch.from_numpy(gf.astype(np.float32)))
    return dist.numpy(), q_pids, g_pids, q_cams, g_cams


@pytest.fixture(scope="module")
def market():
    return market_sized_problem()


@pytest.mark.parametrize("ap_mode", ["standard", "trapezoid"])
def test_evaluate_rank_market(benchmark, market, ap_mode):
    dist, qp, gp, qc, gc = market
    cmc, mAP = benchmark.pedantic(evaluate_rank, args=(dist, qp, gp, qc, gc),
                                  kwargs={"ap_mode": ap_mode}, rounds=3, iterations=1)
    benchmark.extra_info.update({"R1": float(cmc[0]), "mAP": mAP, "shape": list(dist.shape)})
