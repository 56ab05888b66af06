"""How sure a reproduced gain is: a confidence interval from the queries and the seeds.

A claim cell compares a row with the table's baseline row in one column (metric). Its gain is
uncertain for two reasons: the **test set** is a sample of queries (another set of queries of
the same population would rank differently), and **training** is random (another seed gives
another model). The interval of a cell covers both when the records allow it.

**Pairing.** The records of the row and of the baseline are paired by (record dataset, seed):
same seed, same evaluation data (for CUHK03 classic also the same sampled galleries). A pair
is refused -- the cell gets no interval, so its verdict is *inconclusive*, with a note -- when
the two records state different query sets: different ``dataset.identity`` (the data
fingerprint), different query or gallery ``dataset.splits`` counts, or different per-query
lists (``queries`` / ``query_digest``). Seeds run by only one of the two rows are not used
(the note names them); a record repeated under one (dataset, seed) refuses the cell.
With ``d_s`` = metric(row, s) − metric(baseline, s), the stored values, over the ``k`` paired
seeds, the interval is around ``mean_s d_s``.

**Per-query data** (``final[feature]["per_query"]``, written by
:func:`reid_core.metrics.evaluator.per_query_results`) gives each query's contribution to the
metric (R-k: 100 if its first hit is within rank k, else 0; mAP: 100 x its AP). When every paired record has it, on one and the same
query list, ``x_q`` = mean over the paired seeds of (row − baseline) contribution of query
``q`` (queries the protocol skips are left out; they are the same for every record). Then,
with :data:`RESAMPLES` replicates b from ``numpy.random.default_rng(BOOTSTRAP_SEED)`` (a fresh
generator per cell, so a cell's interval depends on its records only):

* **queries** (paired bootstrap): draw Q query indices with replacement, the *same* draw for
  the row and the baseline and for every seed (all of them ranked the same queries: the design
  is seeds x queries *crossed*, not nested, so the queries are resampled once per replicate);
  ``delta_b`` = mean of ``x`` over the draw − mean of ``x``;
* **seeds** (``k >= 2``): ``sigma_b = se * t_b`` with ``se = sd(d_s) / sqrt(k)`` and ``t_b``
  the Student-t (k − 1 degrees of freedom) quantiles at (i + 0.5) / B, i = 0..B−1, in a
  random order (a stratified draw of the t distribution). A parametric seed level, because
  resampling 2-5 seeds with replacement makes far too narrow an interval (the mean of 2 seeds
  resampled takes 3 values, all between the two: under a null effect both seeds share a sign,
  and the interval excludes 0, half the time) -- with the t distribution a 2-seed interval is
  as wide as its t-interval;
* replicate ``g_b = mean_s d_s + delta_b + sigma_b``; the interval is the 2.5 / 97.5 %
  percentiles of ``g_b`` (:data:`CONFIDENCE`; ``numpy.quantile(..., method="hazen")``, the
  plotting positions of the t draws, so that without query noise the interval is the
  t-interval, to 1e-4 relative).

The seed spread ``sd(d_s)`` of a fixed query set already holds the seed x query interaction,
which the query bootstrap counts again: the combined interval is slightly conservative, as
Owen's pigeonhole bootstrap for crossed designs (Ann. Appl. Stat. 2007). With a single paired
seed the interval is the query bootstrap alone: it covers the test-set noise, not the
seed-to-seed noise (the report says how many intervals rest on one seed).

**Without per-query data** (the records committed before it existed, metrics it cannot
recompute such as mINP, or query lists that differ between seeds): with ``k >= 2`` paired seeds
the Student t-interval ``mean_s d_s ± t_{k-1, 0.975} sd(d_s) / sqrt(k)`` of the paired seed
differences (seed noise only); with one seed no interval at all.

The verdicts drawn from an interval are :func:`reid_core.results.report.verdicts.interval_verdict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from reid_core.results.report.cell_values import (
    metric_value, per_query_block, per_query_values, record_dataset)

__all__ = [
    "BOOTSTRAP_SEED", "CONFIDENCE", "QUERIES", "QUERIES_AND_SEEDS", "RESAMPLES", "SEEDS",
    "BootstrapSettings", "GainInterval", "gain_interval", "paired_gain_interval",
    "query_set_problem",
]

#: Two-sided confidence level of the interval.
CONFIDENCE: Final[float] = 0.95
#: Bootstrap replicates per cell.
RESAMPLES: Final[int] = 2000
#: Seed of the bootstrap generator (``numpy.random.default_rng``), fresh for every cell.
BOOTSTRAP_SEED: Final[int] = 0

#: Interval methods (``GainInterval.method``).
QUERIES_AND_SEEDS: Final[str] = "queries+seeds"
QUERIES: Final[str] = "queries"
SEEDS: Final[str] = "seeds"

# Replicates per vectorised step of the query bootstrap (bounds the index temporary).
_CHUNK: Final[int] = 128


@dataclass(frozen=True)
class BootstrapSettings:
    """Confidence level, replicates and generator seed of the intervals (the report's test)."""

    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES
    seed: int = BOOTSTRAP_SEED

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if self.resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {self.resamples!r}")

    @property
    def percent(self) -> str:
        """``95%``."""
        return f"{100 * self.confidence:g}%"


@dataclass(frozen=True)
class GainInterval:
    """The interval of one claim cell's gain (NaN bounds and ``method`` None: no interval).

    ``seeds``: the paired seeds used; ``queries``: the queries resampled (None: no per-query
    data used); ``center``: mean over the paired seeds of the paired differences; ``note``:
    what the reader should know (refused pairing, unpaired seeds, missing per-query data).
    """

    low: float = math.nan
    high: float = math.nan
    method: str | None = None
    seeds: int = 0
    queries: int | None = None
    center: float = math.nan
    note: str | None = None

    @property
    def exists(self) -> bool:
        return self.method is not None


def gain_interval(
    seed_diffs: Sequence[float],
    query_diffs: np.ndarray | None = None,
    settings: BootstrapSettings = BootstrapSettings(),
) -> tuple[float, float, str] | None:
    """(low, high, method) of the gain, or None when there is no interval (the method: module
    docstring).

    Args:
        seed_diffs: ``d_s`` per paired seed (row − baseline, the stored metric values).
        query_diffs: ``x_q`` per valid query (mean over the paired seeds of the row − baseline
            contribution of the query, same unit), or None without per-query data.
        settings: confidence level, replicates, generator seed.
    """
    d = np.asarray(seed_diffs, dtype=np.float64)
    k = len(d)
    if k == 0 or not np.isfinite(d).all():
        return None
    center = float(d.mean())
    alpha = 1.0 - settings.confidence
    se = float(d.std(ddof=1)) / math.sqrt(k) if k >= 2 else math.nan
    if query_diffs is None:
        if k < 2:
            return None
        from scipy.stats import t as student_t

        half = float(student_t.ppf(1 - alpha / 2, k - 1)) * se
        return center - half, center + half, SEEDS
    x = np.asarray(query_diffs, dtype=np.float64)
    if x.ndim != 1 or not len(x) or not np.isfinite(x).all():
        raise ValueError("query_diffs must be a non-empty 1-D array of finite numbers")
    rng = np.random.default_rng(settings.seed)
    B, Q = settings.resamples, len(x)
    stats = np.empty(B, dtype=np.float64)
    x_mean = x.mean()
    for start in range(0, B, _CHUNK):
        n = min(_CHUNK, B - start)
        stats[start:start + n] = x[rng.integers(0, Q, size=(n, Q))].mean(axis=1) - x_mean
    stats += center
    method = QUERIES
    if k >= 2:
        from scipy.stats import t as student_t

        t_draws = student_t.ppf((np.arange(B) + 0.5) / B, k - 1)
        stats += se * rng.permutation(t_draws)
        method = QUERIES_AND_SEEDS
    # Hazen positions (i + 0.5) / B: those of the stratified t draws, so without query noise
    # the interval is the t-interval (to the interpolation between two draws).
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2], method="hazen")
    return float(low), float(high), method


