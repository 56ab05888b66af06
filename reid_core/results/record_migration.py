"""Record formats: reading an older record as the current format (:data:`RECORD_FORMAT`).

Migrations run on *read* (:func:`reid_core.results.store.read_record`), on a copy: files on disk
are never rewritten, and a record's ``run_id`` and ``config_hash`` are never touched (they are
the identities the record was written under; the config identity is migration-proof, see
:mod:`reid_core.config.migrate`).

**Format 1 -> 2.** Format 1 called the PCB heads' test features by BNNeck's names
(``before_bn`` = the pooled stripes, ``after_bn`` = the reduced parts); format 2 uses the names
the heads declare (``parts_pooled`` / ``parts_reduced``,
:data:`reid_core.config.migrate.LEGACY_FEATURE_NAMES`), and logged PCB's cross-entropy as ``ce``
and deep supervision as ``aux`` (format 2: ``part_ce``, ``deep_supervision``). The renames apply
to ``final``, ``history`` (:func:`reid_core.config.migrate.migrate_history`),
``primary_feature`` and the ``config`` (which becomes config
format 2 through :func:`reid_core.config.migrate.migrate_raw`). A record of a format-1
*evaluation* carries no config, hence no head: its feature names are left as written (no
committed evaluation is of a PCB run).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from reid_core.config import ConfigError, ModelConfig
from reid_core.config.migrate import LEGACY_FEATURE_NAMES, migrate_history, migrate_raw
from reid_core.results.record_types import RECORD_FORMAT
from reid_core.utils.registry import Registry

__all__ = ["MIGRATIONS", "migrate_record", "record_format"]

Migration = Callable[[dict[str, Any]], dict[str, Any]]
#: ``str(n)`` -> the step from format n to n + 1 (it may change its argument: a copy).
MIGRATIONS: Registry[Migration] = Registry("record migration")


def record_format(data: Mapping[str, Any]) -> int:
    """The format a record mapping was written in (records without the key: format 1)."""
    version = data.get("format_version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


def migrate_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a copy) in format :data:`RECORD_FORMAT`; a newer format is returned as is (its
    keys are kept by the typed records, unknown ones in ``extra``)."""
    out = copy.deepcopy(dict(data))
    version = record_format(out)
    if version >= RECORD_FORMAT:
        return out
    while version < RECORD_FORMAT:
        out = MIGRATIONS.get(str(version))(out)
        version += 1
    out["format_version"] = RECORD_FORMAT
    return out


def _rename_keys(mapping: Any, names: Mapping[str, str]) -> Any:
    """``mapping`` with its keys renamed by ``names`` (order kept); non-mappings as given."""
    if not isinstance(mapping, dict):
        return mapping
    return {names.get(k, k): v for k, v in mapping.items()}


@MIGRATIONS.register("1")
def _format1_to_2(record: dict[str, Any]) -> dict[str, Any]:
    """PCB feature names (see the module docstring) and config format 2."""
    config = record.get("config")
    if not isinstance(config, dict):
        return record
    model = config.get("model")
    head = (model if isinstance(model, dict) else {}).get("name", ModelConfig().name)
    try:
        record["config"] = migrate_raw(config)
    except ConfigError:
        pass  # an invalid format-1 loss: config_from_dict reports it when the config is used
    if "history" in record:
        record["history"] = migrate_history(record["history"], model)
    names = LEGACY_FEATURE_NAMES.get(head)
    if not names:
        return record
    if "final" in record:
        record["final"] = _rename_keys(record["final"], names)
    if isinstance(record.get("primary_feature"), str):
        record["primary_feature"] = names.get(record["primary_feature"], record["primary_feature"])
    return record
