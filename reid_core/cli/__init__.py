"""Command line: ``python -m reid_core <command> ...``.

Commands:
    train      train + evaluate one config, write its run record
    datasets   list the registered datasets, or summarise one (``--name X --data-root DIR``)
    reproduce  run every row of a paper table and write its report (``--list``: the tables)
    report     published vs reproduced report of one paper table, from the run records
    visualize  CMC curves and ranked-list images (PNG) of finished runs
    evaluate   evaluate a finished run on another dataset (e.g. Market -> Partial-REID)
    pretrain   make (or find) the synthetic-pretrained trunk of ``model.pretrained: synthetic``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from rich.console import Console

from reid_core.cli import datasets, evaluate, pretrain, report, reproduce, train, visualize
from reid_core.cli.errors import INTERRUPTED, run_guarded

__all__ = ["COMMANDS", "INTERRUPTED", "build_parser", "main"]

#: One module per sub-command, in the order ``--help`` lists them. Each has ``NAME``,
#: ``add_parser(subparsers) -> ArgumentParser`` and ``run(args, console) -> int`` (exit code).
COMMANDS: tuple[ModuleType, ...] = (train, datasets, reproduce, report, visualize, evaluate,
                                     pretrain)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command (the chosen one is ``args.command``)."""
    parser = argparse.ArgumentParser(prog="python -m reid_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns its exit code (2: a user error, 130: interrupted)."""
    args = build_parser().parse_args(argv)
    command = {c.NAME: c for c in COMMANDS}[args.command]
    console = Console()

    def run() -> int:
        from reid_core.utils.distributed import require_group_if_launched

        if command is not train:  # only train joins torchrun's processes into one run
            require_group_if_launched()
        # ``command.run`` is looked up now (not bound at parser build): tests replace it.
        return command.run(args, console)

    return run_guarded(run, console)
