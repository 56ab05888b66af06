"""Which records a report uses, on which scale, and which it leaves out (and why).

**Which record fills which cell.** A record belongs to a table row when ``record["config_name"]``
equals the row's ``config``. Its dataset (``record["dataset"]["name"]``) decides the column:
real datasets through their declaration in :mod:`reid_core.data.names` (``cuhk03np-labeled``
and ``cuhk03np-mat-labeled`` fill the ``cuhk03-labeled`` columns, ...; :data:`DATASET_TO_COLUMN`
is that mapping); records on a dataset without published counterpart are left out and listed.

**Profiles.** ``paper``: runs on real datasets, compared in absolute terms. ``smoke``: runs on a
synthetic dataset; their numbers are lined up under one published dataset (``compare_to``,
default the table's first) so that the *direction* of each gain over the baseline can be
checked. The profile is inferred (any usable real-dataset record → ``paper``, else ``smoke``)
unless given; records of the other profile are left out and listed, so a report never mixes the
two scales.

**Recipes.** Per (config name, dataset) only the newest recipe's records are used
(:func:`reid_core.results.identity.recipe_key`: the config identity without the seed, and the
data identity): records of an edited config, or of a run on regenerated data, are not seeds of
the same experiment and are listed as superseded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from reid_core.data.names import (
    NO_DATASET, RECORD_DATASETS, column_of, imitated, is_smoke, record_dataset_names)
from reid_core.results.identity import recipe_key
from reid_core.results.paper_tables import PaperTable
from reid_core.results.record_types import EVALUATION, MEASUREMENT, record_kind
from reid_core.results.report.cell_values import record_dataset, run_id_of

__all__ = ["DATASET_TO_COLUMN", "PROFILES", "Selection", "select"]

#: Record dataset name -> the published tables' dataset whose columns it fills (a view of
#: :mod:`reid_core.data.names`). Deliberately absent: ``msmt17v2`` (faces blurred: a different
#: image set) and the ``*-trainval`` variants (train on train + val: not comparable).
DATASET_TO_COLUMN: Final[dict[str, str]] = {
    name: column for name in record_dataset_names()
    if (column := RECORD_DATASETS.get(name).column) is not None}
PROFILES: Final[tuple[str, ...]] = ("smoke", "paper")


@dataclass
class Selection:
    """Which records a report uses, on which scale, and which it ignored (and why)."""

    profile: str
    compare_to: str | None
    smoke_dataset: str | None
    records: list[dict[str, Any]]
    ignored: list[tuple[str, str]] = field(default_factory=list)
    #: The filters the caller asked for (None: not given). Kept so that an empty selection
    #: can say which filter matched nothing (:class:`~reid_core.results.report.EmptyReportError`).
    wanted_dataset: str | None = None
    wanted_profile: str | None = None
    #: Dataset -> (records of this table's configs on it, before any filter; ``smoke``,
    #: ``paper`` or why they are unusable): what the caller could have asked for instead.
    available: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Records given in all (of any config).
    n_given: int = 0
    #: Evaluation records (``python -m reid_core evaluate``: e.g. multi-query) of the selected
    #: runs, which fill the columns their settings fit (multi-query columns).
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    def column_dataset(self, record: Mapping[str, Any]) -> str | None:
        """The published dataset whose columns ``record`` fills."""
        if self.profile == "smoke":
            return self.compare_to
        return column_of(record_dataset(record))


def _table_datasets(table: PaperTable) -> list[str]:
    """The table's column datasets, first-appearance order, without ``n/a``."""
    return list(dict.fromkeys(c.dataset for c in table.columns if c.dataset != NO_DATASET))


