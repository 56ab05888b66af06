"""Reports: a published table and the reproduced records, side by side.

``python -m reid_core report <table-id>`` regenerates ``results/reports/<table-id>.md`` (plus its
PNG plots) from the records alone; which report a table gets is decided by its ``kind``
(:mod:`reid_core.app.tables`). From Python::

    records = load_records(Path("results/runs"))
    frame = build_comparison("rga_table1", records)       # one line per (row, published column)
    path = render_report("rga_table1", records)           # results/reports/rga_table1.md
    path = render_cost_report("csa_table6", records)      # a cost table: ratios to the baseline

The package keeps logic and rendering apart:

====================  =============================================================================
module                concept
====================  =============================================================================
``cell_values``       what a record supplies to a cell (metric, measurement, dataset)
``selection``         which records a report uses (profiles, dataset -> column, superseded recipes)
``uncertainty``       the confidence interval of a gain (paired bootstrap over queries, seeds)
``verdicts``          the verdict rule of a claim, per cell and per row
``comparison``        the comparison frame (pandas): values, gains, verdicts
``environment``       the software (and data versions) the records were made with
``cost``              the cost comparison (ratios of memory and FPS to the baseline row)
``markdown``          Markdown / number formatting shared by the renderers
``metrics_header``,   the Markdown of a metrics report
``metrics_markdown``
``cost_markdown``     the Markdown of a cost report
``metrics_plots``,    the plots (drawn with :mod:`reid_core.results.plotting`)
``cost_plots``
``metrics_report``,   the writers: files written atomically; :class:`EmptyReportError` when no
``cost_report``       record would be shown (a committed report is never replaced by nothing)
====================  =============================================================================
"""

from reid_core.results.report.comparison import (
    COMPARISON_COLUMNS, Comparison, build_comparison, compare, row_summary)
from reid_core.results.report.cost import cost_environment, cost_frame
from reid_core.results.report.cost_report import render_cost_report
from reid_core.results.report.cell_values import MEASUREMENTS, Measurement
from reid_core.results.report.environment import (
    BUILD_KEYS, ENVIRONMENT_KEYS, Environment, RecordLabel, VersionMix, record_version)
from reid_core.results.report.errors import EmptyReportError, untouched_text
from reid_core.results.report.metrics_report import render_report, write_report
from reid_core.results.report.selection import DATASET_TO_COLUMN, PROFILES
from reid_core.results.report.uncertainty import BootstrapSettings, GainInterval
# Reports read records through the one store reader; the command line takes it from here.
from reid_core.results.store import load_records

__all__ = [
    "BUILD_KEYS",
    "COMPARISON_COLUMNS",
    "DATASET_TO_COLUMN",
    "ENVIRONMENT_KEYS",
    "MEASUREMENTS",
    "PROFILES",
    "BootstrapSettings",
    "Comparison",
    "EmptyReportError",
    "Environment",
    "GainInterval",
    "Measurement",
    "RecordLabel",
    "VersionMix",
    "build_comparison",
    "compare",
    "cost_environment",
    "cost_frame",
    "load_records",
    "record_version",
    "render_cost_report",
    "render_report",
    "row_summary",
    "untouched_text",
    "write_report",
]
