"""Table kinds: how the rows of a published table are reproduced and which report renders it.

A table declares its kind in its file (``paper_tables/<id>.yaml`` ``kind:``, the schema rules in
:mod:`reid_core.results.table_kinds`); :data:`TABLE_KINDS` maps the kind to its behaviour:

==============  ===========================  =============================  =================
kind            row runner                   report                         reproduce profile
==============  ===========================  =============================  =================
``metrics``     :func:`train_row`            comparison (gains, verdicts)   as given
``parameters``  :func:`count_parameters_row` comparison (measured counts)   ``paper``
``cost``        :func:`measure_cost_row`     cost (ratios to the baseline)  ``paper``
``data``        none (published data only)   comparison                     --
==============  ===========================  =============================  =================

``reid_core.app.reproduce.main`` runs a table's rows with its kind's runner and renders its
report; the command line renders a report with :func:`render_table_report`. A row runner is
``run_row(cfg, args, console) -> record dict`` (``args``: the reproduce flags).
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reid_core.app.experiment import run_experiment
from reid_core.app.paper_configs import PROFILES, records_of_profile
from reid_core.config import RunConfig
from reid_core.data.names import NO_DATASET
from reid_core.results.paper_tables import PaperTable, load_table
from reid_core.results.record_types import RUN, MeasurementRecord, record_kind
from reid_core.results.records import software_versions, utc_now
from reid_core.results.report import (
    Environment, compare, cost_environment, render_cost_report, row_summary, write_report)
from reid_core.results.store import EVALUATIONS, RunStore, load_records
from reid_core.utils.registry import Registry

__all__ = [
    "MARKET_TRAIN_IDS",
    "TABLE_KINDS",
    "RenderedReport",
    "ReportFilters",
    "RowRunner",
    "TableKind",
    "count_parameters_row",
    "measure_cost_row",
    "render_for_reproduce",
    "render_table_report",
    "table_kind",
    "train_row",
]

RowRunner = Callable[[RunConfig, argparse.Namespace, Console], dict[str, Any]]


# --------------------------------------------------------------------------- row runners


def train_row(cfg: RunConfig, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Train and evaluate the row's config (:func:`~reid_core.app.experiment.run_experiment`):
    a finished run is skipped, an interrupted one resumes."""
    return run_experiment(cfg, data_root=args.data_root, out=args.out, device=args.device,
                          resume=True, force=args.force, console=console, profile=args.profile,
                          note_fresh_start=False)


#: Identities in the Market-1501 training split: the classifier size of the parameter counts
#: (with it, RGA Table 3's Baseline, FC-S, RGA-S and CBAM-C round to the published 25.1 /
#: 26.9 / 28.3 / 26.4; with CUHK03-NP's 767, CBAM-C gives 26.5; tests/test_attention_rga.py)
#: and of the cost models (where the classifier is a negligible part of the cost).
MARKET_TRAIN_IDS = 751


def _untrained_model(cfg: RunConfig, num_classes: int) -> torch.nn.Module:
    """The row's model at its input size, randomly initialised (counting and cost measurement
    need no weights)."""
    from reid_core.models import build_model

    model_cfg = dataclasses.replace(cfg.model, pretrained=None)
    return build_model(model_cfg, num_classes, (cfg.data.height, cfg.data.width))


