"""The error of a report that would hold no record, shared by every report writer."""

from __future__ import annotations

from pathlib import Path

__all__ = ["EmptyReportError", "untouched_text"]


class EmptyReportError(ValueError):
    """A report would contain no record at all; nothing was written.

    A ValueError, so callers that map user errors to one line and exit code 2 (the CLI)
    need nothing new. The message (one line) names the table, the filters that matched
    nothing, what the records do offer instead, and the report file that was left as it was.
    """


def untouched_text(path: Path) -> str:
    """The end of an :class:`EmptyReportError` message: what happened to ``path``."""
    if path.exists():
        return f"the existing report at {path} was left untouched"
    return f"nothing was written (no report at {path} yet)"
