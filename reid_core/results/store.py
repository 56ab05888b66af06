"""The run store: the one place that knows where records, checkpoints and evaluations live, and
the one reader of record files.

Layout under a results root ``<out>`` (``--out``; the repository's ``results/``)::

    <out>/runs/<run_id>.json                       run and measurement records
    <out>/checkpoints/<run_id>/last.pt, final.pt   a run's checkpoints (reid_core.engine.checkpoint)
    <out>/evaluations/<run_id>--on--<dataset>[--<tag>...][--data-<digest>].json
    <out>/reports/<table_id>.md                    reports (written by reproduce runs)

Every record file is read through :func:`read_record`: JSON checked, then migrated to the
current format (:mod:`reid_core.results.record_migration`; the file itself is never rewritten).
:func:`load_record` returns it typed (:mod:`reid_core.results.record_types`),
:func:`load_records` every record of a directory (a report's input).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from reid_core.engine.checkpoint import FINAL, LAST
from reid_core.results.record_migration import migrate_record
from reid_core.results.record_types import Record, RecordError, record_from_dict
from reid_core.utils.io import atomic_write_json

__all__ = [
    "CHECKPOINTS",
    "EVALUATIONS",
    "REPORTS",
    "REQUIRED_KEYS",
    "RUNS",
    "RecordError",
    "RunPaths",
    "RunStore",
    "load_record",
    "load_records",
    "read_record",
    "record_file",
    "record_ids",
]

RUNS: Final[str] = "runs"
CHECKPOINTS: Final[str] = "checkpoints"
EVALUATIONS: Final[str] = "evaluations"
#: The reports written from the records (``reproduce`` writes them under its ``--out``).
REPORTS: Final[str] = "reports"

#: What a finished training run's record must hold to count as finished.
REQUIRED_KEYS: Final[tuple[str, ...]] = ("run_id", "config", "final", "history")


def record_file(runs_dir: str | Path, run_id: str) -> Path:
    """The record file of ``run_id`` in a records directory (any directory, e.g. ``--runs``)."""
    return Path(runs_dir) / f"{run_id}.json"


def record_ids(runs_dir: str | Path) -> list[str]:
    """The run ids of the record files in ``runs_dir`` (sorted; empty if it is no directory)."""
    runs_dir = Path(runs_dir)
    return sorted(p.stem for p in runs_dir.glob("*.json")) if runs_dir.is_dir() else []


@dataclass(frozen=True)
class RunPaths:
    """Where one run's files live under the results root ``out``."""

    out: Path
    run_id: str

    @property
    def record(self) -> Path:
        return record_file(Path(self.out) / RUNS, self.run_id)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.out) / CHECKPOINTS / self.run_id

    @property
    def checkpoint(self) -> Path:
        """The checkpoint being trained (``last.pt``)."""
        return self.checkpoint_dir / LAST

    @property
    def final_checkpoint(self) -> Path:
        """The finished weights of the run's record (``final.pt``)."""
        return self.checkpoint_dir / FINAL


@dataclass(frozen=True)
class RunStore:
    """A results root: its records, checkpoints and evaluations."""

    root: Path

    @classmethod
    def holding(cls, record_path: str | Path) -> RunStore:
        """The store a record file sits in (``<out>/runs/<run_id>.json`` -> ``<out>``): a run's
        checkpoints and evaluations are found beside its record, wherever it was copied."""
        return cls(Path(record_path).parent.parent)

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def evaluations_dir(self) -> Path:
        return self.root / EVALUATIONS

    @property
    def reports_dir(self) -> Path:
        return self.root / REPORTS

    def run(self, run_id: str) -> RunPaths:
        """The paths of run ``run_id``."""
        return RunPaths(self.root, run_id)

    def record_path(self, run_id: str) -> Path:
        return record_file(self.runs_dir, run_id)

    def evaluation_path(self, run_id: str, dataset: str, tags: Sequence[str] = ()) -> Path:
        """``evaluations/<run_id>--on--<dataset>[--<tag>...].json`` (tags: settings that make it
        another evaluation of the same data, e.g. ``multi_mean``, ``rerank``)."""
        suffix = "".join(f"--{tag}" for tag in tags)
        return self.evaluations_dir / f"{run_id}--on--{dataset}{suffix}.json"

    @staticmethod
    def data_variant(path: Path, digest: str) -> Path:
        """Where an evaluation goes when ``path`` holds one made on another copy of the data:
        beside it, ``--data-<digest>`` (never written over)."""
        return path.with_name(f"{path.stem}--data-{digest}.json")

    def find_record(self, run_id: str) -> dict[str, Any] | None:
        """The finished run's record, or None; a file that is not one is a :class:`RecordError`
        (never a "finished" run to skip)."""
        path = self.record_path(run_id)
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

    def write_record(self, record: Record) -> Path:
        """Write a run or measurement record (atomically) to ``runs/<run_id>.json``."""
        path = self.record_path(record.run_id)
        atomic_write_json(path, record.to_dict())
        return path

    @staticmethod
    def write_evaluation(path: Path, record: Record) -> Path:
        """Write an evaluation record (atomically) at ``path`` (see :meth:`evaluation_path`)."""
        atomic_write_json(path, record.to_dict())
        return path


# --------------------------------------------------------------------------- reading


def read_record(path: str | Path) -> dict[str, Any]:
    """A record file's contents in the current format (migrated on read; the file is left as it
    is). An unreadable file is a :class:`RecordError` naming it: records are written atomically,
    so this is damage from outside -- restore it or delete it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordError(f"{path} is not a valid record ({e}); restore it (e.g. from git) "
                          f"or delete it to re-run that configuration") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path} is not a record (expected a JSON object)")
    return migrate_record(data)


def load_record(path: str | Path) -> Record:
    """The typed record of a file (run, measurement or evaluation); RecordError naming the file
    when it is not one."""
    data = read_record(path)
    try:
        return record_from_dict(data)
    except RecordError as e:
        raise RecordError(f"{path}: {e}") from None


def load_records(runs_dir: str | Path = Path("results/runs")) -> list[dict[str, Any]]:
    """Every record ``*.json`` in ``runs_dir`` (sorted by file name), read by :func:`read_record`.

    Files that are not valid JSON or not a record (a mapping with ``run_id``, ``config_name``
    and ``dataset.name``) are skipped with a :class:`UserWarning` naming them.
    FileNotFoundError if ``runs_dir`` is not a directory.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory {runs_dir} does not exist")
    records = []
    for path in sorted(runs_dir.glob("*.json")):
        try:
            records.append(load_record(path).to_dict())
        except OSError as exc:
            warnings.warn(f"skipping {path}: not readable ({exc})", UserWarning, stacklevel=2)
        except RecordError as exc:  # its message names the file
            warnings.warn(f"skipping {exc}", UserWarning, stacklevel=2)
    return records
