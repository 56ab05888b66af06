"""Transitional alias of :mod:`reid_core.results.report` for ``reid_core/cli/report.py`` and
``reid_core/cli/reproduce.py`` (``_interim_runner``).

TODO(cli split, issue 11): delete this module once the CLI's ``report`` command calls
:func:`reid_core.app.tables.render_table_report` (which picks the report by the table's kind)
and ``reproduce`` no longer passes runners and reports itself.
"""

from reid_core.results.report import cost_environment, is_cost_table, render_cost_report

__all__ = ["cost_environment", "is_cost_table", "render_cost_report"]
