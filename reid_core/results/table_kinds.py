"""The kinds of published table: what a ``paper_tables/*.yaml`` ``kind:`` may say, and the rules
of each.

A table's kind is data, declared in its file: it decides how its columns are validated here and,
in the application layer (:mod:`reid_core.app.tables`), how its rows are reproduced and which
report renders it. Adding a kind = one entry here (schema) + one in ``reid_core.app.tables``
(runner, renderer); ``tests/test_tables.py`` checks that both name the same kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from reid_core.utils.registry import Registry

__all__ = ["KIND_ORDER", "TABLE_KIND_RULES", "TableKindRules", "kind_rules"]


@dataclass(frozen=True)
class TableKindRules:
    """What the schema requires of the columns and rows of a table of one kind."""

    name: str
    description: str
    #: Columns are retrieval metrics (``R<k>``, ``mAP``, ...; unit ``%`` by default) and gains
    #: over the baseline row are checked; otherwise columns are quantities with a unit.
    retrieval_metrics: bool
    #: The column metrics (quantities) a table of this kind may have; None = any snake_case
    #: quantity (with a unit).
    quantities: frozenset[str] | None = None
    #: Every row that is not ``reference_only`` must name its config.
    rows_need_config: bool = False
    #: Cells are filled one by one from the records (the comparison report); False for a
    #: table whose report combines columns (cost: ratios of memory and FPS to the baseline).
    cellwise: bool = True


_DECLARED: Final[tuple[TableKindRules, ...]] = (
    TableKindRules("metrics", "retrieval metrics of trained models (R1, mAP, ...)",
                   retrieval_metrics=True, rows_need_config=True),
    TableKindRules("data", "published data nothing here reproduces (dataset statistics, "
                           "layer lists)", retrieval_metrics=False),
    TableKindRules("parameters", "parameter counts of the rows' models (built, not trained)",
                   retrieval_metrics=False, quantities=frozenset({"params"})),
    TableKindRules("cost", "memory per image and speed of the rows' models (measured, not "
                           "trained)", retrieval_metrics=False,
                   quantities=frozenset({"memory_per_image", "fps"}), cellwise=False),
)

TABLE_KIND_RULES: Registry[TableKindRules] = Registry("paper-table kind")
for _rules in _DECLARED:
    TABLE_KIND_RULES.register(_rules.name)(_rules)
del _rules

#: The kinds in declaration order (the order error messages list them in).
KIND_ORDER: Final[tuple[str, ...]] = tuple(rules.name for rules in _DECLARED)


def kind_rules(kind: str) -> TableKindRules:
    """The rules of ``kind`` (KeyError listing the valid kinds)."""
    return TABLE_KIND_RULES.get(kind)
