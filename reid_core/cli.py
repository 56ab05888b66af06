"""Command line: ``python -m reid_core <command> ...``.

Commands:
    train     train + evaluate one config, write its run record
    datasets  list the registered datasets, or summarise one (``--name X --data-root DIR``)
    report    published vs reproduced report of one paper table, from the run records
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from reid_core.config import load_config, parse_overrides


def _train(args: argparse.Namespace, console: Console) -> int:
    from reid_core.experiment import run_experiment

    overrides = parse_overrides(args.set or [])
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = load_config(args.config, overrides)
    run_experiment(cfg, data_root=args.data_root, out=args.out, device=args.device,
                   resume=args.resume, force=args.force, console=console)
    return 0


def _datasets(args: argparse.Namespace, console: Console) -> int:
    from reid_core.data import available_datasets, build_dataset, resolve_dataset_root

    if args.name is None:
        console.print("\n".join(available_datasets()))
        return 0
    data = build_dataset(args.name, resolve_dataset_root(args.name, args.data_root))
    console.print(f"{data.name} at {data.root}")
    for split, counts in data.summary().items():
        console.print(f"  {split:8s} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from rich.table import Table

    from reid_core.results.report import compare, load_records, row_summary, write_report

    records = load_records(Path(args.runs))
    comp = compare(args.table_id, records, dataset=args.dataset, profile=args.profile,
                   compare_to=args.compare_to)
    path = write_report(comp, Path(args.out))
    table = Table(title=f"{args.table_id} ({comp.selection.profile} profile, "
                        f"{len(comp.selection.records)} records)")
    table.add_column("row")
    table.add_column("n", justify="right")
    table.add_column("verdict")
    for row, n, verdict in row_summary(comp):
        table.add_row(row, str(n), verdict)
    console.print(table)
    console.print(f"report written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reid_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train and evaluate one config")
    t.add_argument("--config", required=True, help="YAML config file")
    t.add_argument("--data-root", default=None, help="dataset root (default: synthetic cache)")
    t.add_argument("--out", default="results",
                   help="output root: records in OUT/runs, checkpoints in OUT/checkpoints")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--force", action="store_true", help="re-run even if a record exists")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--seed", type=int, default=None, help="override the config's seed")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.epochs=2 (repeatable)")
    t.set_defaults(func=_train)

    d = sub.add_parser("datasets", help="list datasets or summarise one")
    d.add_argument("--name", default=None)
    d.add_argument("--data-root", default=None)
    d.set_defaults(func=_datasets)

    r = sub.add_parser("report", help="published vs reproduced report of one paper table")
    r.add_argument("table_id", metavar="table-id", help="paper table id, e.g. rga_table1")
    r.add_argument("--runs", default="results/runs", help="directory of run records")
    r.add_argument("--out", default="results/reports", help="directory for the report")
    r.add_argument("--dataset", default=None,
                   help="only use records on this dataset (e.g. cuhk03np-labeled, synthetic)")
    r.add_argument("--profile", default=None, choices=("smoke", "paper"),
                   help="smoke (synthetic runs) or paper (real datasets); default: inferred")
    r.add_argument("--compare-to", default=None, metavar="DATASET",
                   help="smoke profile: published dataset to line synthetic runs up with "
                        "(default: the table's first)")
    r.set_defaults(func=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    from reid_core.experiment import USER_ERRORS, describe_error

    try:
        return args.func(args, console)
    except USER_ERRORS as e:  # user-fixable: one clear message, no traceback
        console.print(f"[bold red]error:[/] {describe_error(e)}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
