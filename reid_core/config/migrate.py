"""Config format 1 -> 2, and the config identity that survives the migration.

**Format 1** (every record made before the objective became data) spelled the objective as fixed
weights of three terms::

    loss: {ce_weight: 1.0, label_smoothing: 0.1, triplet_weight: 1.0, triplet_margin: 0.3,
           deep_supervision_weight: 1.0}

and called PCB's two test features by BNNeck's names (``before_bn`` = the pooled stripes,
``after_bn`` = the reduced parts). **Format 2** lists the objective's terms
(``loss.terms``, see :class:`reid_core.config.schema.LossConfig`) and PCB's features by their
own names. The format is told by the shape of the ``loss`` section: ``terms`` = format 2, any
other mapping or no ``loss`` section = format 1 (a config file does not say its format; old
configs keep working unchanged).

Migration of a format-1 ``loss`` (after checking it as format 1 always was):

* ``ce_weight`` / ``label_smoothing`` -> term ``ce`` (``part_ce`` for the PCB heads, whose
  format-1 cross-entropy was the sum over the part classifiers);
* ``triplet_weight`` / ``triplet_margin`` -> term ``triplet`` (on the head's metric feature);
* ``deep_supervision_weight`` -> term ``deep_supervision`` (same ``label_smoothing``), only when
  the model has deep supervision (``model.attention.deep_supervision``); without it the weight
  had no effect, and a value other than 1 is kept in ``loss.inert`` (identity only).

Histories (of records and checkpoints) name the terms and PCB's features as format 2 does
(:func:`migrate_history`). Terms keep format 1's order (the sum's float order) and weights of 0 (a 0-weight term is not
computed, as before). **Identity**: :func:`identity_view` turns every config that format 1 could
express back into its format-1 form, so ``config_hash`` -- and with it every committed record's
run id -- is unchanged by the migration, whichever format the config is written in.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reid_core.config.schema import EvalConfig, ModelConfig, RunConfig, hash_view
from reid_core.utils.yaml_io import ConfigError

#: Heads whose format-1 cross-entropy was the sum of their part classifiers' cross-entropies.
LEGACY_PART_HEADS: tuple[str, ...] = ("pcb", "pcb_rpp")

#: Format-1 names of the PCB heads' test features -> their names.
LEGACY_FEATURE_NAMES: dict[str, dict[str, str]] = {
    head: {"before_bn": "parts_pooled", "after_bn": "parts_reduced"} for head in LEGACY_PART_HEADS
}

#: ``eval.features`` and ``model.name`` when a config does not set them.
_DEFAULT_FEATURES = EvalConfig().features
_DEFAULT_HEAD = ModelConfig().name


def _ce_term(head: str) -> str:
    """The format-1 cross-entropy's term for ``head``: the part heads' was the sum over parts."""
    return "part_ce" if head in LEGACY_PART_HEADS else "ce"


def _need(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: must be {expected}, got {value!r}")


@dataclass
class LossConfigV1:
    """The format-1 ``loss`` section, checked as it always was before being migrated."""

    ce_weight: float = 1.0
    label_smoothing: float = 0.1
    triplet_weight: float = 1.0
    #: Batch-hard triplet margin; ``None`` = soft margin (softplus).
    triplet_margin: float | None = 0.3
    deep_supervision_weight: float = 1.0

    def __post_init__(self) -> None:
        for key in ("ce_weight", "triplet_weight", "deep_supervision_weight"):
            _need(getattr(self, key) >= 0, key, ">= 0", getattr(self, key))
        # 1 would make the target uniform: nothing to learn.
        _need(0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)", self.label_smoothing)


def is_format1_loss(loss: Any) -> bool:
    """Whether a raw ``loss`` section is format 1 (no section at all counts as format 1)."""
    return loss is None or (isinstance(loss, dict) and "terms" not in loss)


def migrate_raw(raw: Any) -> Any:
    """A raw config mapping in format 2 (a copy; ``raw`` itself is left alone).

    Raises:
        ConfigError: the format-1 ``loss`` section is invalid, or ``loss`` mixes ``terms``
            with format-1 keys.
    """
    if not isinstance(raw, dict):
        return raw  # the schema check reports it
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    head = model.get("name", _DEFAULT_HEAD)
    out = dict(raw)
    loss = raw.get("loss")
    format1 = is_format1_loss(loss)
    if format1:
        deep = _deep_supervision(model)
        out["loss"] = {"terms": _migrate_loss(loss or {}, head, deep)}
        if _inert(loss or {}, deep):
            out["loss"]["inert"] = _inert(loss or {}, deep)
    else:
        extra = sorted(set(loss) - {"terms", "inert"}) if isinstance(loss, dict) else []
        if extra:
            raise ConfigError(f"loss: 'terms' (format 2) cannot be combined with the format-1 "
                              f"keys {', '.join(map(repr, extra))}; write them as terms")
    if head in LEGACY_FEATURE_NAMES:
        out["eval"] = _features_of_part_head(raw.get("eval"), LEGACY_FEATURE_NAMES[head],
                                             rename=format1)
    return out


def _deep_supervision(model: dict[str, Any]) -> bool:
    attention = model.get("attention")
    return isinstance(attention, dict) and attention.get("deep_supervision") is True


def _migrate_loss(loss: dict[str, Any], head: str, deep_supervision: bool) -> list[dict]:
    from reid_core.config.check import parse_options  # the checker builds on this module

    v1 = parse_options(LossConfigV1, loss, "loss")
    terms = [{"name": _ce_term(head), "weight": v1.ce_weight,
              "options": {"label_smoothing": v1.label_smoothing}},
             {"name": "triplet", "weight": v1.triplet_weight,
              "options": {"margin": v1.triplet_margin}}]
    if deep_supervision:
        terms.append({"name": "deep_supervision", "weight": v1.deep_supervision_weight,
                      "options": {"label_smoothing": v1.label_smoothing}})
    return terms


def _inert(loss: dict[str, Any], deep_supervision: bool) -> dict[str, Any]:
    """Format-1 settings that had no effect but were part of the identity: a
    ``deep_supervision_weight`` other than 1 on a model without deep supervision."""
    weight = loss.get("deep_supervision_weight", 1.0)
    return {} if deep_supervision or weight == 1.0 else {"deep_supervision_weight": float(weight)}


def _features_of_part_head(section: Any, names: dict[str, str], *, rename: bool) -> Any:
    """The ``eval`` section of a PCB config: without ``eval.features``, the default pair in
    the PCB head's names; a format-1 config's BNNeck names (``rename``) renamed. A format-2
    config that asks for ``before_bn`` is left to fail: the head has no such feature."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        return section  # the schema check reports it
    section = dict(section)
    if "features" not in section:
        section["features"] = [names[f] for f in _DEFAULT_FEATURES]
    elif rename and isinstance(section["features"], list):
        section["features"] = [names.get(f, f) if isinstance(f, str) else f
                               for f in section["features"]]
    return section


