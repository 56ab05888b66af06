"""Run records: one JSON file per finished run, written atomically under ``<out>/runs/``.

A record carries everything needed to trust or redo the number: the resolved config and its
hash, the seed, package versions and git commit, device, wall time, peak memory, the dataset
summary, the per-epoch history (with the evaluations done during training) and the final
metrics (percent).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
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
from reid_core.utils.io import atomic_write_json

RECORD_FORMAT = 1


def make_run_id(config_name: str, seed: int, config_hash: str,
                data_identity: dict[str, str]) -> str:
    """The one definition of a training run's identity: ``<name>-seed<seed>-<digest>``.

    ``digest`` covers the config (through its hash) *and* what it ran on (dataset name,
    protocol, data fingerprint: :meth:`reid_core.data.ReIDData.identity`), so the same config on
    another dataset tree is another run, never a reused record.
    """
    canon = json.dumps({"config": config_hash, "data": data_identity}, sort_keys=True,
                       separators=(",", ":"))
    return f"{config_name}-seed{seed}-{hashlib.sha256(canon.encode()).hexdigest()[:12]}"


def record_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_id}.json"


class RecordError(ValueError):
    """A record file that is not valid JSON (edited by hand, copied incompletely)."""


def read_record(path: Path) -> dict[str, Any]:
    """A record's contents; an unreadable file is a :class:`RecordError` naming it (records
    are written atomically, so this is damage from outside: restore it or delete it)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordError(f"{path} is not a valid record ({e}); restore it (e.g. from git) "
                          f"or delete it to re-run that configuration") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path} is not a record (expected a JSON object)")
    return data


#: What a finished training run's record must hold to count as finished.
REQUIRED_KEYS = ("run_id", "config", "final", "history")


def find_record(out_dir: Path, run_id: str) -> dict[str, Any] | None:
    """The finished run's record, or None; a file that is not one is a :class:`RecordError`
    (never a "finished" run to skip)."""
    path = record_path(out_dir, run_id)
    if not path.is_file():
        return None
    record = read_record(path)
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing or record.get("run_id") != run_id:
        problem = (f"lacks {', '.join(missing)}" if missing
                   else f"holds run {record.get('run_id')!r}")
        raise RecordError(f"{path} is not the finished record of {run_id} (it {problem}); "
                          f"restore it or delete it (or pass --force) to re-run")
    return record


def write_record(out_dir: Path, record: dict[str, Any]) -> Path:
    path = record_path(out_dir, record["run_id"])
    atomic_write_json(path, record)
    return path


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
    try:
        root = Path(reid_core.__file__).resolve().parents[1]
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
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
