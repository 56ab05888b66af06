"""Run configuration: YAML validated into typed dataclasses.

* :mod:`~reid_core.config.schema`: the sections (:class:`RunConfig` and its parts);
* :mod:`~reid_core.config.check`: validation and loading (``load_config``, ``config_from_dict``,
  ``parse_options`` for registered components' options);
* :mod:`~reid_core.config.migrate`: config format 1 -> 2, and the identity (``config_hash``)
  that the migration keeps;
* :mod:`~reid_core.config.names`: the names of the test features.
"""

from reid_core.config.check import (
    NAME_PATTERN,
    check_name,
    check_ranks,
    config_from_dict,
    load_config,
    nest_overrides,
    parse_options,
    parse_overrides,
)
from reid_core.config.schema import (
    ADDED,
    AttentionConfig,
    DataConfig,
    EvalConfig,
    LossConfig,
    LossTermConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
)
from reid_core.utils.yaml_io import ConfigError

__all__ = [
    "ADDED", "AttentionConfig", "ConfigError", "DataConfig", "EvalConfig", "LossConfig",
    "LossTermConfig", "ModelConfig", "NAME_PATTERN", "OptimConfig", "RunConfig", "check_name",
    "check_ranks", "config_from_dict", "load_config", "nest_overrides", "parse_options",
    "parse_overrides",
]
