"""``reproduce``: run every reproducible row of one paper table and write its report.

``python -m reid_core reproduce <table-id> [flags]`` is what the scripts in ``reproduce/`` run
(each is one call of :func:`reproduce_table`); the flags after the table id are those of
:func:`reid_core.app.reproduce.build_parser`, and the table's declared kind decides what a row
run is (train, count parameters, measure cost: :mod:`reid_core.app.tables`). ``--list`` shows
the runnable tables: those of ``paper_tables/`` whose kind reproduces rows and whose
reproducible rows all have a variant in their paper's ``configs/papers/<paper>.yaml``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from reid_core.cli.errors import run_guarded

if TYPE_CHECKING:
    from reid_core.results.paper_tables import PaperTable

NAME = "reproduce"
#: How the scripts name themselves in ``--help`` (kept from before the sub-command existed).
SCRIPT_PROG = "reproduce {table_id}"
COMMAND_PROG = "python -m reid_core reproduce {table_id}"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="run the rows of a paper table and write its report",
        usage="%(prog)s [-h] (--list | table-id [flags ...])",
        description="Train and evaluate (or measure) every reproducible row of a published "
                    "table, x seeds, then write results/reports/<table-id>.md. Finished runs "
                    "are skipped and an interrupted one resumes, so re-running the same "
                    "command completes the table.",
        epilog="The flags after the table id are the reproduce scripts' (e.g. --profile paper "
               "--data-root DIR --device cuda --seeds 0 1 2 --rows NAME ...); "
               "'python -m reid_core reproduce <table-id> --help' lists them with the table's "
               "caption.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("table_id", nargs="?", metavar="table-id",
                      help="paper table id, e.g. rga_table1 (see --list)")
    what.add_argument("--list", action="store_true", help="list the tables that can be run")
    # Everything after the table id goes to the table's own parser (its --help names the table).
    p.add_argument("table_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    if args.list:
        print_runnable(console)
        return 0
    return _run_table(args.table_id, args.table_args,
                      prog=COMMAND_PROG.format(table_id=args.table_id))


def reproduce_table(table_id: str, argv: Sequence[str] | None = None, *,
                    prog: str | None = None) -> int:
    """Reproduce ``table_id`` with the flags ``argv`` (default: the process's arguments); the
    entry point of the ``reproduce/`` scripts. Returns the exit code."""
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog or SCRIPT_PROG.format(table_id=table_id)
    return run_guarded(lambda: _run_table(table_id, argv, prog=prog), Console())


def _run_table(table_id: str, argv: Sequence[str], *, prog: str) -> int:
    from reid_core.app import reproduce
    from reid_core.results.paper_tables import PaperTableError, list_tables

    if table_id not in list_tables():  # a typo: name the tables that can be run
        runnable = ", ".join(t.table_id for t in runnable_tables())
        raise PaperTableError(f"unknown paper table {table_id!r}; runnable tables: {runnable} "
                              f"(python -m reid_core reproduce --list)")
    # The table's declared kind picks the row runner, the report and a fixed profile
    # (reid_core.app.tables: parameter counts and costs always run the paper-size model).
    return reproduce.main(table_id, argv, prog=prog)


def runnable_tables() -> list[PaperTable]:
    """The paper tables that can be reproduced, in id order: their kind has a row runner
    (not published data only) and each reproducible row resolves to a config variant."""
    from reid_core.app.experiment import USER_ERRORS
    from reid_core.app.reproduce import load_paper_configs
    from reid_core.app.tables import table_kind
    from reid_core.results.paper_tables import load_all_tables

    variants: dict[str, set[str]] = {}
    out = []
    for table in load_all_tables():
        if not table.configs() or table_kind(table).run_row is None:
            continue
        if table.paper not in variants:
            try:
                variants[table.paper] = set(load_paper_configs(table.paper)[1]["variants"])
            except USER_ERRORS:  # no (valid) configs/papers/<paper>.yaml yet
                variants[table.paper] = set()
        if set(table.configs()) <= variants[table.paper]:
            out.append(table)
    return out


def print_runnable(console: Console) -> None:
    """One line per runnable table: id, paper and table, number of row configs, caption."""
    from rich.table import Table

    tables = runnable_tables()
    view = Table(title=f"{len(tables)} runnable paper tables "
                       f"(python -m reid_core reproduce <table-id>)")
    for column in ("table-id", "paper", "configs", "caption"):
        view.add_column(column, justify="right" if column == "configs" else "left",
                        no_wrap=column == "table-id")
    for t in tables:
        view.add_row(t.table_id, f"{t.paper} Table {t.table}", str(len(t.configs())), t.caption)
    console.print(view)
