"""Options shared by several sub-commands, so that each is spelled, defaulted and explained once.

Each ``add_*`` function adds one option to a sub-command's parser; the argument types below
turn a bad value into an argparse usage error (exit 2, the usage line, no traceback).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reid_core.resources import default_results_dir
from reid_core.results.store import REPORTS, RUNS


def results_path(*parts: str) -> str:
    """A default path under the results root every command shares (``train`` and ``reproduce``
    write there, ``report`` / ``visualize`` / ``evaluate`` read there): the checkout's
    ``results/``, or ``./results`` for an installed package (:mod:`reid_core.resources`)."""
    return str(Path(default_results_dir(), *parts))


#: Where ``train`` writes and ``report`` / ``visualize`` / ``evaluate`` read run records.
RUNS_DIR = results_path(RUNS)
REPORTS_DIR = results_path(REPORTS)


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: where a model runs (resolved by :mod:`reid_core.utils.device`)."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")


def add_data_root(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--data-root``: the directory holding the datasets (what None means depends on the
    command, hence ``help``)."""
    parser.add_argument("--data-root", default=None, help=help)


def add_runs_dir(parser: argparse.ArgumentParser) -> None:
    """``--runs``: the directory of run records (checkpoints and evaluations beside it)."""
    parser.add_argument("--runs", default=RUNS_DIR, help="directory of run records")


def add_out(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    """``--out``: where the command writes (each command has its own default)."""
    parser.add_argument("--out", default=default, help=help)


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def file_name(text: str) -> str:
    """A plain file-name component (no path: outputs stay inside --out)."""
    from reid_core.config import ConfigError, check_name

    try:
        return check_name(text, "file name")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
