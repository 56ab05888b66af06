"""Claims on run ids: no run is trained twice at once, by two sweeps or a sweep and a user.

Two marks live in ``<out>/claims/``:

* ``<run_id>.lock``: held (``filelock``, an OS lock) by the process that trains the run, for as
  long as it trains. The OS drops the lock when that process ends, however it ends (a killed or
  preempted job leaves no stale lock); ``<run_id>.holder`` says who holds it (host, pid, since
  when) for the message of whoever finds it held.
* ``<run_id>.json``: written (atomically) by a sweep when it submits a job for the run: the
  executor, job id, the sweep's folder and until when the claim stands (the job's time limit
  times its requeues, plus a grace). A job that waits in a scheduler's queue holds no lock yet;
  its claim keeps a second sweep from submitting the run again. A claim is *live* until its
  job has written its result, the local job's process is gone, or it expires.

:func:`live_claim` says why a run is taken (or None); :class:`RunLock` is the training lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reid_core.utils.io import atomic_write_json, atomic_write_text, process_alive

__all__ = ["CLAIMS", "RunBusyError", "RunLock", "SweepClaim", "live_claim", "write_claim"]

#: The claims directory under a results root.
CLAIMS = "claims"


class RunBusyError(RuntimeError):
    """The run is being trained by another process (its lock is held)."""


def claims_dir(out: str | Path) -> Path:
    return Path(out) / CLAIMS


def _claim_path(out: str | Path, run_id: str) -> Path:
    return claims_dir(out) / f"{run_id}.json"


class RunLock:
    """The exclusive training lock of one run (see the module docstring): a
    ``filelock.FileLock`` on ``<run_id>.lock``, with its holder in ``<run_id>.holder``.

    ``with RunLock(out, run_id):`` raises :class:`RunBusyError` at once, naming the holder,
    when another process (or another lock object) holds it; it never waits (a sweep job that
    finds its run busy must not sit on a scheduler slot)."""

    def __init__(self, out: str | Path, run_id: str) -> None:
        self.path = claims_dir(out) / f"{run_id}.lock"
        self.holder_file = self.path.with_suffix(".holder")
        self.run_id = run_id
        self._lock: Any = None

    def __enter__(self) -> RunLock:
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunBusyError(f"run {self.run_id} is being trained by another process "
                               f"({self._holder()}; lock {self.path}); it will be finished "
                               f"there, or resumed from its checkpoint once that process "
                               f"ends") from None
        self._lock = lock
        atomic_write_text(self.holder_file,
                          f"host {socket.gethostname()}, pid {os.getpid()}, since "
                          f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self.holder_file.unlink(missing_ok=True)  # before the release: never someone else's
            self._lock.release()
            self._lock = None

    def held_elsewhere(self) -> str | None:
        """Who holds the lock when it is held (None: free). Does not keep it."""
        from filelock import FileLock, Timeout

        if not self.path.is_file():
            return None
        probe = FileLock(str(self.path))
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return self._holder()
        probe.release()
        return None

    def _holder(self) -> str:
        try:
            return self.holder_file.read_text().strip() or "holder unknown"
        except OSError:
            return "holder unknown"


@dataclass(frozen=True)
class SweepClaim:
    """A sweep's claim on a run it submitted a job for."""

    run_id: str
    executor: str
    job_id: str
    #: The sweep's submitit folder (where the job's result and logs go).
    folder: str
    host: str
    submitted_at: float
    expires_at: float

    @property
    def result_file(self) -> Path:
        """What submitit writes when the job ends (success or failure)."""
        return Path(self.folder) / f"{self.job_id}_0_result.pkl"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.submitted_at))
        return (f"{self.executor} job {self.job_id} submitted at {when} from {self.host} "
                f"(logs in {self.folder})")


def write_claim(out: str | Path, claim: SweepClaim) -> Path:
    path = _claim_path(out, claim.run_id)
    atomic_write_json(path, asdict(claim))
    return path


def read_claim(out: str | Path, run_id: str) -> SweepClaim | None:
    try:
        data: Any = json.loads(_claim_path(out, run_id).read_text())
        return SweepClaim(**data)
    except (OSError, ValueError, TypeError):
        return None  # no claim, or not one we wrote: nothing to honour


def live_claim(out: str | Path, run_id: str, now: float | None = None) -> str | None:
    """Why run ``run_id`` is taken (its training lock is held, or a sweep's job for it is
    queued or running), or None when it is free."""
    holder = RunLock(out, run_id).held_elsewhere()
    if holder is not None:
        return f"being trained ({holder})"
    claim = read_claim(out, run_id)
    if claim is None or claim.result_file.exists():
        return None
    if (now if now is not None else time.time()) > claim.expires_at:
        return None
    if claim.executor == "local" and claim.host == socket.gethostname():
        if not process_alive(int(claim.job_id)):  # a local job id is its controller's pid
            return None
    return f"claimed by {claim.describe()}"
