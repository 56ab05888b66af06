"""Typed records: what a finished training run, a measurement and an evaluation write.

Three kinds of JSON record share their identity and provenance fields (:class:`Record`):

================  =========================================  ===================================
kind              written by                                 where (:mod:`reid_core.results.store`)
================  =========================================  ===================================
run               ``run_experiment`` (train + evaluate)      ``<out>/runs/<run_id>.json``
measurement       parameter count / cost runners (no train)  ``<out>/runs/<run_id>.json``
evaluation        ``evaluate`` (a run on another dataset)    ``<out>/evaluations/<...>.json``
================  =========================================  ===================================

``to_dict`` writes the JSON the suite has always written (same keys, same order: committed
records stay byte-comparable), ``from_dict`` reads it back without loss: keys this version does
not know are kept in ``extra`` and written again, and a nullable key absent from an older record
stays absent. Run records carry no ``kind`` key (they predate it); the other two say theirs.
Reading *files* (and migrating older formats) is the store's job: :func:`reid_core.results.store.read_record`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar

from reid_core.utils.registry import Registry

__all__ = [
    "EVALUATION",
    "MEASUREMENT",
    "RECORD_FORMAT",
    "RECORD_KINDS",
    "RUN",
    "EvaluationRecord",
    "MeasurementRecord",
    "Record",
    "RecordError",
    "RunRecord",
    "record_from_dict",
    "record_kind",
]

#: Format of the records written now. 2: test features named as the model's head declares them
#: (PCB: ``parts_pooled`` / ``parts_reduced``, format 1 used BNNeck's names) and the config in
#: config format 2; see :mod:`reid_core.results.record_migration` for reading format 1.
RECORD_FORMAT: Final[int] = 2

RUN: Final[str] = "run"
MEASUREMENT: Final[str] = "measurement"
EVALUATION: Final[str] = "evaluation"

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A record file or mapping that is not a valid record (the message names it and why)."""


@dataclass(kw_only=True)
class Record:
    """Identity and provenance shared by every record.

    ``run_id`` identifies the run (:func:`reid_core.results.identity.make_run_id`);
    ``config_hash`` the config (``RunConfig.config_hash``, seed included); their recipe -- the
    config without its seed, and the data -- is :func:`reid_core.results.identity.recipe_key`.
    """

    #: JSON ``kind`` (None: not written, the run records' convention).
    KIND: ClassVar[str | None] = None
    #: JSON key order of ``to_dict`` (fields not listed follow, then ``extra``).
    KEY_ORDER: ClassVar[tuple[str, ...]] = ()
    #: Fields written as ``null`` when None (None *means* something: "not resumed", "random
    #: init"); other None fields are left out.
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    run_id: str
    config_name: str
    config_hash: str | None = None
    seed: int | None = None
    #: The resolved config (``RunConfig.to_dict()``); evaluations have none (their run has it).
    config: dict[str, Any] | None = None
    #: ``{"name": ..., "root", "identity", "splits"}`` (measurements: ``{"name": "n/a", ...}``).
    dataset: dict[str, Any] = field(default_factory=dict)
    #: ``DeviceSettings.describe()``.
    device: dict[str, Any] | None = None
    #: ``reid_core.results.records.software_versions()``.
    versions: dict[str, Any] = field(default_factory=dict)
    finished_at: str | None = None
    wall_time_s: float | None = None
    peak_memory: dict[str, Any] | None = None
    format_version: int | None = RECORD_FORMAT
    #: Keys this version does not know (an older or newer writer's): kept, written back.
    extra: dict[str, Any] = field(default_factory=dict)
    #: NULLABLE keys the source mapping did not have (so ``to_dict`` leaves them out again).
    _absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def kind(self) -> str:
        """``run``, ``measurement`` or ``evaluation``."""
        return self.KIND or RUN

    @property
    def dataset_name(self) -> str:
        """The dataset it ran on (``dataset.name``; ``n/a`` for measurements)."""
        return str(self.dataset.get("name"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON mapping (see the module docstring for what is written)."""
        values: dict[str, Any] = {"kind": self.KIND} if self.KIND is not None else {}
        values.update((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
                      if f.name not in ("extra", "_absent"))
        order = [*(k for k in self.KEY_ORDER if k in values),
                 *(k for k in values if k not in self.KEY_ORDER)]
        out: dict[str, Any] = {}
        for name in order:
            value = values[name]
            if value is None and (name not in self.NULLABLE or name in self._absent):
                continue
            out[name] = value
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """The record of a JSON mapping; :class:`RecordError` when it is not one of this kind."""
        problem = _problem(data, cls)
        if problem is not None:
            raise RecordError(problem)
        names = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in
                 ("extra", "_absent")}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "kind"}
        absent = frozenset(n for n in cls.NULLABLE if n not in data)
        if "format_version" not in data:
            known["format_version"] = None  # written without one (first-format evaluations)
        return cls(**known, extra=extra, _absent=absent)


def _problem(data: object, cls: type[Record]) -> str | None:
    """Why ``data`` is not a record of ``cls``'s kind, or None."""
    if not isinstance(data, Mapping):
        return f"not a record (expected a JSON object, got {type(data).__name__})"
    missing = [k for k in ("run_id", "config_name") if not isinstance(data.get(k), str)]
    dataset = data.get("dataset")
    if not isinstance(dataset, Mapping) or not isinstance(dataset.get("name"), str):
        missing.append("dataset.name")
    if missing:
        return f"not a record (missing {', '.join(missing)})"
    if (data.get("kind") or RUN) != (cls.KIND or RUN):
        return f"a {data.get('kind') or RUN} record, not a {cls.KIND or RUN} record"
    return None


@dataclass(kw_only=True)
class RunRecord(Record):
    """A finished training run: its history and final metrics (percent)."""

    KEY_ORDER: ClassVar[tuple[str, ...]] = (
        "format_version", "run_id", "attempt", "config_name", "config_hash", "seed", "config",
        "dataset", "run_identity", "device", "distributed", "versions", "command", "started_at",
        "finished_at", "wall_time_s", "segments", "peak_memory", "resumed_from_epoch", "pretrained",
        "pretrained_description", "profile", "metrics_unit", "history", "final",
        "primary_feature")
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"resumed_from_epoch", "pretrained", "profile"})

    #: Which training attempt of this run id (a ``--force`` re-run is a new attempt).
    attempt: int | None = None
    #: What the run started from besides its config (data identity, weights file digest; the
    #: world size of a run of several processes).
    run_identity: dict[str, Any] | None = None
    #: How many processes trained it: ``{"world_size", "per_rank_batch", "backend", "bn_mode"}``
    #: (``reid_core.app.ddp.distributed_record``; absent in records written before DDP: one
    #: process).
    distributed: dict[str, Any] | None = None
    command: str | None = None
    started_at: str | None = None
    #: The timed segments of the attempt (a resumed run has several).
    segments: list[dict[str, Any]] | None = None
    resumed_from_epoch: int | None = None
    pretrained: str | None = None
    #: What the backbone started from, in words, for reports (absent: random init, or a
    #: record written before it existed): e.g. "initialised from the synthetic-pretrained
    #: ResNet-18 <key> (sha256:...), trained on 1,000 disjoint identities (...)"
    #: (``reid_core.app.experiment.pretrained_description``).
    pretrained_description: str | None = None
    #: The reproduce profile (``smoke`` / ``paper``) the run belongs to, if any.
    profile: str | None = None
    metrics_unit: str | None = "percent"
    history: list[dict[str, Any]] = field(default_factory=list)
    #: ``{feature: {metric: value in percent, "CMC": [...], "per_query": {...}}}``;
    #: ``per_query`` (per-query AP and first-hit rank, market protocol; records written before
    #: it have none): :func:`reid_core.metrics.evaluator.per_query_results`.
    final: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The feature a paper table is compared on (the first of ``eval.features``).
    primary_feature: str | None = None


