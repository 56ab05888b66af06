"""``evaluate``: evaluate a finished run on another dataset (e.g. Market -> Partial-REID)."""

from __future__ import annotations

import argparse

from rich.console import Console

from reid_core.cli import options

NAME = "evaluate"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="evaluate a finished run on another dataset",
        description="Load RUN's checkpoint and evaluate it on --dataset with the run's eval "
                    "settings; writes <runs>/../evaluations/<run_id>--on--<dataset>.json (e.g. "
                    "DAAF Table 3: a Market model on partial-reid / partial-ilids, ranks 1 "
                    "and 3).")
    p.add_argument("run", metavar="RUN", help="run id (or unique prefix) or run record path")
    p.add_argument("--dataset", required=True, help="target dataset (registry name)")
    options.add_data_root(p, help="target dataset root")
    options.add_runs_dir(p)
    p.add_argument("--ranks", type=int, nargs="+", default=None,
                   help="CMC ranks to report (default: the run's eval.ranks)")
    p.add_argument("--query-mode", default=None, choices=("single", "multi_mean", "multi_max"),
                   help="override eval.query_mode (multi-query needs the dataset's gt_bbox/)")
    p.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                   help="k-reciprocal re-ranking on / off (default: as the run)")
    options.add_device(p)
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    from reid_core.app.cross_eval import evaluate_run_on

    evaluate_run_on(args.run, args.dataset, data_root=args.data_root, runs_dir=args.runs,
                    ranks=args.ranks, query_mode=args.query_mode, rerank=args.rerank,
                    device=args.device, console=console)
    return 0
