"""Deterministic synthetic retrieval problems with identity structure, at real dataset sizes.

Features are identity centres plus Gaussian noise (so true matches are *near* the top but not
always first, like a trained model's features), with distractor images (pid 0) drawn around
their own random centres, and cameras assigned at random. Shared by the evaluation and
re-ranking benchmarks so that both measure the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProblemSize:
    name: str
    num_query: int
    num_gallery: int
    num_ids: int  #: test identities (pids 1..num_ids); pid 0 = distractors
    num_distractors: int
    num_cams: int


#: Market-1501 test split: 3,368 queries, 15,913 gallery images (750 ids + 2,793 distractors).
MARKET = ProblemSize("market1501", 3368, 15913, 750, 2793, 6)
#: MSMT17 test split: 11,659 queries, 82,161 gallery images, 3,060 ids, 15 cameras.
MSMT17 = ProblemSize("msmt17", 11659, 82161, 3060, 0, 15)


@dataclass
class RetrievalProblem:
    qf: np.ndarray  # (Q, dim) float32
    gf: np.ndarray  # (G, dim) float32
    q_pids: np.ndarray  # (Q,) int64
    g_pids: np.ndarray  # (G,) int64
    q_cams: np.ndarray  # (Q,) int64
    g_cams: np.ndarray  # (G,) int64


def make_problem(size: ProblemSize, dim: int = 256, noise: float = 1.5,
                 seed: int = 0) -> RetrievalProblem:
    """Features of ``size`` with ``dim`` dimensions; same (size, dim, noise, seed) -> same arrays."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(size.num_ids + 1, dim)).astype(np.float32)
    q_pids = rng.integers(1, size.num_ids + 1, size.num_query)
    n_real = size.num_gallery - size.num_distractors
    g_pids = np.concatenate([rng.integers(1, size.num_ids + 1, n_real),
                             np.zeros(size.num_distractors, dtype=np.int64)])
    q_cams = rng.integers(0, size.num_cams, size.num_query)
    g_cams = rng.integers(0, size.num_cams, size.num_gallery)
    qf = centres[q_pids] + rng.normal(scale=noise, size=(size.num_query, dim)).astype(np.float32)
    g_centres = centres[g_pids]
    g_centres[g_pids == 0] = rng.normal(size=(size.num_distractors, dim))
    gf = g_centres + rng.normal(scale=noise, size=(size.num_gallery, dim)).astype(np.float32)
    return RetrievalProblem(qf.astype(np.float32), gf.astype(np.float32), q_pids.astype(np.int64),
                            g_pids.astype(np.int64), q_cams.astype(np.int64),
                            g_cams.astype(np.int64))
