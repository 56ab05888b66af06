"""The Markdown of a metrics report: the paper-layout table, the gains table, the summary
(claims, rows not run, runs per row, records not used) and the reading notes. The numbers come
from the comparison frame (:mod:`~reid_core.results.report.comparison`); nothing is computed
here but text.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Final

import pandas as pd

from reid_core.metrics.rank import AP_DEFINITIONS, AP_MODES
from reid_core.results.identity import recipe_key
from reid_core.results.report.cell_values import metric_value, record_dataset
from reid_core.results.report.comparison import Comparison, gain_rows, rows_in_order
from reid_core.results.report.markdown import (
    column_label, fmt_published, fmt_reproduced, fmt_signed, md_table)
from reid_core.results.report.metrics_header import header_lines
from reid_core.results.report.uncertainty import QUERIES, QUERIES_AND_SEEDS, SEEDS
from reid_core.results.report.verdicts import (
    CHECKED, CONTRADICTED, HOLDS, INCONCLUSIVE, NO_BASELINE_RUN, NOT_RUN, REFERENCE,
    row_verdict)

__all__ = ["render_markdown"]


def _layout_table(comp: Comparison) -> list[str]:
    """The paper's layout: one block per published column (published / reproduced / Δ)."""
    with_delta = comp.comparable
    # Counts are exact, so also show them at the paper's precision: which printed digit matches.
    rounded = comp.table.kind == "parameters"
    decimals = _published_decimals(comp) if rounded else {}
    header = ["Group", "Row"]
    for column in comp.table.columns:
        label = column_label(column)
        header += [f"{label} published", f"{label} reproduced"]
        if rounded:
            header.append(f"{label} reproduced, rounded as published")
        if with_delta:
            header.append(f"{label} Δ")
    header.append("Verdict")
    lines: list[list[str]] = []
    previous_group: str | None = None
    for row, sub in rows_in_order(comp):
        group = row.group or ""
        cells = [group if group != previous_group else "", row.name]
        previous_group = group
        for _, line in sub.iterrows():
            cells.append(fmt_published(line["published"], line["flag"], line["unit"]))
            if row.reference_only:
                cells.append(REFERENCE)
            else:
                cells.append(fmt_reproduced(line["reproduced"], line["std"], line["n"]))
            if rounded:
                cells.append(_fmt_rounded(line, decimals.get((line["dataset"], line["metric"]), 1)))
            if with_delta:
                cells.append(fmt_signed(line["delta"]))
        cells.append(row_verdict(sub))
        lines.append(cells)
    return md_table(header, lines, right_from=2, right_to=len(header) - 1)


def _ap_definitions(comp: Comparison) -> list[str]:
    """mAP per row under both AP definitions (records evaluated since both are stored):
    the table above uses each run's own ``eval.ap_mode``."""
    if not any(c.metric == "mAP" for c in comp.table.columns):
        return []
    keys = [f"mAP_{mode}" for mode in AP_MODES]
    lines = []
    for row, _ in rows_in_order(comp):
        records = [r for r in comp.selection.records if r.get("config_name") == row.config]
        values = [[metric_value(r, k) for k in keys] for r in records]
        values = [v for v in values if None not in v]
        if not values:
            continue
        means = [sum(v[i] for v in values) / len(values) for i in range(len(keys))]
        lines.append([row.name, *(f"{m:.2f}" for m in means), fmt_signed(means[1] - means[0]),
                      str(len(values))])
    if not lines:
        return []
    header = ["Row", *(f"mAP ({mode})" for mode in AP_MODES), "trapezoid − standard", "n"]
    return ["## mAP under both AP definitions", "",
            "From the same rankings (mean over the records of each row). The tables above use "
            "each run's own definition (header: *mAP's AP definition*); "
            + "; ".join(f"*{mode}* = {text}" for mode, text in AP_DEFINITIONS.items()) + ".",
            "", *md_table(header, lines, right_from=1), ""]


def _published_decimals(comp: Comparison) -> dict[tuple[str, str], int]:
    """Per column (dataset, metric), the most decimals its published values are printed with."""
    out: dict[tuple[str, str], int] = {}
    for _, line in comp.frame.iterrows():
        value = line["published"]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        text = repr(float(value))
        places = len(text.split(".")[1].rstrip("0")) if "." in text else 0
        key = (line["dataset"], line["metric"])
        out[key] = max(out.get(key, 0), places)
    return out


