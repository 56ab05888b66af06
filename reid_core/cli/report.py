"""``report``: the published vs reproduced report of one paper table, from the run records."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from reid_core.cli import options

NAME = "report"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="published vs reproduced report of one paper table")
    p.add_argument("table_id", metavar="table-id", help="paper table id, e.g. rga_table1")
    options.add_runs_dir(p)
    options.add_out(p, "results/reports", "directory for the report")
    p.add_argument("--dataset", default=None,
                   help="only use records on this dataset (e.g. cuhk03np-labeled, synthetic)")
    p.add_argument("--profile", default=None, choices=("smoke", "paper"),
                   help="smoke (synthetic runs) or paper (real datasets); default: inferred")
    p.add_argument("--compare-to", default=None, metavar="DATASET",
                   help="smoke profile: published dataset to line synthetic runs up with "
                        "(default: the table's first)")
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    # The one call site of the report renderer. It is to become
    # reid_core.app.tables.render_table_report(args.table_id, Path(args.runs), Path(args.out),
    # console), which picks the report of the table's kind; until then, today's code below.
    path = _render_report(args, console)
    console.print(f"report written to {path}", highlight=False, soft_wrap=True)
    return 0


def _render_report(args: argparse.Namespace, console: Console) -> Path:
    """Write the report of ``args.table_id`` and print its summary; user errors (an unknown
    table, flags that do not apply, nothing to report) are raised for the CLI to print."""
    from rich.table import Table

    from reid_core.results.cost_report import cost_environment, is_cost_table, render_cost_report
    from reid_core.results.paper_tables import load_table
    from reid_core.results.report import compare, load_records, row_summary, write_report

    paper_table = load_table(args.table_id)
    with warnings.catch_warnings(record=True) as skipped:  # unreadable records: one note each
        warnings.simplefilter("always", UserWarning)
        records = load_records(Path(args.runs))
    for w in skipped:
        console.print(f"[yellow]note[/]: {escape(str(w.message))}", highlight=False,
                      soft_wrap=True)
    # A memory / FPS table (CSA Table 6) has its own report, written to the same file: the
    # metrics report would replace it with an all-"not run" table.
    cost = is_cost_table(paper_table)
    if cost and (args.dataset or args.profile or args.compare_to):
        raise ValueError(f"{args.table_id} is a cost table (memory / FPS measurements): "
                         f"--dataset, --profile and --compare-to do not apply")
    comp = None if cost else compare(paper_table, records, dataset=args.dataset,
                                     profile=args.profile, compare_to=args.compare_to)
    # EmptyReportError (nothing to report: the existing report is left as it was) is a user
    # error, printed by the CLI.
    path = (render_cost_report(args.table_id, records, Path(args.out)) if comp is None
            else write_report(comp, Path(args.out)))
    if comp is not None:
        table = Table(title=f"{args.table_id} ({comp.selection.profile} profile, "
                            f"{len(comp.selection.records)} records)")
        table.add_column("row")
        table.add_column("n", justify="right")
        table.add_column("verdict")
        for row, n, verdict in row_summary(comp):
            table.add_row(row, str(n), verdict)
        console.print(table)
    environment = (cost_environment(paper_table, records) if comp is None
                   else comp.environment)
    for warning in environment.warnings():  # the report header lists rows per version
        console.print(warning, style="bold yellow", markup=False, highlight=False,
                      soft_wrap=True)
    return path
