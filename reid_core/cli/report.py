"""``report``: the published vs reproduced report of one paper table, from the run records."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from reid_core.app.paper_configs import PROFILES
from reid_core.cli import options

NAME = "report"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="published vs reproduced report of one paper table")
    p.add_argument("table_id", metavar="table-id", help="paper table id, e.g. rga_table1")
    options.add_runs_dir(p)
    options.add_out(p, options.REPORTS_DIR, "directory for the report")
    p.add_argument("--dataset", default=None,
                   help="only use records on this dataset (e.g. cuhk03np-labeled, synthetic)")
    p.add_argument("--profile", default=None, choices=list(PROFILES),
                   help="only the runs of this reproduce profile (its recipes): "
                        + "; ".join(f"{name}: {prof.help}" for name, prof in PROFILES.items())
                        + ". Default: every record, the newest recipe of each row")
    p.add_argument("--compare-to", default=None, metavar="DATASET",
                   help="smoke profile: published dataset to line synthetic runs up with "
                        "(default: the table's first)")
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    """Write the report of the table's declared kind (comparison, cost) and print its summary;
    user errors (an unknown table, flags that do not apply, nothing to report) are raised for
    the CLI to print."""
    from reid_core.app.tables import render_table_report

    path = render_table_report(args.table_id, Path(args.runs), Path(args.out), console,
                               dataset=args.dataset, profile=args.profile,
                               compare_to=args.compare_to)
    console.print(f"report written to {path}", highlight=False, soft_wrap=True)
    return 0