def _write_measurement(cfg: RunConfig, args: argparse.Namespace, run_id: str, num_classes: int,
                       measurements: dict[str, Any],
                       device: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write (atomically, to the run store ``args.out``) and return a measurement record: no
    training, no dataset."""
    record = MeasurementRecord(
        run_id=run_id, config_name=cfg.name, config_hash=cfg.config_hash(), seed=cfg.seed,
        config=cfg.to_dict(), dataset={"name": NO_DATASET, "classifier_classes": num_classes},
        input_size=[cfg.data.height, cfg.data.width], profile=args.profile, device=device,
        versions=software_versions(), finished_at=utc_now(), measurements=measurements)
    RunStore(Path(args.out)).write_record(record)
    return record.to_dict()


def count_parameters_row(cfg: RunConfig, args: argparse.Namespace,
                         console: Console) -> dict[str, Any]:
    """Build the row's model (random init) and count its parameters; nothing is trained.

    The model is built for the *paper* input size of ``cfg`` with a ``MARKET_TRAIN_IDS``-way
    classifier; the count is of the whole model, head and classifier included.
    """
    model = _untrained_model(cfg, MARKET_TRAIN_IDS)
    params = sum(p.numel() for p in model.parameters())
    record = _write_measurement(cfg, args, f"{cfg.name}-params{MARKET_TRAIN_IDS}-"
                                           f"{cfg.config_hash()}",
                                MARKET_TRAIN_IDS, {"params": params})
    console.print(f"{cfg.name}: {params:,} parameters ({params / 1e6:.2f} M)")
    return record


def measure_cost_row(cfg: RunConfig, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Build the row's model (random init) at its input size and measure memory per image and
    inference FPS (:func:`reid_core.engine.cost.measure_model_cost`); nothing is trained.

    Every invocation writes a new record (measurements vary run to run); the report takes the
    median over records of a row.
    """
    from reid_core.engine.cost import measure_model_cost
    from reid_core.utils.device import resolve_device

    device = resolve_device(args.device)
    torch.manual_seed(cfg.seed)
    model = _untrained_model(cfg, MARKET_TRAIN_IDS)
    cost = measure_model_cost(model, (cfg.data.height, cfg.data.width), device)
    run_id = f"{cfg.name}-cost-{cfg.config_hash()}-{utc_now().replace(':', '')}"
    record = _write_measurement(
        cfg, args, run_id, MARKET_TRAIN_IDS,
        {"params": sum(p.numel() for p in model.parameters()), **cost},
        device=device.describe())
    mem = cost["memory_per_image_mb"]
    console.print(f"{cfg.name}: train {mem['train']:.1f} MB/img, inference "
                  f"{mem['inference']:.1f} MB/img, {cost['fps']['median']:.1f} FPS (median; "
                  f"best {cost['fps']['best']:.1f})")
    return record


# --------------------------------------------------------------------------- renderers


@dataclass(frozen=True)
class ReportFilters:
    """Which records a comparison report uses (``report --dataset/--profile/--compare-to``)."""

    dataset: str | None = None
    profile: str | None = None
    compare_to: str | None = None
    #: ``(run id, reason)`` of the table's records left out before the report (another
    #: reproduce profile's recipes): the report lists them with the records it did not use.
    excluded: tuple[tuple[str, str], ...] = ()

    def given(self) -> list[str]:
        """The flags that were given (for a report that takes none)."""
        return [flag for flag, value in (("--dataset", self.dataset),
                                         ("--profile", self.profile),
                                         ("--compare-to", self.compare_to)) if value]


@dataclass(frozen=True)
class RenderedReport:
    """What a renderer wrote, and what the command line prints about it."""

    path: Path
    #: The software the used records were made with (its warnings are printed).
    environment: Environment
    #: Title and ``(row, records, verdict)`` per printed row, for a summary table; None when
    #: the report has no per-row verdicts (cost).
    title: str | None = None
    rows: list[tuple[str, int, str]] | None = None


Renderer = Callable[[PaperTable, list[dict[str, Any]], Path, ReportFilters], RenderedReport]


def _render_comparison(table: PaperTable, records: list[dict[str, Any]], out_dir: Path,
                       filters: ReportFilters) -> RenderedReport:
    """Published vs reproduced cell by cell (:func:`reid_core.results.report.compare`)."""
    comp = compare(table, records, dataset=filters.dataset, profile=filters.profile,
                   compare_to=filters.compare_to, excluded=filters.excluded)
    path = write_report(comp, out_dir)
    title = (f"{table.table_id} ({comp.selection.profile} profile, "
             f"{len(comp.selection.records)} records)")
    return RenderedReport(path, comp.environment, title, row_summary(comp))


def _render_cost(table: PaperTable, records: list[dict[str, Any]], out_dir: Path,
                 filters: ReportFilters) -> RenderedReport:
    """Ratios of memory and FPS to the baseline row
    (:func:`reid_core.results.report.render_cost_report`)."""
    if filters.given():
        raise ValueError(f"{table.table_id} is a cost table (memory / FPS measurements): "
                         f"--dataset, --profile and --compare-to do not apply")
    path = render_cost_report(table.table_id, records, out_dir)
    return RenderedReport(path, cost_environment(table, records))


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class TableKind:
    """What a table kind does: reproduce its rows, render its report."""

    name: str
    #: Reproduces one row (one config and seed); None: the table's rows are published data.
    run_row: RowRunner | None
    render: Renderer
    #: The reproduce profile the rows always run with (None: the user's): parameter counts and
    #: costs are of the paper-size model, whose input size determines them.
    profile: str | None = None
    #: Whether the report takes the record filters (a reproduce run passes its profile).
    filtered: bool = True


TABLE_KINDS: Registry[TableKind] = Registry("table kind")
for _kind in (
    TableKind("metrics", train_row, _render_comparison),
    TableKind("parameters", count_parameters_row, _render_comparison, profile="paper"),
    TableKind("cost", measure_cost_row, _render_cost, profile="paper", filtered=False),
    TableKind("data", None, _render_comparison),
):
    TABLE_KINDS.register(_kind.name)(_kind)
del _kind  # tests/test_tables.py checks that these are the kinds of the schema (TABLE_KIND_RULES)


def table_kind(table: PaperTable) -> TableKind:
    """The behaviour of ``table``'s declared kind."""
    return TABLE_KINDS.get(table.kind)


def render_table_report(table_id: str, runs_dir: str | Path, out_dir: str | Path,
                        console: Console, *, dataset: str | None = None,
                        profile: str | None = None, compare_to: str | None = None) -> Path:
    """Write the report of ``table_id`` -- the one of its kind -- from the records in
    ``runs_dir`` into ``out_dir``; print its summary; return the Markdown path.

    Prints a note per file of ``runs_dir`` that is not a readable record, the per-row verdict
    table (comparison reports) and the environment warnings (records of mixed builds). The
    caller prints where the report went.

    Raises (user errors, for the command line to print as one line):
        PaperTableError: unknown table id (the message lists the valid ones).
        FileNotFoundError: ``runs_dir`` is not a directory.
        ValueError: filters that do not apply to the table's kind (a cost table).
        EmptyReportError: no record to report; the existing report is left untouched.
    """
    table = load_table(table_id)
    with warnings.catch_warnings(record=True) as skipped:  # unreadable records: one note each
        warnings.simplefilter("always", UserWarning)
        records = load_records(Path(runs_dir))
        # Evaluations of those runs (multi-query, ...) live beside them (RunStore).
        evaluations = Path(runs_dir).parent / EVALUATIONS
        if evaluations.is_dir():
            records += load_records(evaluations)
    for w in skipped:
        console.print(f"[yellow]note[/]: {escape(str(w.message))}", highlight=False,
                      soft_wrap=True)
    kind, out_dir, filters = table_kind(table), Path(out_dir), ReportFilters(dataset, None,
                                                                             compare_to)
    if profile is not None and kind.filtered:
        records, out_dir, filters = _profile_filter(table, records, out_dir, filters, profile)
    elif profile is not None:
        filters = dataclasses.replace(filters, profile=profile)  # the kind says it does not apply
    report = kind.render(table, records, out_dir, filters)
    if report.rows is not None:
        summary = Table(title=report.title)
        summary.add_column("row")
        summary.add_column("n", justify="right")
        summary.add_column("verdict")
        for row, n, verdict in report.rows:
            summary.add_row(row, str(n), verdict)
        console.print(summary)
    for warning in report.environment.warnings():  # the report header lists rows per version
        console.print(warning, style="bold yellow", markup=False, highlight=False,
                      soft_wrap=True)
    return report.path


def render_for_reproduce(table: PaperTable, records: Sequence[dict[str, Any]], out_dir: Path,
                         profile: str | None) -> Path:
    """The report a reproduce run ends with (its profile as the filter, where it applies)."""
    kind = table_kind(table)
    if not kind.filtered or profile is None:
        return kind.render(table, list(records), out_dir, ReportFilters()).path
    records, out_dir, filters = _profile_filter(table, records, out_dir, ReportFilters(),
                                                profile)
    return kind.render(table, records, out_dir, filters).path


def _profile_filter(table: PaperTable, records: Sequence[dict[str, Any]], out_dir: Path,
                    filters: ReportFilters, profile: str
                    ) -> tuple[list[dict[str, Any]], Path, ReportFilters]:
    """The records of reproduce profile ``profile`` (its recipes: ``smoke`` and ``scratch``
    share the synthetic data), the directory of its report, and the filters at its scale."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    spec = PROFILES[profile]
    kept = [dict(r) for r in records_of_profile(table.paper, records, profile)]
    # Run records only: an evaluation shares its run's id (and follows it, in the selection).
    ids = {r.get("run_id") for r in kept if record_kind(r) == RUN}
    configs = {row.config for row in table.rows if row.config is not None}
    excluded = tuple((str(r.get("run_id")), f"not a run of the {profile} profile's recipe for "
                                            f"its row (see report --profile)")
                     for r in records
                     if record_kind(r) == RUN and r.get("config_name") in configs
                     and r.get("run_id") not in ids)
    if spec.reports_subdir is not None:
        out_dir = out_dir / spec.reports_subdir
    return kept, out_dir, dataclasses.replace(filters, profile=spec.scale, excluded=excluded)
