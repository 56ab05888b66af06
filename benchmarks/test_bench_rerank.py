"""k-reciprocal re-ranking (``reid_core.metrics.rerank.re_ranking``, k1=20, k2=6, lambda=0.3)
at Market-1501 size (3,368 + 15,913) and, under the ``slow`` marker, MSMT17 size
(11,659 + 82,161), on the deterministic synthetic features of ``synthetic_features`` (identity
structure, 256-d float32). Each timed call includes the distance computation.

Measures, never asserts timings: ``python -m pytest benchmarks/test_bench_rerank.py
--benchmark-only`` (add ``-m slow`` for MSMT17 size). Besides the times, ``extra_info`` holds
the peak RSS each call added (VmHWM reset via ``/proc/self/clear_refs`` before the call, minus
VmRSS at that point; the largest over the rounds). The side-by-side comparison with the dense
implementations is ``benchmarks/compare_rerank.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from process_memory import reset_peak_rss, status_kb
from synthetic_features import MARKET, MSMT17, ProblemSize, make_problem

from reid_core.metrics.rerank import re_ranking


@pytest.fixture(scope="module")
def warm() -> None:
    """Compile / load the numba kernels outside the timings."""
    p = make_problem(MARKET)
    re_ranking(p.qf[:200], p.gf[:800])


def _bench(benchmark, size: ProblemSize, rounds: int) -> None:
    p = make_problem(size)
    peaks: list[float] = []

    def call() -> np.ndarray:
        measured = reset_peak_rss()
        before = status_kb("VmRSS")
        out = re_ranking(p.qf, p.gf)
        if measured:
            peaks.append((status_kb("VmHWM") - before) / 1024 ** 2)
        return out

    out = benchmark.pedantic(call, rounds=rounds, iterations=1)
    benchmark.extra_info.update({
        "num_query": size.num_query, "num_gallery": size.num_gallery,
        "dim": int(p.qf.shape[1]), "output_gib": out.nbytes / 1024 ** 3,
        "peak_rss_added_gib": max(peaks) if peaks else None,
        "includes_gemm": True,
    })


def test_rerank_market(benchmark, warm):
    _bench(benchmark, MARKET, rounds=3)


@pytest.mark.slow
def test_rerank_msmt17(benchmark, warm):
    _bench(benchmark, MSMT17, rounds=1)
