"""Atomic file writes: a reader never sees a half-written file.

Everything the suite persists (run records, checkpoints, generated datasets) goes through here:
write to a temporary file in the destination directory, flush and fsync, then ``os.replace``,
which is atomic on POSIX and Windows when source and destination share a file system.

Temporary files are named ``.{name}.{pid}.{random}.tmp`` (``pid`` = the writing process), so
that :func:`remove_stale_temps` can tell the leftovers of a killed writer from the temporary
file of a writer that is still at work. A full disk, a read-only file system, a quota or
missing permissions become one :class:`OutputWriteError` line instead of a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

#: errno -> what the user is told; the conditions a user fixes outside the program.
_OUTPUT_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    **({errno.EDQUOT: "disk quota exceeded"} if hasattr(errno, "EDQUOT") else {}),
}

# ``.{name}.{pid}.{random}.tmp``; the old format had no pid: ``.{name}.{random}.tmp``. The
# random part is tempfile's: 8 characters of [a-z0-9_].
_RANDOM = r"[a-z0-9_]{8}"


class OutputWriteError(OSError):
    """Writing an output file failed for a reason the user must fix (disk full, read-only file
    system, quota, permissions). ``errno`` and ``filename`` are kept; ``str()`` is one line,
    e.g. ``"no space left on device writing /runs/x.json (the previous version, if any, is
    untouched)"``."""

    def __str__(self) -> str:
        return str(self.strerror)


def _output_error(e: OSError, path: Path) -> OutputWriteError:
    reason = _OUTPUT_ERRNOS.get(e.errno or 0) or os.strerror(e.errno or 0).lower()
    return OutputWriteError(
        e.errno, f"{reason} writing {path} (the previous version, if any, is untouched)",
        str(path))


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _is_output_error(e: BaseException, path: Path) -> bool:
    """Whether ``e`` is a disk-full / read-only / permission error of *this* write: raised
    without a file name (``write``, ``fsync``) or about the destination, a temporary file of
    it or a parent directory -- not, say, a permission error reading another file in the
    caller's body."""
    if not isinstance(e, OSError) or isinstance(e, OutputWriteError):
        return False
    if e.errno not in _OUTPUT_ERRNOS:
        return False
    if e.filename is None:
        return True
    about = Path(os.fsdecode(e.filename))
    is_temp = about.parent == path.parent and about.name.startswith(_temp_prefix(path))
    return is_temp or about == path or about in path.parents


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on clean exit, rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Raises:
        OutputWriteError: no space left, disk quota exceeded, read-only file system or
            permission denied while creating, writing, syncing or renaming (whether raised
            here or by the caller's writes into the file).
    """
    with _interrupts_deferred():
        yield from _atomic_open(Path(path), mode)


def _atomic_open(path: Path, mode: str) -> Iterator[BinaryIO]:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and _is_output_error(e, path):
            raise _output_error(e, path) from e
        raise


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the write is complete, then raise it: an interrupt in
    the middle of ``torch.save`` would otherwise surface as an obscure zip-writer error. Only
    Python's default Ctrl-C handler in the main thread is replaced (for the write)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # another handler (or SIGINT ignored, as under nohup) is not ours to replace
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(path: str | Path, save_fn: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``save_fn(file_object)`` atomically (e.g. ``torch.save``, ``PIL``)."""
    with atomic_open(path, "wb") as f:
        save_fn(f)


# ---------------------------------------------------------------------------------------------
# Leftovers of killed writers
# ---------------------------------------------------------------------------------------------


def remove_stale_temps(directory: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temporary files of atomic writes in ``directory`` whose writer is gone.

    A writer killed between creating its temporary file and the rename leaves
    ``.{name}.{pid}.{random}.tmp`` behind. Such a file is deleted when process ``pid`` is no
    longer running; the temporary file of a live writer (another run writing the same
    directory right now) is left alone. Names of the old format without a pid
    (``.{name}.{random}.tmp``) count as stale. Temporary *directories* of the same name form
    (the synthetic dataset's) are removed too.

    Pids are only meaningful on this machine: do not point this at a directory that processes
    on other hosts write at the same time (shared network file systems).

    Args:
        directory: where to look (not recursive); a missing directory has no leftovers.
        name: only temporary files of this destination name (e.g. ``"record.json"``); None =
            of every name.

    Returns:
        The paths removed, sorted.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = _temp_pattern(name)
    removed = []
    for entry in sorted(directory.iterdir()):
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        pid = match.group("pid")
        if pid is not None and process_alive(int(pid)):
            continue
        if _remove(entry):
            removed.append(entry)
    return removed


def _temp_pattern(name: str | None) -> re.Pattern[str]:
    """Regex of temporary names: ``.{name}.[{pid}.]{random}.tmp`` (pid optional: old format)."""
    stem = re.escape(name) if name is not None else r".+?"
    return re.compile(rf"\.(?P<name>{stem})\.(?:(?P<pid>\d+)\.)?{_RANDOM}\.tmp")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without signalling). A process of
    another user (PermissionError) is alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # e.g. pid out of range: no such process
        return False
    return True


def _remove(entry: Path) -> bool:
    """Delete a stale file or directory; False if it vanished or cannot be removed (another
    cleaner got there first, or no permission -- not worth failing a run over)."""
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

