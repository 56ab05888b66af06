"""Dataset names: the one list of them, and what each is called in the published tables.

Two kinds of names meet in a report, and both are declared here:

* **record datasets** (:data:`RECORD_DATASETS`): what a loader is registered under and what a
  run record stores as ``dataset.name`` (``cuhk03np-labeled``, ``synthetic-small``, ...);
* **table datasets** (:data:`TABLE_DATASETS`): what a published table's column names as its
  dataset (``paper_tables/*.yaml`` ``columns[].dataset``: ``cuhk03-labeled``, ``brown``, ...).

Each record dataset names the table dataset whose columns its records fill (``column``), or
None with the reason it has none (``msmt17v2``: faces blurred, another image set). The loader
registry (:func:`reid_core.data.base.register_dataset`) refuses a name not declared here, the
paper-table schema accepts exactly :func:`table_dataset_names`, and the report maps records to
columns with :func:`column_of`: a new dataset is added in one place, with its column.

Data layer: imports only ``reid_core.utils``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from reid_core.utils.registry import Registry

__all__ = [
    "NO_DATASET",
    "RECORD_DATASETS",
    "TABLE_DATASETS",
    "RecordDataset",
    "TableDataset",
    "column_of",
    "imitated",
    "is_smoke",
    "record_dataset",
    "record_dataset_names",
    "smoke_variant",
    "table_dataset_names",
]

#: The dataset of a record that ran on none (parameter counts, cost measurements) and of the
#: table columns of dataset-independent quantities.
NO_DATASET: Final[str] = "n/a"


@dataclass(frozen=True)
class TableDataset:
    """A dataset as the published tables name their columns."""

    name: str
    #: The dataset family (``cuhk03`` for every CUHK03 protocol and box type, ...).
    family: str
    description: str


@dataclass(frozen=True)
class RecordDataset:
    """A dataset a run can be recorded on (a loader's registry name)."""

    name: str
    family: str
    #: The :class:`TableDataset` whose columns its records fill; None: no published counterpart.
    column: str | None
    #: Why there is no column (shown to the user when such a record is left out of a report).
    why_no_column: str | None = None
    #: Synthetic, smoke scale: its numbers line up with a published column only in direction.
    smoke: bool = False
    #: False for :data:`NO_DATASET`, the only record dataset no loader reads.
    has_loader: bool = True
    #: A smoke dataset that reads a synthetic preset under a published protocol: that preset
    #: (``variant_of``) and the table datasets whose protocol it imitates (``imitates``).
    #: Smoke reports of those columns use its records; other tables leave them out.
    variant_of: str | None = None
    imitates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A record dataset without a column must say why (the report prints it), and a smoke
        # dataset never has one (its numbers are never compared in absolute terms).
        if self.column is None and not self.smoke and not self.why_no_column:
            raise ValueError(f"dataset {self.name!r}: no column and no why_no_column")
        if self.smoke and self.column is not None:
            raise ValueError(f"dataset {self.name!r}: a smoke dataset has no column")
        if (self.variant_of is None) != (not self.imitates) or (self.imitates and not self.smoke):
            raise ValueError(f"dataset {self.name!r}: a protocol variant is a smoke dataset "
                             f"with both variant_of and imitates")


TABLE_DATASETS: Registry[TableDataset] = Registry("paper-table dataset")
RECORD_DATASETS: Registry[RecordDataset] = Registry("record dataset")


def _table(name: str, family: str, description: str) -> None:
    TABLE_DATASETS.register(name)(TableDataset(name, family, description))


def _record(name: str, family: str, column: str | None, **kwargs: object) -> None:
    if column is not None:
        TABLE_DATASETS.get(column)  # a typo here fails at import, naming the valid columns
    RECORD_DATASETS.register(name)(RecordDataset(name, family, column, **kwargs))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- table datasets

_table("market1501", "market1501", "Market-1501")
_table("dukemtmcreid", "dukemtmcreid", "DukeMTMC-reID")
_table("cuhk03-labeled", "cuhk03", "CUHK03, new protocol (767/700 ids), labeled boxes")
_table("cuhk03-detected", "cuhk03", "CUHK03, new protocol (767/700 ids), detected boxes")
_table("cuhk03-classic-labeled", "cuhk03",
       "CUHK03, classic protocol (1,367/100 ids, 20 splits), labeled boxes")
_table("cuhk03-classic-detected", "cuhk03",
       "CUHK03, classic protocol (1,367/100 ids, 20 splits), detected boxes")
_table("msmt17", "msmt17", "MSMT17 (V1)")
_table("partial-reid", "partial", "Partial-REID (test only)")
_table("partial-ilids", "partial", "Partial-iLIDS (test only)")
_table("brown", "descriptors", "Brown local patches (FPR95; train/test pair in the column)")
_table("hpatches", "descriptors", "HPatches local descriptors")
_table(NO_DATASET, "none", "dataset-independent quantities (parameter counts, cost)")

# --------------------------------------------------------------------------- record datasets

_record("market1501", "market1501", "market1501")
_record("dukemtmcreid", "dukemtmcreid", "dukemtmcreid")
_record("cuhk03np-labeled", "cuhk03", "cuhk03-labeled")
_record("cuhk03np-detected", "cuhk03", "cuhk03-detected")
# The same CUHK03-NP split read from cuhk-03.mat instead of the extracted images.
_record("cuhk03np-mat-labeled", "cuhk03", "cuhk03-labeled")
_record("cuhk03np-mat-detected", "cuhk03", "cuhk03-detected")
_record("cuhk03-classic-labeled", "cuhk03", "cuhk03-classic-labeled")
_record("cuhk03-classic-detected", "cuhk03", "cuhk03-classic-detected")
_record("msmt17", "msmt17", "msmt17")
_record("msmt17v2", "msmt17", None,
        why_no_column="MSMT17 V2 blurs the faces: another image set than the published V1")
_record("msmt17-trainval", "msmt17", None,
        why_no_column="trains on train + val: not comparable with the published numbers")
_record("msmt17v2-trainval", "msmt17", None,
        why_no_column="V2 images, trained on train + val: not comparable with published numbers")
_record("partial-reid", "partial", "partial-reid")
_record("partial-ilids", "partial", "partial-ilids")
for _prefix in ("synthetic", "synthetic-small", "synthetic-tiny"):
    _record(_prefix, "synthetic", None, smoke=True)
    for _protocol in ("partial-reid", "partial-ilids"):
        _record(f"{_prefix}-{_protocol}", "synthetic", None, smoke=True, variant_of=_prefix,
                imitates=(_protocol,))
    _record(f"{_prefix}-cuhk03-classic", "synthetic", None, smoke=True, variant_of=_prefix,
            imitates=("cuhk03-classic-labeled", "cuhk03-classic-detected"))
del _prefix, _protocol
# The pretraining corpus (reid_core.app.pretrain): trained on, never a table's dataset.
_record("synthetic-pretrain", "synthetic", None, smoke=True)
_record(NO_DATASET, "none", NO_DATASET, has_loader=False)


# --------------------------------------------------------------------------- queries


def table_dataset_names() -> tuple[str, ...]:
    """The datasets a paper table's column may name, sorted."""
    return tuple(TABLE_DATASETS.names())


def record_dataset_names() -> tuple[str, ...]:
    """The datasets a record may have run on, sorted."""
    return tuple(RECORD_DATASETS.names())


def record_dataset(name: str) -> RecordDataset:
    """The declaration of record dataset ``name`` (KeyError listing the valid ones)."""
    return RECORD_DATASETS.get(name)


def column_of(name: str) -> str | None:
    """The table dataset whose columns records on ``name`` fill; None for an undeclared name,
    a smoke dataset or one without published counterpart."""
    if name not in RECORD_DATASETS.names():
        return None
    return RECORD_DATASETS.get(name).column


def smoke_variant(base: str, column: str) -> str | None:
    """The smoke dataset that reads synthetic preset ``base`` under the protocol of table
    dataset ``column`` (``synthetic-small``, ``cuhk03-classic-detected`` ->
    ``synthetic-small-cuhk03-classic``); None when there is none (``base`` itself serves)."""
    for name in RECORD_DATASETS.names():
        declared = RECORD_DATASETS.get(name)
        if declared.variant_of == base and column in declared.imitates:
            return name
    return None


def imitated(name: str) -> tuple[str, ...]:
    """The table datasets whose protocol smoke dataset ``name`` imitates (() for a plain
    synthetic preset, a real dataset or an unknown name)."""
    return RECORD_DATASETS.get(name).imitates if name in RECORD_DATASETS.names() else ()


def is_smoke(name: str) -> bool:
    """True for a synthetic (smoke-scale) record dataset; False for any other or unknown name."""
    return name in RECORD_DATASETS.names() and RECORD_DATASETS.get(name).smoke
