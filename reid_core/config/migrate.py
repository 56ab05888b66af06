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
  the model has deep supervision (``model.attention.deep_supervision``): without it the weight
  had no effect and is dropped.

Terms keep format 1's order (the sum's float order) and weights of 0 (a 0-weight term is not
computed, as before). **Identity**: :func:`identity_view` turns every config that format 1 could
express back into its format-1 form, so ``config_hash`` -- and with it every committed record's
run id -- is unchanged by the migration, whichever format the config is written in.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from reid_core.config.schema import RunConfig, hash_view
from reid_core.utils.yaml_io import ConfigError

#: Heads whose format-1 cross-entropy was the sum of their part classifiers' cross-entropies.
LEGACY_PART_HEADS: tuple[str, ...] = ("pcb", "pcb_rpp")

#: Format-1 names of the PCB heads' test features -> their names.
LEGACY_FEATURE_NAMES: dict[str, dict[str, str]] = {
    head: {"before_bn": "parts_pooled", "after_bn": "parts_reduced"} for head in LEGACY_PART_HEADS
}

#: ``eval.features`` when a config does not set it (:class:`reid_core.config.schema.EvalConfig`).
_DEFAULT_FEATURES = ["after_bn", "before_bn"]


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
    head = model.get("name", "bnneck")
    out = dict(raw)
    loss = raw.get("loss")
    if is_format1_loss(loss):
        out["loss"] = {"terms": _migrate_loss(loss or {}, head, _deep_supervision(model))}
    elif isinstance(loss, dict) and len(loss) > 1:
        extra = sorted(set(loss) - {"terms"})
        raise ConfigError(f"loss: 'terms' (format 2) cannot be combined with the format-1 keys "
                          f"{', '.join(map(repr, extra))}; write them as terms")
    if head in LEGACY_FEATURE_NAMES:
        out["eval"] = _rename_features(raw.get("eval"), LEGACY_FEATURE_NAMES[head])
    return out


def _deep_supervision(model: dict[str, Any]) -> bool:
    attention = model.get("attention")
    return isinstance(attention, dict) and attention.get("deep_supervision") is True


def _migrate_loss(loss: dict[str, Any], head: str, deep_supervision: bool) -> list[dict]:
    from reid_core.config.check import parse_options  # the checker builds on this module

    v1 = parse_options(LossConfigV1, loss, "loss")
    ce = "part_ce" if head in LEGACY_PART_HEADS else "ce"
    terms = [{"name": ce, "weight": v1.ce_weight,
              "options": {"label_smoothing": v1.label_smoothing}},
             {"name": "triplet", "weight": v1.triplet_weight,
              "options": {"margin": v1.triplet_margin}}]
    if deep_supervision:
        terms.append({"name": "deep_supervision", "weight": v1.deep_supervision_weight,
                      "options": {"label_smoothing": v1.label_smoothing}})
    return terms


def _rename_features(section: Any, names: dict[str, str]) -> Any:
    if section is None:
        section = {}
    if not isinstance(section, dict):
        return section  # the schema check reports it
    section = dict(section)
    features = section.get("features", _DEFAULT_FEATURES)
    if isinstance(features, list):
        section["features"] = [names.get(f, f) if isinstance(f, str) else f for f in features]
    return section


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
    ce_name = "part_ce" if head in LEGACY_PART_HEADS else "ce"
    terms = cfg.loss.terms
    if [t.name for t in terms] != [ce_name, "triplet"] + (["deep_supervision"] if deep else []):
        return None
    defaults = dataclasses.asdict(LossConfigV1())
    ce_ls = _legacy_option(terms[0].options, "label_smoothing", defaults["label_smoothing"])
    margin = _legacy_option(terms[1].options, "margin", defaults["triplet_margin"], none_ok=True)
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