def _fmt_rounded(line: pd.Series, decimals: int) -> str:
    """``25.1 (=)`` when the reproduced value rounds to the published one, ``25.1 (≠ 26.1)``
    when not, ``25.1`` without a published value."""
    if line["n"] == 0 or math.isnan(line["reproduced"]):
        return ""
    text = f"{line['reproduced']:.{decimals}f}"
    published = line["published"]
    if published is None or math.isnan(published):
        return text
    return f"{text} (=)" if text == f"{published:.{decimals}f}" else f"{text} (≠ {published:g})"


_SYMBOL: Final[dict[str, str]] = {HOLDS: "✓", CONTRADICTED: "✗", INCONCLUSIVE: "~"}


def _gains_table(comp: Comparison) -> list[str]:
    """Per row and column: published gain / reproduced gain [interval] and the cell verdict,
    then the numbered notes of the cells' intervals."""
    header = ["Row"] + [column_label(c) for c in comp.table.columns]
    lines = []
    notes: list[str] = []
    for row, sub in rows_in_order(comp):
        if row.reference_only or bool(sub["is_baseline"].iloc[0]):
            continue
        cells = [row.name]
        for (_, line), column in zip(sub.iterrows(), comp.table.columns):
            paper = fmt_signed(line["published_gain"], 1) or "—"
            text = f"{paper} / {_fmt_gain(line)}"
            if isinstance(line["interval_note"], str) and line["verdict"] in CHECKED:
                notes.append(f"{len(notes) + 1}. {row.name}, {column_label(column)}: "
                             f"{line['interval_note']}")
                text += f" (note {len(notes)})"
            cells.append(text)
        lines.append(cells)
    out = md_table(header, lines)
    if notes:
        out += ["", "Notes on the intervals:", ""] + notes
    return out


def _claims_between_rows(comp: Comparison) -> list[str]:
    """Per claim of the text between rows: its words, then per pair and column the published
    and the reproduced difference (row − against) with its interval and verdict."""
    frame = comp.claims
    if not len(frame):
        return []
    out = ["## Claims between rows (from the text)", "",
           "Each cell: published difference / reproduced difference (row − against) "
           f"[{comp.bootstrap.percent} confidence interval] and verdict, judged against the "
           "direction the text states; the rows are paired by seed as for the gains. "
           "‡ = the paper's own numbers do not show the stated direction in that cell.", ""]
    header = ["Row", "against"] + [column_label(c) for c in comp.table.columns]
    for claim in comp.table.claims:
        mine = frame[frame["claim"] == claim.claim]
        out += [f"### {claim.claim}", "",
                f"> {claim.source}", "",
                f"Claimed: each row scores **{claim.direction}** than the row it is set "
                f"against.", ""]
        lines = []
        for name, against in claim.pairs:
            pair = mine[(mine["row"] == name) & (mine["against"] == against)]
            cells = [name, against]
            for _, line in pair.iterrows():
                paper = fmt_signed(line["published_difference"], 2) or "—"
                if line["paper_agrees"] is not pd.NA and not line["paper_agrees"]:
                    paper += " ‡"
                cells.append(f"{paper} / {_fmt_claim_cell(line)}")
            lines.append(cells)
        out += md_table(header, lines) + [""]
    return out


def _fmt_claim_cell(line: pd.Series) -> str:
    """The reproduced side of a claim cell (``not run`` when a row has no record)."""
    if line["verdict"] == NOT_RUN:
        return NOT_RUN
    text = fmt_signed(line["reproduced_difference"]) + _fmt_interval(line)
    symbol = _SYMBOL.get(line["verdict"])
    return f"{text} {symbol} {line['verdict']}" if symbol else f"{text} ({line['verdict']})"


def _claims_between_rows_line(comp: Comparison) -> list[str]:
    """The summary line of the claims between rows (none: no line)."""
    frame = comp.claims
    if not len(frame):
        return []
    checked = frame[frame["verdict"].isin(CHECKED)]
    counts = Counter(checked["verdict"])
    known = frame["paper_agrees"].dropna()
    out = [f"- **Claims between rows (from the text):** {len(comp.table.claims)} claim(s), "
           f"{len(checked)} cell(s) with records of both rows: {counts[HOLDS]} hold, "
           f"{counts[CONTRADICTED]} contradicted, {counts[INCONCLUSIVE]} inconclusive. The "
           f"paper's own numbers show the stated direction in {int(known.sum())} of "
           f"{len(known)} published cells."]
    for claim in comp.table.claims:
        mine = checked[checked["claim"] == claim.claim]
        c = Counter(mine["verdict"])
        out.append(f"  - {claim.claim}: {c[HOLDS]} hold, {c[CONTRADICTED]} contradicted, "
                   f"{c[INCONCLUSIVE]} inconclusive")
    return out


