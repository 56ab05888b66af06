"""``train``: train and evaluate one config, write its run record.

Under ``torchrun --nproc-per-node N -m reid_core train ...`` the N processes train the run
together (DDP, :mod:`reid_core.utils.distributed`): they join one process group first, then
every step, the config's loading included, fails on all of them at once when it fails on one.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from reid_core.cli import options

NAME = "train"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="train and evaluate one config")
    p.add_argument("--config", required=True, help="YAML config file")
    options.add_data_root(p, help="dataset root (default: synthetic cache)")
    options.add_out(p, options.results_path(),
                    "output root: records in OUT/runs, checkpoints in OUT/checkpoints")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="re-run even if a record exists")
    options.add_device(p)
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.epochs=2 (repeatable)")
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    from reid_core.app.experiment import describe_error, run_experiment
    from reid_core.config import load_config, parse_overrides
    from reid_core.utils import distributed

    def config():
        overrides = parse_overrides(args.set or [])
        if args.seed is not None:
            overrides["seed"] = args.seed
        return load_config(args.config, overrides)

    with distributed.session(args.device):
        cfg = distributed.agree(config, describe=describe_error)
        run_experiment(cfg, data_root=args.data_root, out=args.out, device=args.device,
                       resume=args.resume, force=args.force, console=console)
    return 0