def select(
    table: PaperTable,
    records: Sequence[Mapping[str, Any]],
    dataset: str | None,
    profile: str | None,
    compare_to: str | None,
) -> Selection:
    """Keep the records of this table's configs that fit one profile; note the others."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    datasets = _table_datasets(table)
    if compare_to is not None and compare_to not in datasets:
        raise ValueError(f"{table.table_id} has no {compare_to!r} columns; "
                         f"--compare-to must be one of: {', '.join(datasets) or '(none)'}")
    configs = {row.config for row in table.rows if row.config is not None}
    evaluations = [dict(r) for r in records if record_kind(r) == EVALUATION
                   and r.get("config_name") in configs]
    records = [r for r in records if record_kind(r) != EVALUATION]
    wanted_profile = profile
    ignored: list[tuple[str, str]] = []
    smoke: list[dict[str, Any]] = []
    real: list[dict[str, Any]] = []
    any_column = any(c.dataset == NO_DATASET for c in table.columns)
    for record in records:
        if record.get("config_name") not in configs:
            continue
        if table.rules.retrieval_metrics and record_kind(record) == MEASUREMENT:
            continue  # a parameter count or cost of the same config: another table's record
        name = record_dataset(record)
        reason = _dataset_problem(name, dataset, datasets, any_column)
        if reason is not None:
            ignored.append((run_id_of(record), reason))
        else:
            (smoke if is_smoke(name) else real).append(dict(record))
    real, smoke = _drop_superseded(real, ignored), _drop_superseded(smoke, ignored)
    context: dict[str, Any] = {
        "wanted_dataset": dataset, "wanted_profile": wanted_profile, "n_given": len(records),
        "available": _available(records, configs, datasets, any_column)}
    if profile is None:
        profile = "paper" if real or not smoke else "smoke"
    if profile == "paper":
        ignored += [(run_id_of(r), f"smoke run on {record_dataset(r)}; see the smoke profile")
                    for r in smoke]
        return Selection("paper", None, None, real, ignored, **context,
                         evaluations=_of_runs(evaluations, real))
    ignored += [(run_id_of(r), f"real-dataset run on {record_dataset(r)}; see the paper profile")
                for r in real]
    target = compare_to or (datasets[0] if datasets else None)
    # Synthetic data read under the target's protocol (CUHK03 classic, ...) is preferred; data
    # read under another table's protocol never lines up with this one.
    fitting = [r for r in smoke if target in imitated(record_dataset(r))]
    pool = fitting or [r for r in smoke if not imitated(record_dataset(r))]
    for r in smoke:
        if r in pool:
            continue
        name = record_dataset(r)
        why = (f"imitates the protocol of {', '.join(imitated(name))}, not of {target}"
               if imitated(name) else f"this report uses the runs under {target}'s protocol")
        ignored.append((run_id_of(r), f"smoke run on {name}: {why}"))
    smoke = pool
    counts = Counter(record_dataset(r) for r in smoke)
    chosen = max(sorted(counts), key=counts.__getitem__) if counts else None
    kept = [r for r in smoke if record_dataset(r) == chosen]
    ignored += [(run_id_of(r), f"smoke run on {record_dataset(r)}; this report uses {chosen}")
                for r in smoke if record_dataset(r) != chosen]
    return Selection("smoke", target, chosen, kept, ignored, **context,
                     evaluations=_of_runs(evaluations, kept))


def _of_runs(evaluations: list[dict[str, Any]], runs: list[dict[str, Any]]
             ) -> list[dict[str, Any]]:
    """The evaluations of ``runs`` (by run id and training attempt), each given its run's
    primary feature (evaluation records do not name one)."""
    by_id = {r.get("run_id"): r for r in runs}
    out = []
    for e in evaluations:
        run = by_id.get(e.get("run_id"))
        if run is not None and e.get("attempt") == run.get("attempt"):
            out.append({**e, "primary_feature": run.get("primary_feature")})
    return out


def _available(
    records: Sequence[Mapping[str, Any]], configs: set[str], datasets: list[str],
    any_column: bool,
) -> dict[str, tuple[int, str]]:
    """Per dataset, the records of ``configs`` on it and their profile (or why unusable).

    Ignores the caller's filters on purpose: it answers "what else could I report?".
    """
    counts = Counter(record_dataset(r) for r in records if r.get("config_name") in configs)
    out: dict[str, tuple[int, str]] = {}
    for name in sorted(counts):
        problem = _dataset_problem(name, None, datasets, any_column)
        status = problem or ("smoke" if is_smoke(name) else "paper")
        out[name] = (counts[name], status)
    return out


def _drop_superseded(records: list[dict[str, Any]],
                     ignored: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per (config name, dataset), keep only the newest recipe.

    A config edited after some runs leaves records of two recipes under one name; averaging
    them as if they were seeds would be wrong, so the older recipe's records are set aside.
    """
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r.get("config_name"), record_dataset(r))].append(r)
    kept: list[dict[str, Any]] = []
    for group in groups.values():
        keys = [recipe_key(r) for r in group]  # one config validation per record
        if len(set(keys)) <= 1:
            kept += group
            continue
        newest = max(range(len(group)), key=lambda i: str(group[i].get("finished_at", "")))
        for r, key in zip(group, keys):
            if key == keys[newest]:
                kept.append(r)
            else:
                ignored.append((run_id_of(r), "superseded: the config or the data it ran on "
                                              "changed since this run (newer recipe "
                                              f"{keys[newest]})"))
    return kept


def _dataset_problem(
    name: str, wanted: str | None, datasets: list[str], any_column: bool
) -> str | None:
    """Why a record on dataset ``name`` cannot be used in this table, or None."""
    column = column_of(name)
    if wanted is not None and wanted not in (name, column):
        return f"ran on {name}, not on the requested dataset {wanted}"
    if is_smoke(name):
        return None
    if column is None:
        return f"dataset {name!r} has no published counterpart ({_why_no_column(name)})"
    if column not in datasets and not any_column:
        return f"the table has no {column} columns"
    return None


def _why_no_column(name: str) -> str:
    """The declared reason a record dataset fills no column, or that it is not declared."""
    if name not in record_dataset_names():
        return "not a dataset declared in reid_core/data/names.py"
    return f"{RECORD_DATASETS.get(name).why_no_column}; see reid_core/data/names.py"