def _fmt_interval(line: pd.Series) -> str:
    """`` [+1.05, +5.95]`` (empty when the cell has no interval)."""
    if math.isnan(line["gain_low"]):
        return ""
    return f" [{fmt_signed(line['gain_low'])}, {fmt_signed(line['gain_high'])}]"


def _fmt_gain(line: pd.Series) -> str:
    """The reproduced side of a gains cell: ``+3.50 [+1.05, +5.95] ✓ holds``."""
    verdict = line["verdict"]
    if verdict in (NOT_RUN, NO_BASELINE_RUN):
        return verdict
    text = fmt_signed(line["reproduced_gain"]) + _fmt_interval(line)
    symbol = _SYMBOL.get(verdict)
    return f"{text} {symbol} {verdict}" if symbol else f"{text} ({verdict})"




def _summary(comp: Comparison) -> list[str]:
    """Claims checked / holding, single-seed verdicts, rows not run, runs per row."""
    table = comp.table
    out = ["## Summary", ""]
    if table.rules.retrieval_metrics:
        out += _claims_lines(comp) + _claims_between_rows_line(comp)
    not_run = [row.name for row, sub in rows_in_order(comp)
               if not row.reference_only and row.config is not None and not (sub["n"] > 0).any()]
    out.append(f"- **Rows not run** ({len(not_run)}): "
               + (", ".join(not_run) if not_run else "none"))
    reference = [row.name for row in table.rows if row.reference_only]
    if reference:
        out.append(f"- **Reference-only rows** (other methods, published value only): "
                   f"{', '.join(reference)}")
    out += ["", "### Runs", ""] + _runs_lines(comp)
    if comp.selection.ignored:
        out += ["", "### Records not used", ""]
        out += [f"- `{run_id}`: {reason}" for run_id, reason in comp.selection.ignored]
    return out + [""]


def _claims_lines(comp: Comparison) -> list[str]:
    """The verdict counts, and the test behind them with how many cells each method served."""
    frame = comp.frame
    checked = frame[frame["verdict"].isin(CHECKED)]
    counts = Counter(checked["verdict"])
    base = comp.table.baseline_row
    if base is None:
        return ["- **Claims checked:** none (the table names no baseline row)"]
    text = (f"- **Claims checked:** {len(checked)} (row × column cells where both the published "
            f"and the reproduced gain over {base} exist): {counts[HOLDS]} hold, "
            f"{counts[CONTRADICTED]} contradicted, {counts[INCONCLUSIVE]} inconclusive.")
    if not len(checked):
        return [text]
    return [text, _test_line(comp, checked)]


def _test_line(comp: Comparison, checked: pd.DataFrame) -> str:
    """How the verdicts were decided (method, level, replicates, generator seed) and on what."""
    b = comp.bootstrap
    methods = Counter(m if isinstance(m, str) else None for m in checked["interval"])
    uses = []
    if methods[QUERIES_AND_SEEDS]:
        seeds = checked.loc[checked["interval"] == QUERIES_AND_SEEDS, "paired_seeds"]
        low, high = int(seeds.min()), int(seeds.max())
        uses.append(f"{methods[QUERIES_AND_SEEDS]} by the paired bootstrap over queries "
                    f"combined with the seed spread ({low if low == high else f'{low}–{high}'} "
                    f"seeds)")
    if methods[QUERIES]:
        uses.append(f"{methods[QUERIES]} by the paired bootstrap over queries of a single seed "
                    f"(test-set noise only: the seed-to-seed noise is not estimated)")
    if methods[SEEDS]:
        uses.append(f"{methods[SEEDS]} by the seed spread alone (Student t-interval over the "
                    f"paired seed differences: the records carry no per-query data)")
    if methods[None]:
        uses.append(f"{methods[None]} without an interval (a single seed and no per-query "
                    f"data, or rows that could not be paired): inconclusive")
    return (f"- **Test:** a {b.percent} confidence interval of each reproduced gain; *holds* "
            f"when it lies entirely on the published gain's side of 0, *contradicted* when "
            f"entirely on the other side, else *inconclusive*. Paired bootstrap over the "
            f"queries ({b.resamples} resamples, percentile interval, generator "
            f"`numpy.random.default_rng({b.seed})` per cell, so the intervals are "
            f"reproducible), with the seed-to-seed spread added as a Student t over the paired "
            f"seeds when there are ≥ 2. Cells decided: " + "; ".join(uses) + ".")