def query_set_problem(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """Why records ``a`` and ``b`` cannot have ranked the same queries, or None.

    Compared where both records state it: dataset name, ``dataset.identity`` (data
    fingerprint), ``dataset.splits`` query and gallery counts, per-query ``queries`` and
    ``query_digest``.
    """
    if record_dataset(a) != record_dataset(b):
        return f"datasets differ ({record_dataset(a)} vs {record_dataset(b)})"
    da, db = a.get("dataset") or {}, b.get("dataset") or {}
    ia, ib = da.get("identity"), db.get("identity")
    if ia is not None and ib is not None and ia != ib:
        return "the data identities differ (another copy or version of the dataset)"
    sa, sb = da.get("splits"), db.get("splits")
    if isinstance(sa, Mapping) and isinstance(sb, Mapping):
        for split in ("query", "gallery"):
            if split in sa and split in sb and sa[split] != sb[split]:
                return f"the {split} splits differ ({sa[split]} vs {sb[split]})"
    pa, pb = per_query_block(a), per_query_block(b)
    if pa is not None and pb is not None:
        for key in ("queries", "query_digest"):
            if pa.get(key) != pb.get(key):
                return f"the per-query lists differ ({key} {pa.get(key)} vs {pb.get(key)})"
    return None


def _by_seed(records: Sequence[Mapping[str, Any]]) -> tuple[dict[tuple[str, Any], Any], list]:
    """(dataset, seed) -> record, and the keys held by more than one record."""
    out: dict[tuple[str, Any], Any] = {}
    repeated = []
    for r in records:
        key = (record_dataset(r), r.get("seed"))
        if key in out:
            repeated.append(key)
        out[key] = r
    return out, repeated


def _seed_list(keys: Sequence[tuple[str, Any]]) -> str:
    several = len({dataset for dataset, _ in keys}) > 1
    return ", ".join(f"{seed} on {dataset}" if several else str(seed) for dataset, seed in keys)


def paired_gain_interval(
    row_records: Sequence[Mapping[str, Any]],
    base_records: Sequence[Mapping[str, Any]],
    metric: str,
    settings: BootstrapSettings = BootstrapSettings(),
) -> GainInterval:
    """The interval of a cell's gain from its records (those that have a ``metric`` value) of
    the row and of the baseline row: pairing, checks and method as the module docstring says."""
    rows, repeated_r = _by_seed(row_records)
    bases, repeated_b = _by_seed(base_records)
    if repeated_r or repeated_b:
        keys = sorted(set(repeated_r) | set(repeated_b), key=str)
        return GainInterval(note=f"not paired: several records of seed {_seed_list(keys)} in "
                                 f"one row")
    paired = sorted(set(rows) & set(bases), key=lambda key: (key[0], str(key[1])))
    notes: list[str] = []
    only = sorted((set(rows) | set(bases)) - set(paired), key=lambda key: (key[0], str(key[1])))
    if not paired:
        return GainInterval(note="not paired: no seed was run by both rows")
    for key in paired:
        problem = query_set_problem(rows[key], bases[key])
        if problem is not None:
            return GainInterval(note=f"not paired: seed {_seed_list([key])}: {problem}")
    if only:
        plural = ("s" if len(paired) > 1 else "", "s" if len(only) > 1 else "")
        notes.append(f"paired seed{plural[0]} {_seed_list(paired)}; not used (run by one of "
                     f"the two rows only): seed{plural[1]} {_seed_list(only)}")
    diffs = []
    for key in paired:
        a, b = metric_value(rows[key], metric), metric_value(bases[key], metric)
        if a is None or b is None:
            raise ValueError(f"record of seed {key[1]} has no {metric} value")
        diffs.append(a - b)
    query_diffs, problem = _query_diffs([(rows[k], bases[k]) for k in paired], metric)
    if problem is not None:
        notes.append(problem)
    result = gain_interval(diffs, query_diffs, settings)
    note = "; ".join(notes) or None
    center = sum(diffs) / len(diffs)
    if result is None:
        return GainInterval(seeds=len(paired), center=center, note=note)  # one seed, no data
    low, high, method = result
    queries = None if query_diffs is None else len(query_diffs)
    return GainInterval(low, high, method, len(paired), queries, center, note)


def _query_diffs(
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], metric: str
) -> tuple[np.ndarray | None, str | None]:
    """``x_q`` (mean over the pairs of row − baseline per valid query), or (None, why not):
    the why is None when no record has per-query data (nothing to explain)."""
    values = [(per_query_values(r, metric), per_query_values(b, metric)) for r, b in pairs]
    have = sum((r is not None) + (b is not None) for r, b in values)
    if have == 0:
        return None, None
    if have < 2 * len(pairs):
        if all(per_query_block(r) is not None and per_query_block(b) is not None
               for r, b in pairs):
            return None, f"no per-query {metric} (seed spread only)"
        return None, (f"per-query data in {have} of the {2 * len(pairs)} paired records only "
                      f"(seed spread only)")
    first = per_query_block(pairs[0][0])
    assert first is not None
    for r, b in pairs:
        for rec in (r, b):
            block = per_query_block(rec)
            assert block is not None
            if (block.get("queries"), block.get("query_digest")) != (
                    first.get("queries"), first.get("query_digest")):
                return None, "the seeds ranked different query lists (seed spread only)"
    skipped = np.isnan(values[0][0])  # type: ignore[arg-type]
    for r, b in values:
        assert r is not None and b is not None
        if not (np.array_equal(np.isnan(r), skipped) and np.array_equal(np.isnan(b), skipped)):
            return None, "the records skip different queries (seed spread only)"
    keep = ~skipped
    diffs = np.mean([r[keep] - b[keep] for r, b in values], axis=0)  # type: ignore[index]
    return diffs, None
