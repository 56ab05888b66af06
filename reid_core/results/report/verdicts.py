"""The verdict of a published claim, per cell and per row (pure logic, no rendering).

**Per cell** (row and published column, rows other than the baseline and reference rows):

* published gain ``g_p`` = published(row) − published(baseline row), same column;
  reproduced gain ``g_r`` = mean(row) − mean(baseline row) over the seeds (records) of each.
* ``claim_holds`` is NA unless both gains exist and ``g_p != 0``; then it is
  ``sign(g_r) == sign(g_p)`` (the sign alone, no verdict is drawn from it).
* ``verdict`` comes from the cell's confidence interval ``[gain_low, gain_high]`` of the
  gain (:mod:`~reid_core.results.report.uncertainty`: paired bootstrap over the queries, combined
  with the seed-to-seed spread; the seed spread alone for records without per-query data), by
  :func:`interval_verdict`: ``holds`` when the interval lies entirely on the published gain's
  side of 0, ``contradicted`` when entirely on the other side, ``inconclusive`` otherwise
  (an interval touching 0 included), whenever there is no interval (rows whose query sets
  could not be paired), and whenever fewer than :data:`MIN_SEEDS` seeds are paired: the
  interval of one training run (its query bootstrap) is shown, but one run is not evidence
  for or against a claim, whatever its sign or its test-set interval.
* Other verdicts: ``baseline``, ``reference only``, ``not run`` (no record for the row/column),
  ``no baseline row`` (the table names none: values only), ``no baseline run`` (row run,
  baseline not), ``no published gain`` (a published value is
  missing or the published gain is 0). Cells of measured-quantity tables (parameter counts)
  are ``measured`` / ``not run`` / ``no config``: no gains are computed for them.

**Claims between rows** (a table's ``claims``, e.g. "stacking drops accuracy"):
:func:`claim_verdict`, the same interval rule on row − against, judged against the direction
the text states (the published difference is shown beside it, not used: where the paper's own
numbers disagree with its text, the report says so).

**Per row**: :func:`row_verdict` summarises a row's cells (``claim holds (2/2)``, ``mixed: ...``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

import pandas as pd

from reid_core.results.paper_tables import Row

__all__ = [
    "BASELINE", "CHECKED", "CONTRADICTED", "HOLDS", "INCONCLUSIVE", "MEASURED", "NOT_RUN",
    "NO_BASELINE_ROW", "NO_BASELINE_RUN", "NO_CONFIG", "NO_PUBLISHED_GAIN", "REFERENCE",
    "cell_verdict", "claim_verdict",
    "data_verdict", "interval_verdict", "row_verdict",
]

HOLDS: Final[str] = "holds"
CONTRADICTED: Final[str] = "contradicted"
INCONCLUSIVE: Final[str] = "inconclusive"
NOT_RUN: Final[str] = "not run"
BASELINE: Final[str] = "baseline"
REFERENCE: Final[str] = "reference only"
NO_BASELINE_RUN: Final[str] = "no baseline run"
#: A reproduced cell of a table that names no baseline row (a comparison with other methods):
#: its values are shown (and Δ at paper scale), there is no gain to judge.
NO_BASELINE_ROW: Final[str] = "no baseline row"
NO_PUBLISHED_GAIN: Final[str] = "no published gain"
MEASURED: Final[str] = "measured"
NO_CONFIG: Final[str] = "no config"
#: Paired seeds a cell needs before its interval may decide (fewer: ``inconclusive``).
MIN_SEEDS: Final[int] = 2
#: The verdicts of a checked claim (both gains known).
CHECKED: Final[tuple[str, ...]] = (HOLDS, CONTRADICTED, INCONCLUSIVE)


def interval_verdict(published_gain: float, low: float, high: float) -> str:
    """``holds`` / ``contradicted`` / ``inconclusive`` of an interval ``[low, high]`` of the
    reproduced gain against a non-zero published gain (NaN bounds: no interval, inconclusive).

    The interval must lie *strictly* on one side of 0: ``holds`` when it is entirely on the
    side of the published gain's sign, ``contradicted`` when entirely on the other side.
    """
    if math.isnan(published_gain) or published_gain == 0:
        raise ValueError(f"a verdict needs a non-zero published gain, got {published_gain!r}")
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    side = math.copysign(1.0, published_gain)
    near, far = sorted((side * low, side * high))
    if near > 0:
        return HOLDS
    if far < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def cell_verdict(
    line: Mapping[str, Any], row: Row, is_baseline: bool, n_row: int, n_base: int | None
) -> tuple[Any, str]:
    """(claim_holds, verdict) of one cell of a metrics table (the rule: module docstring).

    ``line`` holds the cell's ``published_gain``, ``reproduced_gain`` and its interval
    ``gain_low`` / ``gain_high`` (NaN: none); ``n_row`` / ``n_base`` are the records of the
    row / the baseline row in that column (None: the table has no baseline row).
    """
    if row.reference_only:
        return pd.NA, REFERENCE
    if is_baseline:
        return pd.NA, BASELINE
    if n_row == 0:
        return pd.NA, NOT_RUN
    if n_base is None:
        return pd.NA, NO_BASELINE_ROW
    if not n_base:
        return pd.NA, NO_BASELINE_RUN
    g_p, g_r = line["published_gain"], line["reproduced_gain"]
    if math.isnan(g_p) or g_p == 0:
        return pd.NA, NO_PUBLISHED_GAIN
    holds = math.copysign(1, g_r) == math.copysign(1, g_p) and g_r != 0
    if line.get("paired_seeds", 0) < MIN_SEEDS:
        # A query bootstrap covers the test set, not training noise (seed to seed, the larger
        # part at this scale): one training run is evidence of neither outcome.
        return holds, INCONCLUSIVE
    return holds, interval_verdict(g_p, line["gain_low"], line["gain_high"])


def claim_verdict(sign: int, n_row: int, n_against: int, paired_seeds: int,
                  low: float, high: float) -> str:
    """Verdict of one cell of a claim between two rows
    (:class:`~reid_core.results.paper_tables.Claim`): the interval ``[low, high]`` of
    row − against judged against the text's direction (``sign`` -1: lower, +1: higher) by
    :func:`interval_verdict`, with the same rules as a gain (``not run`` without records of
    both rows, ``inconclusive`` below :data:`MIN_SEEDS` paired seeds)."""
    if not n_row or not n_against:
        return NOT_RUN
    if paired_seeds < MIN_SEEDS:
        return INCONCLUSIVE
    return interval_verdict(float(sign), low, high)


def data_verdict(row: Row, n_row: int) -> str:
    """Status of a measured-quantity cell: reference only / no config / measured / not run."""
    if row.reference_only:
        return REFERENCE
    if row.config is None:
        return NO_CONFIG
    return MEASURED if n_row else NOT_RUN


def row_verdict(lines: pd.DataFrame) -> str:
    """One verdict for a printed row, from its per-column frame lines."""
    verdicts = list(lines["verdict"])
    first = lines.iloc[0]
    if first["reference_only"]:
        return REFERENCE
    if first["is_baseline"]:
        return BASELINE if (lines["n"] > 0).any() else f"{BASELINE} ({NOT_RUN})"
    if all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    if MEASURED in verdicts:
        return MEASURED
    if all(v == NO_CONFIG for v in verdicts):
        return NO_CONFIG
    counts = Counter(v for v in verdicts if v in CHECKED)
    total = sum(counts.values())
    if not total:
        for verdict in (NO_BASELINE_ROW, NO_BASELINE_RUN):
            if verdict in verdicts:
                return verdict
        return NO_PUBLISHED_GAIN
    unchecked = verdicts.count(NO_BASELINE_RUN)
    suffix = (f"; {unchecked} column{'s' if unchecked > 1 else ''} unchecked "
              f"({NO_BASELINE_RUN})" if unchecked else "")
    return _checked_verdict(counts, total) + suffix


def _checked_verdict(counts: Counter[str], total: int) -> str:
    """Row verdict over its ``total`` checked cells."""
    if counts[HOLDS] == total:
        return f"claim holds ({total}/{total})"
    if counts[CONTRADICTED] == total:
        return f"contradicted ({total}/{total})"
    if counts[INCONCLUSIVE] == total:
        return f"inconclusive ({total}/{total})"
    parts = [f"{counts[v]} {label}" for v, label in
             ((HOLDS, "hold"), (CONTRADICTED, "contradicted"), (INCONCLUSIVE, "inconclusive"))
             if counts[v]]
    return "mixed: " + ", ".join(parts)
