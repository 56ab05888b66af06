"""The software a report's records were made with, and the warnings when they mix builds.

CPU training is bit-reproducible only within one environment (build, CPU type, threads), and
torchvision / numpy releases change transforms and RNG streams: a report states the versions
its records were made with (``record["versions"]``) and, when they span several torch /
torchvision / numpy versions, warns and lists per version which rows and seeds were made with
it. One helper for the metrics and the cost report (:class:`Environment`). The data the records
ran on is checked the same way (:func:`data_mix_warning`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

__all__ = [
    "BUILD_KEYS", "ENVIRONMENT_KEYS", "NOT_RECORDED", "Environment", "RecordLabel", "VersionMix",
    "data_mix_warning", "n_records", "record_version",
]

#: one environment (build, CPU type, threads; README "Environments"), and torchvision / numpy
#: releases change transforms and RNG streams. Records made under several versions of one of
#: these are flagged in the report header.
BUILD_KEYS: Final[tuple[str, ...]] = ("torch", "torchvision", "numpy")
#: Everything the header states about where the records were made (``record["versions"]``).
ENVIRONMENT_KEYS: Final[tuple[str, ...]] = (*BUILD_KEYS, "python", "platform", "cpu_capability")
NOT_RECORDED: Final[str] = "not recorded"

#: How a report names a record in a version list: ``record -> (row name, detail or None)``;
#: the detail is typically the seed (``"0"``); ``None`` counts repeats (``PCB ×2``).
RecordLabel = Callable[[Mapping[str, Any]], tuple[str, str | None]]


def record_version(record: Mapping[str, Any], key: str) -> str:
    """``record["versions"][key]`` as text, or ``"not recorded"``.

    A missing version is a value of its own: such a record cannot be shown to share the build
    of the others.
    """
    versions = record.get("versions")
    value = versions.get(key) if isinstance(versions, Mapping) else None
    return str(value) if value not in (None, "") else NOT_RECORDED


def _by_version(
    records: Sequence[Mapping[str, Any]], key: str
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """(version, its records) for ``key``, most records first (ties by version text);
    records keep their order."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record_version(record, key)].append(record)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def _natural(text: str) -> tuple[int, int | str]:
    """Sort key putting numeric seeds in numeric order (2 before 10), then other text."""
    head = text.split(" ", 1)[0]
    return (0, int(head)) if head.isdigit() else (1, text)


def _who(records: Sequence[Mapping[str, Any]], label: RecordLabel) -> tuple[str, ...]:
    """``("ResNet-50 (seeds 0, 1)", "RGA-S (seed 2)")``: rows in first-appearance order."""
    details: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    for record in records:
        row, detail = label(record)
        counts[row] += 1
        mine = details.setdefault(row, [])
        if detail is not None and detail not in mine:
            mine.append(detail)
    parts = []
    for row, mine in details.items():
        if mine:
            word = "seeds" if len(mine) > 1 else "seed"
            parts.append(f"{row} ({word} {', '.join(sorted(mine, key=_natural))})")
        else:
            parts.append(row if counts[row] == 1 else f"{row} ×{counts[row]}")
    return tuple(parts)


def _shorten(parts: tuple[str, ...], keep: int) -> str:
    """The first ``keep`` parts, then how many more (a one-line warning stays readable)."""
    if len(parts) <= keep:
        return ", ".join(parts)
    return ", ".join(parts[:keep]) + f", … (+{len(parts) - keep} more rows)"


