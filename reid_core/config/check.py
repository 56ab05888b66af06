"""Config validation: YAML (or a mapping) checked key by key into :class:`RunConfig`.

Every key is checked: an unknown key is an error that lists the valid keys of its section, and
every value is checked against the field's type (and its allowed values for choices), then
against its meaningful range (sizes >= 1, probabilities in [0, 1], CMC ranks >= 1, a run name
that is a plain file-name component). A key given twice in the YAML file is an error too.
Registered components (heads, backbones, loss terms) check their own ``options`` with
:func:`parse_options`, the same checker, when they are built.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from reid_core.config.migrate import migrate_raw
from reid_core.config.names import declared_features
from reid_core.config.schema import RunConfig
# ConfigError is defined next to the YAML reader (which raises it) and re-exported as the
# public name: one class, no import cycle. It is a ValueError.
from reid_core.utils.yaml_io import ConfigError, load_yaml

T = TypeVar("T")


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type annotation ``tp``; return it (ints widened to float)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in args:
            try:
                return _check_value(value, alt, where)
            except ConfigError as e:
                errors.append(str(e))
        allowed = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{where}: expected {allowed}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: expected a mapping with string keys, got {value!r}")
        return {k: _check_value(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null, got {value!r}")
        return None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = ""
            if isinstance(value, str) and _is_number_text(value):
                hint = (f" (YAML reads {value} as text: write it with a decimal point, "
                        f"e.g. {float(value):.1e})")
            raise ConfigError(f"{where}: expected a number, got {value!r}{hint}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    raise TypeError(f"unsupported config type {tp!r} at {where}")  # a bug in this module


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(repr, get_args(tp)))
    return getattr(tp, "__name__", str(tp))


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(names)}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        key_where = f"{where}.{f.name}" if where else f.name
        if f.name in raw:
            kwargs[f.name] = _check_value(raw[f.name], hints[f.name], key_where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key_where}: required key is missing")
    return cls(**kwargs)


def parse_options(cls: type[T], raw: Any, where: str) -> T:
    """Validate ``raw`` (a mapping) into the option dataclass ``cls`` of a registered component
    (a backbone, head, loss term, ...), with the checks of every other config section.

    ``cls.__post_init__`` may check ranges and raise ``ConfigError("<key>: must be ...")``;
    the message is prefixed with ``where`` (e.g. ``model.options``), so errors name the key as
    the user wrote it.
    """
    if raw is None:
        raw = {}
    try:
        return _build(cls, raw, where)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(where) else f"{where}.{msg}") from None


def config_from_dict(raw: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a mapping into a :class:`RunConfig`; errors name ``source`` and the key.

    A format-1 ``loss`` section (or none) is checked and migrated to ``loss.terms`` first
    (:func:`reid_core.config.migrate.migrate_raw`).
    """
    try:
        cfg = _build(RunConfig, migrate_raw(raw), "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {str(e).lstrip(': ')}") from None
    _check_semantics(cfg, source)
    return cfg