def _runs_lines(comp: Comparison) -> list[str]:
    """One bullet per row that has records: config, and per dataset the seeds and recipe.

    The recipe is :func:`~reid_core.results.identity.recipe_key` (the config identity without
    its seed, and the data; ``config_hash`` covers the seed too, so it differs between the
    seeds of one recipe).
    """
    out = []
    for row in comp.table.rows:
        mine = [r for r in comp.selection.records if r.get("config_name") == row.config]
        if mine:
            parts = [_dataset_runs(name, [r for r in mine if record_dataset(r) == name])
                     for name in sorted({record_dataset(r) for r in mine})]
            out.append(f"- {row.name} (`{row.config}`): " + "; ".join(parts))
    return out or ["- no run records for this table yet"]


def _dataset_runs(name: str, records: list[dict[str, Any]]) -> str:
    """``cuhk03np-labeled: seeds 0, 1 (2 records, recipe `ab12...`)``."""
    seeds = sorted(str(r.get("seed")) for r in records)
    recipes = sorted({key for r in records if (key := recipe_key(r)) is not None})
    plural = "s" if len(seeds) > 1 else ""
    recipe = f", recipe `{', '.join(recipes)}`" if recipes else ""
    return f"{name}: seed{plural} {', '.join(seeds)} ({len(seeds)} record{plural}{recipe})"


def _notes(comp: Comparison) -> list[str]:
    """Legend, verdict rule, and the notes of reconstructed / annotated published cells."""
    out = ["## Reading this report", "",
           "- **published**: as printed in the paper. † = reconstructed from damaged extraction "
           "text (see the cell notes below); — (missing) = the paper gives no number.",
           "- **reproduced**: mean ± sample std over the run records (one per seed), n = "
           "number of records; *not run* = no record for the row's config (never shown as 0)."]
    if comp.comparable:
        out.append("- **Δ** = reproduced − published, in the table's unit.")
    else:
        out.append("- **Δ** is not given: smoke-scale values are not comparable in absolute "
                   "terms with the published ones.")
    if gain_rows(comp):
        out += [
            f"- **Gains** are over the baseline row ({comp.table.baseline_row}), same column: "
            "published = published(row) − published(baseline), reproduced = mean(row) − "
            f"mean(baseline), then in brackets its {comp.bootstrap.percent} confidence "
            "interval. The rows are paired by seed (same seed, same queries; a pair whose "
            "records state different data or splits is refused). With per-query results in "
            "the records: a paired bootstrap over the queries (the same resampled queries for "
            "both rows and every seed) plus, with ≥ 2 paired seeds, the spread of the paired "
            "seed differences as a Student t; without: the Student t-interval of the paired "
            "seed differences (≥ 2 seeds), or no interval (one seed). The method in full: "
            "`reid_core/results/report/uncertainty.py`.",
            "- **Verdict** per cell: *holds* (✓) when the interval lies entirely on the "
            "published gain's side of 0, *contradicted* (✗) when entirely on the other side, "
            "*inconclusive* (~) otherwise or without an interval: a single seed never decides "
            "a claim by the sign of its gain alone. The row verdict summarises its cells.",
        ]
    cell_notes = [(row.name, column_label(col), cell.flag, cell.note)
                  for row in comp.table.rows for col, cell in zip(comp.table.columns, row.cells)
                  if cell.note]
    if cell_notes:
        out += ["", "### Published cell notes", ""]
        out += [f"- {'† ' if flag == 'reconstructed' else ''}{row} / {col} ({flag}): {note}"
                for row, col, flag, note in cell_notes]
    row_notes = [(row.name, row.note) for row in comp.table.rows if row.note]
    if row_notes:
        out += ["", "### Row notes", ""] + [f"- {name}: {note}" for name, note in row_notes]
    return out + [""]



def render_markdown(comp: Comparison, values_png: str, gains_png: str | None) -> str:
    """The report's Markdown text (plots referenced by relative file names)."""
    table = comp.table
    out = header_lines(comp)
    out += ["## Table (paper layout)", ""] + _layout_table(comp) + [""]
    if gain_rows(comp):
        out += [f"## Gains over the baseline ({table.baseline_row})", "",
                f"Each cell: published gain / reproduced gain "
                f"[{comp.bootstrap.percent} confidence interval] and verdict.", ""]
        out += _gains_table(comp) + [""]
    out += _claims_between_rows(comp)
    out += _ap_definitions(comp)
    out += _summary(comp)
    out += ["## Plots", "", f"![published vs reproduced]({values_png})", ""]
    if gains_png is not None:
        out += [f"![gains over the baseline]({gains_png})", ""]
    out += _notes(comp)
    return "\n".join(out).rstrip() + "\n"
