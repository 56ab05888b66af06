"""``datasets``: list the registered datasets, or summarise (and check) one."""

from __future__ import annotations

import argparse

from rich.console import Console

from reid_core.cli import options
from reid_core.cli.errors import EXIT_USER_ERROR

NAME = "datasets"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="list datasets or summarise one")
    p.add_argument("--name", default=None)
    options.add_data_root(p)
    p.add_argument("--check", action="store_true",
                   help="decode every image (all splits and extras such as gt_bbox); exit 2 "
                        "and list the bad files if any fails")
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    from reid_core.data import available_datasets, build_dataset, resolve_dataset_root

    if args.name is None:
        console.print("\n".join(available_datasets()))
        return 0
    data = build_dataset(args.name, resolve_dataset_root(args.name, args.data_root))
    console.print(f"{data.name} at {data.root}")
    for split, counts in data.summary().items():
        console.print(f"  {split:8s} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    if not args.check:
        return 0
    from reid_core.data.check import check_dataset

    # Bad files are a user error too: the same exit code.
    return EXIT_USER_ERROR if check_dataset(data, console) else 0
