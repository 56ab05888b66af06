"""The suite's cache of generated artefacts, and the lock that serialises their generation.

Everything the suite generates on first use and reuses afterwards lives under one root,
``$REID_BENCH_CACHE`` or ``~/.cache/reid-attention-bench``:

* ``synthetic/``: the synthetic datasets (:mod:`reid_core.data.synthetic`);
* ``pretrained/``: the synthetic-pretrained trunks (:mod:`reid_core.app.pretrain`).

Each artefact is named by the digest of its full specification and written atomically (into a
temporary name, renamed into place when complete). Two processes that ask for the same missing
artefact at once are serialised by :func:`generation_lock`: one generates, the other waits
(saying so) and then finds it complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "REID_BENCH_CACHE"


def cache_base() -> Path:
    """``$REID_BENCH_CACHE`` if set, else ``~/.cache/reid-attention-bench``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reid-attention-bench"


@contextlib.contextmanager
def generation_lock(directory: Path, name: str, progress: bool) -> Iterator[None]:
    """Hold ``directory/.<name>.lock`` (a ``filelock.FileLock``) for the duration.

    If another process holds it, say so (when ``progress``, on stderr) and wait: a silent wait
    of minutes would look like a hang. The (empty, hidden) lock file stays: deleting a lock
    file that others may be waiting on lets two processes hold "the" lock at once unless the
    locking library re-checks the file after locking, which not every filelock release does.
    """
    from filelock import FileLock, Timeout

    path = directory / f".{name}.lock"
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if progress:
            stderr_console().print(f"waiting for another process that is generating {name} in "
                                   f"{directory} (lock {path.name})", highlight=False,
                                   soft_wrap=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def stderr_console():
    """The console generation messages go to (stderr, beside the progress bars)."""
    from rich.console import Console

    return Console(stderr=True)