#: A run name is a file-name component of its records and checkpoints (the run id, see
#: ``reid_core.results.identity.make_run_id``): letters, digits and ``._+-``, not starting with
#: a dot, so never a path or ``.``/``..``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_name(name: str, where: str = "name") -> str:
    """``name`` unchanged if it is a plain file-name component, else a :class:`ConfigError`.

    The run name becomes part of file paths (``results/runs/<run_id>.json``, checkpoints), so
    ``--set name=../../x`` would write outside the results tree.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{where}: must be a plain file-name component matching {NAME_PATTERN.pattern} "
            f"(letters, digits and ._+-, not starting with '.', no path separators), got {name!r}"
        )
    return name


def check_ranks(ranks: Sequence[int], where: str) -> list[int]:
    """The CMC ranks to report, as a list, if every one is a distinct integer >= 1.

    Rank r is read as ``cmc[r - 1]``: rank 0 or a negative rank would silently index from the
    end of the curve and be reported as 100.00. Used for ``eval.ranks`` and ``evaluate --ranks``.

    Args:
        ranks: the requested ranks.
        where: what to call them in the error message (``eval.ranks``, ``--ranks``).
    """
    ranks = list(ranks)
    if not ranks:
        raise ConfigError(f"{where}: must list at least one rank, got []")
    if any(isinstance(r, bool) or not isinstance(r, int) for r in ranks):
        raise ConfigError(f"{where}: every rank must be an integer, got {ranks}")
    if any(r < 1 for r in ranks):
        raise ConfigError(f"{where}: every rank must be >= 1, got {ranks}")
    repeated = sorted({r for r in ranks if ranks.count(r) > 1})
    if repeated:
        raise ConfigError(f"{where}: every rank must be listed once, got {ranks} "
                          f"({', '.join(map(str, repeated))} repeated)")
    return ranks


def _need(ok: bool, where: str, expected: str, value: Any) -> None:
    """Raise ``<where>: must be <expected>, got <value>`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{where}: must be {expected}, got {value!r}")


def _at_least(cfg: RunConfig, dotted: str, low: float) -> None:
    """``cfg.<dotted> >= low``."""
    value = _get_dotted(cfg, dotted)
    _need(value >= low, dotted, f">= {low:g}", value)


def _above(cfg: RunConfig, dotted: str, low: float) -> None:
    """``cfg.<dotted> > low`` (for values that scale or divide, e.g. the learning rate)."""
    value = _get_dotted(cfg, dotted)
    _need(value > low, dotted, f"> {low:g}", value)


def _probability(cfg: RunConfig, dotted: str, *, below_one: bool = False) -> None:
    """``cfg.<dotted>`` in [0, 1], or [0, 1) with ``below_one``."""
    value = _get_dotted(cfg, dotted)
    if below_one:
        _need(0 <= value < 1, dotted, "in [0, 1)", value)
    else:
        _need(0 <= value <= 1, dotted, "in [0, 1]", value)


def _get_dotted(cfg: RunConfig, dotted: str) -> Any:
    """``cfg.data.batch_size`` for ``"data.batch_size"``: the tables name keys as users do."""
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


#: Lower bounds checked by :func:`_check_ranges`: (dotted key, bound, strict). Sizes of 0 do
#: not fail loudly downstream (batch_size=0 made the P x K sampler loop forever).
LOWER_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ("seed", 0, False),
    ("data.height", 1, False),
    ("data.width", 1, False),
    ("data.batch_size", 1, False),
    ("data.num_instances", 1, False),
    ("data.workers", 0, False),
    ("data.pad", 0, False),
    ("data.split", 0, False),
    ("optim.lr", 0, True),
    ("optim.epochs", 1, False),
    ("optim.warmup_epochs", 0, False),
    ("optim.gamma", 0, True),
    ("eval.every", 0, False),
    ("eval.batch_size", 1, False),
    ("eval.rerank_k1", 1, False),
    ("eval.rerank_k2", 1, False),
)

#: Probabilities / fractions checked by :func:`_check_ranges`: (dotted key, upper bound open).
PROBABILITIES: tuple[tuple[str, bool], ...] = (
    ("data.flip_p", False),
    ("data.erasing_p", False),
    ("eval.rerank_lambda", False),
)


def _check_ranges(cfg: RunConfig) -> None:
    """Every numeric option inside its meaningful range (see the two tables above)."""
    for dotted, low, strict in LOWER_BOUNDS:
        (_above if strict else _at_least)(cfg, dotted, low)
    for dotted, below_one in PROBABILITIES:
        _probability(cfg, dotted, below_one=below_one)
    for name, size in cfg.data.views.items():
        _need(len(size) == 2 and all(v >= 1 for v in size), f"data.views.{name}",
              "[height, width], two integers >= 1", size)
    repeated = sorted({a for a in cfg.data.annotations if cfg.data.annotations.count(a) > 1})
    _need(not repeated, "data.annotations", "a list of distinct annotations", cfg.data.annotations)
    for i, term in enumerate(cfg.loss.terms):
        _need(term.weight >= 0, f"loss.terms[{i}].weight", ">= 0", term.weight)
    bad = [m for m in cfg.optim.milestones if m < 1]
    if bad:
        raise ConfigError(f"optim.milestones: every milestone must be an epoch >= 1, "
                          f"got {cfg.optim.milestones}")


def _check_semantics(cfg: RunConfig, source: str) -> None:
    """Checks across fields and of value ranges; errors name ``source`` and the key."""
    try:
        check_name(cfg.name)
        _check_ranges(cfg)
        check_ranks(cfg.eval.ranks, "eval.ranks")
        _check_relations(cfg)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _check_relations(cfg: RunConfig) -> None:
    """Constraints between fields (ranges are already checked, so no division by zero)."""
    d, o = cfg.data, cfg.optim
    if d.sampler != "shuffle" and d.batch_size % d.num_instances:
        raise ConfigError(
            f"data.batch_size ({d.batch_size}) must be a multiple of "
            f"data.num_instances ({d.num_instances})"
        )
    if d.sampler == "shuffle":
        if any(t.name == "triplet" and t.weight != 0 for t in cfg.loss.terms):
            raise ConfigError(
                "data.sampler: 'shuffle' draws batches without identity structure, so the "
                "triplet term (loss.terms) would rarely see a positive pair; use sampler 'pk' "
                "or 'identity_once', or set the triplet weight to 0")
    if sorted(set(o.milestones)) != o.milestones:
        raise ConfigError(f"optim.milestones must be increasing, each epoch once (a repeat "
                          f"would apply gamma twice), got {o.milestones}")

    if not cfg.eval.features:
        raise ConfigError("eval.features must name at least one feature")
    for i, feat in enumerate(cfg.eval.features):
        if feat not in declared_features():  # which of them the model has: checked when it is built
            raise ConfigError(f"eval.features[{i}]: {feat!r} is not one of "
                              f"{', '.join(map(repr, declared_features()))}")
    if not cfg.loss.terms:
        raise ConfigError("loss.terms must list at least one term")
    switch = cfg.model.options.get("rpp_start_epoch")  # PCB-RPP's stage switch
    if isinstance(switch, int) and switch >= o.epochs:
        raise ConfigError(f"model.options.rpp_start_epoch ({switch}) must be below "
                          f"optim.epochs ({o.epochs}), or the RPP stage never starts")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config, apply dotted ``overrides``, and validate it.

    The file is read with :func:`reid_core.utils.yaml_io.load_yaml` (``yaml.safe_load``
    semantics, but a key given twice is an error rather than silently the last one).
    ``overrides`` maps dotted keys to values, e.g. ``{"seed": 1, "optim.epochs": 2}``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    raw = load_yaml(path, str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return config_from_dict(raw, str(path))


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Command-line ``KEY=VALUE`` pairs -> ``{dotted key: value}``; values are parsed as YAML
    (``optim.epochs=2`` -> 2, ``optim.milestones=[3]`` -> [3], ``model.pretrained=null`` -> None).
    A value that is not valid YAML is a :class:`ConfigError` naming the ``--set`` item."""
    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.epochs=2")
        out[key] = load_yaml(value, f"--set {item!r}")
    return out


def nest_overrides(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"optim.epochs": 2}`` -> ``{"optim": {"epochs": 2}}``."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        _set_dotted(nested, dotted, value)
    return nested


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for depth, p in enumerate(parents):
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            where = ".".join(parents[:depth + 1])
            raise ConfigError(f"{dotted}: {where} is {node!r}, not a section, so it has no "
                              f"key {'.'.join([*parents[depth + 1:], leaf])!r}")
    node[leaf] = value
