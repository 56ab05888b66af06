"""Provenance of a record: the software versions, git commit, time and command it was made with.

What a record *is* lives elsewhere: its fields in :mod:`reid_core.results.record_types`, its
identities in :mod:`reid_core.results.identity`, its files in :mod:`reid_core.results.store`.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

import reid_core
from reid_core.resources import checkout_root


#: Packages besides torch/torchvision/numpy whose version can change a result (Pillow decodes
#: the images, numba and scipy run the evaluation) or a report (pandas, matplotlib).
OTHER_PACKAGES = ("pillow", "scipy", "numba", "pandas", "h5py", "matplotlib")


def software_versions() -> dict[str, Any]:
    """Versions of everything a result depends on, and the CPU instruction set torch uses
    (CPU results are bit-reproducible only for the same build *and* CPU type)."""
    return {
        "python": platform.python_version(),
        "reid_core": reid_core.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "packages": {name: _version(name) for name in OTHER_PACKAGES},
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The checkout's commit (``-dirty`` with uncommitted changes to tracked files outside
    ``results/``: the records and reports a run writes or replaces there are its output, not a
    change of what it ran); None for an installed package (its version identifies it; git
    there would name whatever repository encloses site-packages, if any) or without git."""
    root = checkout_root()
    if root is None:
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    """The command that started this process, as a user would type it (``-m`` form for modules
    of this package)."""
    argv = list(sys.argv)
    script = Path(argv[0]) if argv else Path()
    pkg_root = Path(reid_core.__file__).resolve().parent
    if script.suffix == ".py" and script.resolve().is_relative_to(pkg_root):
        module = script.resolve().relative_to(pkg_root.parent).with_suffix("")
        parts = [p for p in module.parts if p != "__main__"]
        argv = ["-m", ".".join(parts), *argv[1:]]
    elif script.is_absolute() and script.resolve().is_relative_to(pkg_root.parent):
        argv[0] = str(script.resolve().relative_to(pkg_root.parent))
    return " ".join(["python", *argv])
