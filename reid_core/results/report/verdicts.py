"""The verdict of a published claim, per cell and per row (pure logic, no rendering).

**Per cell** (row and published column, rows other than the baseline and reference rows):

* published gain ``g_p`` = published(row) − published(baseline row), same column;
  reproduced gain ``g_r`` = mean(row) − mean(baseline row) over the seeds (records) of each.
* ``claim_holds`` is NA unless both gains exist and ``g_p != 0``; then it is
  ``sign(g_r) == sign(g_p)``.
* ``verdict`` refines it with the seed noise: with at least 2 seeds on both rows,
  ``gain_se = sqrt(std_row**2 / n_row + std_base**2 / n_base)`` (standard error of the
  difference of the two means); if ``|g_r| <= gain_se`` the verdict is ``inconclusive``
  whatever the sign. Otherwise ``holds`` / ``does not hold`` follow ``claim_holds``. With a
  single seed on either row there is no noise estimate: the verdict is the sign alone.
* Other verdicts: ``baseline``, ``reference only``, ``not run`` (no record for the row/column),
  ``no baseline run`` (row run, baseline not), ``no published gain`` (a published value is
  missing or the published gain is 0). Cells of measured-quantity tables (parameter counts)
  are ``measured`` / ``not run`` / ``no config``: no gains are computed for them.

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
    "BASELINE", "CHECKED", "HOLDS", "INCONCLUSIVE", "MEASURED", "NOT_HOLDS", "NOT_RUN",
    "NO_BASELINE_RUN", "NO_CONFIG", "NO_PUBLISHED_GAIN", "REFERENCE", "cell_verdict",
    "data_verdict", "row_verdict",
]

HOLDS: Final[str] = "holds"
NOT_HOLDS: Final[str] = "does not hold"
INCONCLUSIVE: Final[str] = "inconclusive"
NOT_RUN: Final[str] = "not run"
BASELINE: Final[str] = "baseline"
REFERENCE: Final[str] = "reference only"
NO_BASELINE_RUN: Final[str] = "no baseline run"
NO_PUBLISHED_GAIN: Final[str] = "no published gain"
MEASURED: Final[str] = "measured"
NO_CONFIG: Final[str] = "no config"
#: The verdicts of a checked claim (both gains known).
CHECKED: Final[tuple[str, ...]] = (HOLDS, NOT_HOLDS, INCONCLUSIVE)


def cell_verdict(
    line: Mapping[str, Any], row: Row, is_baseline: bool, n_row: int, n_base: int | None
) -> tuple[Any, str]:
    """(claim_holds, verdict) of one cell of a metrics table (the rule: module docstring).

    ``line`` holds the cell's ``published_gain``, ``reproduced_gain`` and ``gain_se``; ``n_row``
    / ``n_base`` are the records of the row / the baseline row in that column (None: the table
    has no baseline row).
    """
    if row.reference_only:
        return pd.NA, REFERENCE
    if is_baseline:
        return pd.NA, BASELINE
    if n_row == 0:
        return pd.NA, NOT_RUN
    if not n_base:
        return pd.NA, NO_BASELINE_RUN
    g_p, g_r, se = line["published_gain"], line["reproduced_gain"], line["gain_se"]
    if math.isnan(g_p) or g_p == 0:
        return pd.NA, NO_PUBLISHED_GAIN
    holds = math.copysign(1, g_r) == math.copysign(1, g_p) and g_r != 0
    if not math.isnan(se) and abs(g_r) <= se:
        return holds, INCONCLUSIVE
    return holds, HOLDS if holds else NOT_HOLDS


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
        return NO_BASELINE_RUN if NO_BASELINE_RUN in verdicts else NO_PUBLISHED_GAIN
    unchecked = verdicts.count(NO_BASELINE_RUN)
    suffix = (f"; {unchecked} column{'s' if unchecked > 1 else ''} unchecked "
              f"({NO_BASELINE_RUN})" if unchecked else "")
    return _checked_verdict(counts, total) + suffix


def _checked_verdict(counts: Counter[str], total: int) -> str:
    """Row verdict over its ``total`` checked cells."""
    if counts[HOLDS] == total:
        return f"claim holds ({total}/{total})"
    if counts[NOT_HOLDS] == total:
        return f"does not hold (0/{total})"
    if counts[INCONCLUSIVE] == total:
        return f"inconclusive ({total}/{total})"
    parts = [f"{counts[v]} {label}" for v, label in
             ((HOLDS, "hold"), (NOT_HOLDS, "do not hold"), (INCONCLUSIVE, "inconclusive"))
             if counts[v]]
    return "mixed: " + ", ".join(parts)