def n_records(n: int) -> str:
    """``1 record`` / ``3 records``."""
    return f"{n} record{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class VersionMix:
    """The build packages (torch, ...) whose version differs among a report's records.

    ``packages``: the varying ones, in :data:`BUILD_KEYS` order (torch and torchvision usually
    change together: one warning, not two). ``groups``: per combination of their versions
    (one version per package), the number of records and which rows / seeds (one text per
    row); most records first.
    """

    packages: tuple[str, ...]
    groups: tuple[tuple[tuple[str, ...], int, tuple[str, ...]], ...]
    #: Rows named per version in :meth:`sentence` (the Markdown lists them all).
    SENTENCE_ROWS: ClassVar[int] = 4

    def _names(self) -> str:
        """``torch``, ``torch and torchvision``, ``torch, torchvision and numpy``."""
        *rest, last = self.packages
        return f"{', '.join(rest)} and {last}" if rest else last

    def _versions(self, versions: tuple[str, ...], code: bool) -> str:
        """``2.15.0`` for one package; ``torch 2.15.0, torchvision 0.29.2`` for several."""
        shown = [_code(v) if code else v for v in versions]
        if len(self.packages) == 1:
            return shown[0]
        return ", ".join(f"{k} {v}" for k, v in zip(self.packages, shown))

    def sentence(self) -> str:
        """The warning as one plain-text line (CLI summary, logs)."""
        parts = [f"{self._versions(versions, False)} ({n_records(n)}: "
                 f"{_shorten(who, self.SENTENCE_ROWS)})" for versions, n, who in self.groups]
        return (f"⚠ records mix {self._names()} versions: {'; '.join(parts)} — numbers from "
                f"different builds are not bit-comparable")

    def markdown(self) -> list[str]:
        """The warning as a Markdown blockquote, one bullet per version (combination)."""
        out = [f"> **⚠ The records mix {self._names()} versions** — numbers from different "
               f"builds are not bit-comparable (same seed, other losses and metrics):"]
        out += [f"> - {self._versions(versions, True)}: {n_records(n)} — {', '.join(who)}"
                for versions, n, who in self.groups]
        return out


@dataclass(frozen=True)
class Environment:
    """The software a report's records were made with; the one place both reports (metrics
    and cost) learn whether their numbers come from a single build."""

    records: tuple[Mapping[str, Any], ...]
    mix: VersionMix | None

    @classmethod
    def of(cls, records: Sequence[Mapping[str, Any]], label: RecordLabel) -> Environment:
        """The environment of ``records`` (the ones the report uses, after its selection);
        ``label`` names a record in the per-version lists."""
        varying = tuple(k for k in BUILD_KEYS if len(_by_version(records, k)) > 1)
        if not varying:
            return cls(tuple(records), None)
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = defaultdict(list)
        for record in records:
            groups[tuple(record_version(record, k) for k in varying)].append(record)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return cls(tuple(records), VersionMix(varying, tuple(
            (versions, len(group), _who(group, label)) for versions, group in ordered)))

    @property
    def mixed(self) -> bool:
        return self.mix is not None

    def warnings(self) -> list[str]:
        """The mix as one plain-text line (empty when the builds agree)."""
        return [self.mix.sentence()] if self.mix is not None else []

    def warning_markdown(self) -> list[str]:
        """Header blockquote naming each version and its rows / seeds; empty if unmixed."""
        return self.mix.markdown() + [""] if self.mix is not None else []

    def bullet(self) -> str:
        """The header bullet stating the environment (per version counts where it varies)."""
        if not self.records:
            return "- **Environment:** —"
        parts = []
        for key in ENVIRONMENT_KEYS:
            groups = _by_version(self.records, key)
            if len(groups) == 1:
                parts.append(f"{key} {_code(groups[0][0])}")
            else:
                parts.append(f"{key} " + ", ".join(
                    f"{_code(version)} ({n_records(len(group))})" for version, group in groups))
        where = ("mixed, see the warning above" if self.mixed
                 else f"all {n_records(len(self.records))}")
        return f"- **Environment ({where}):** " + " · ".join(parts)


def data_mix_warning(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A header blockquote when the used records of one dataset ran on different data (another
    synthetic generator version, another copy of a real dataset): gains between such rows
    compare different data. Records without a data identity (before it was recorded) count as
    their own version."""
    by_dataset: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        ds = r.get("dataset") or {}
        fingerprint = (ds.get("identity") or {}).get("fingerprint") or NOT_RECORDED
        by_dataset[str(ds.get("name"))][fingerprint].append(
            f"{r.get('config_name')} (seed {r.get('seed')})")
    out = []
    for name, groups in by_dataset.items():
        if len(groups) > 1:
            parts = "; ".join(f"`{fp}`: {', '.join(who)}" for fp, who in groups.items())
            out += [f"> ⚠ **The records on {name} ran on {len(groups)} different versions of its "
                    f"data** — {parts}. Gains between rows on different data are not "
                    f"comparable; re-run the older rows.", ""]
    return out


def _code(version: str) -> str:
    """A version in backticks; ``not recorded`` stays plain text."""
    return version if version == NOT_RECORDED else f"`{version}`"