def migrate_history(history: Any, model: Mapping[str, Any] | None) -> Any:
    """A format-1 training history (of a record or a checkpoint) in format 2: the loss terms
    under their names (PCB's ``ce`` is ``part_ce``; ``aux`` is ``deep_supervision``) and the
    PCB heads' evaluations under their feature names. ``model`` is the raw ``model`` section."""
    if not isinstance(history, list):
        return history
    head = model.get("name", _DEFAULT_HEAD) if isinstance(model, Mapping) else _DEFAULT_HEAD
    terms = {"ce": _ce_term(head), "aux": "deep_supervision"}
    features = LEGACY_FEATURE_NAMES.get(head, {})
    out = []
    for entry in history:
        if isinstance(entry, dict):
            entry = {terms.get(k, k): v for k, v in entry.items()}
            if isinstance(entry.get("eval"), dict):
                entry["eval"] = {features.get(k, k): v for k, v in entry["eval"].items()}
        out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------


def identity_view(cfg: RunConfig) -> dict[str, Any]:
    """The canonical form whose hash is the config's identity (``RunConfig.config_hash``).

    :func:`reid_core.config.schema.hash_view` (options added later are left out at their
    defaults), with the objective and the PCB feature names in their format-1 form whenever
    format 1 could express them; otherwise the format-2 ``loss`` (``{"terms": [...]}``, a shape
    format 1 never had, so the two cannot collide).
    """
    view = hash_view(cfg)
    legacy = legacy_loss_view(cfg)
    if legacy is not None:
        view["loss"] = legacy
    back = {new: old for old, new in LEGACY_FEATURE_NAMES.get(cfg.model.name, {}).items()}
    if back:
        view["eval"]["features"] = [back.get(f, f) for f in cfg.eval.features]
    return view


def legacy_loss_view(cfg: RunConfig) -> dict[str, Any] | None:
    """The format-1 ``loss`` section (as format 1 hashed it) of ``cfg``'s objective, or
    ``None`` if format 1 cannot express it."""
    head = cfg.model.name
    attention = cfg.model.attention
    deep = attention is not None and attention.deep_supervision
    terms = cfg.loss.terms
    if [t.name for t in terms] != [_ce_term(head), "triplet"] + (["deep_supervision"] if deep else []):
        return None
    defaults = dataclasses.asdict(LossConfigV1())
    ce_ls = _legacy_option(terms[0].options, "label_smoothing", defaults["label_smoothing"])
    # ``feature: null`` is the triplet's default (the head's metric feature), as in format 1.
    triplet_options = {k: v for k, v in terms[1].options.items()
                       if not (k == "feature" and v is None)}
    margin = _legacy_option(triplet_options, "margin", defaults["triplet_margin"], none_ok=True)
    if ce_ls is _NOT or margin is _NOT:
        return None
    view: dict[str, Any] = {"ce_weight": terms[0].weight, "label_smoothing": ce_ls,
                            "triplet_weight": terms[1].weight, "triplet_margin": margin}
    if deep:
        ds = terms[2]
        if _legacy_option(ds.options, "label_smoothing", defaults["label_smoothing"]) != ce_ls:
            return None
        if ds.weight != defaults["deep_supervision_weight"]:
            # Format 1 left this option out of the hash at its default (it was added later).
            view["deep_supervision_weight"] = ds.weight
    elif "deep_supervision_weight" in cfg.loss.inert:
        view["deep_supervision_weight"] = cfg.loss.inert["deep_supervision_weight"]
    if set(cfg.loss.inert) - {"deep_supervision_weight"} or (deep and cfg.loss.inert):
        return None
    return copy.deepcopy(view)


_NOT = object()


def _legacy_option(options: dict[str, Any], key: str, default: Any, *,
                   none_ok: bool = False) -> Any:
    """``options[key]`` as format 1 stored it (a float), its default if absent, or ``_NOT`` if
    ``options`` has other keys or a value format 1 could not hold."""
    if set(options) - {key}:
        return _NOT
    value = options.get(key, default)
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return _NOT
    return float(value)