@dataclass(kw_only=True)
class MeasurementRecord(Record):
    """A measurement of a row's model without training: parameter count, memory, speed."""

    KIND: ClassVar[str | None] = MEASUREMENT
    KEY_ORDER: ClassVar[tuple[str, ...]] = (
        "format_version", "kind", "run_id", "config_name", "config_hash", "seed", "config",
        "dataset", "input_size", "profile", "device", "versions", "finished_at", "measurements")

    #: (height, width) the model was built and measured at.
    input_size: list[int] | None = None
    profile: str | None = None
    #: ``{"params": int}`` and/or the cost (``reid_core.engine.cost.measure_model_cost``).
    measurements: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class EvaluationRecord(Record):
    """A trained run evaluated on another dataset (or with other eval settings)."""

    KIND: ClassVar[str | None] = EVALUATION
    KEY_ORDER: ClassVar[tuple[str, ...]] = (
        "format_version", "kind", "run_id", "config_name", "config_hash", "seed", "trained_on",
        "attempt", "dataset", "protocol", "eval", "checkpoint_epoch", "device", "versions",
        "finished_at", "wall_time_s", "metrics_unit", "final")
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"attempt"})

    #: The dataset the run was trained on.
    trained_on: str | None = None
    attempt: int | None = None
    #: The evaluation protocol of the target dataset (``market``, ``cuhk03-classic``, ...).
    protocol: str | None = None
    #: The eval settings used (``dataclasses.asdict(EvalConfig)``).
    eval: dict[str, Any] = field(default_factory=dict)
    checkpoint_epoch: int | None = None
    metrics_unit: str | None = "percent"
    final: dict[str, dict[str, Any]] = field(default_factory=dict)


#: Record kind (``RUN`` for the run records, which carry no ``kind`` key) -> its class.
RECORD_KINDS: Registry[type[Record]] = Registry("record kind")
for _cls in (RunRecord, MeasurementRecord, EvaluationRecord):
    RECORD_KINDS.register(_cls.KIND or RUN)(_cls)
del _cls


def record_kind(data: Mapping[str, Any]) -> str:
    """The kind of a record mapping (``run`` when it says none)."""
    return str(data.get("kind") or RUN)


def record_from_dict(data: Mapping[str, Any]) -> Record:
    """The typed record of a mapping, by its ``kind``; :class:`RecordError` if it is not one."""
    kind = record_kind(data)
    if kind not in RECORD_KINDS.names():
        raise RecordError(f"unknown record kind {kind!r}; valid: {', '.join(RECORD_KINDS.names())}")
    return RECORD_KINDS.get(kind).from_dict(data)
