"""A paper's row configs: ``configs/papers/<paper>.yaml`` resolved per profile, and which run
records belong to a profile.

Each row's config is built as::

    profiles.paper  <-  profiles.<profile> (overrides)  <-  variants.<config id>
                    <-  profiles.<profile>.variant_overrides.<config id>
                    <-  name, seed, dataset (command line)

where a profile may say ``extends: <other profile>``: its overrides are applied on top of that
profile's (``scratch`` is ``smoke`` from random initialisation).

The reproduce profiles (:data:`PROFILES`) differ in what they run on and where their reports
go. Two of them (``smoke``, ``scratch``) run on the synthetic data, so their records cannot be
told apart by dataset; :func:`records_of_profile` tells them apart by recipe: a record belongs
to a profile when its config is the one the profile builds for its row (seed aside).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid_core.config import ConfigError, RunConfig, config_from_dict
from reid_core.resources import paper_configs_dir
from reid_core.results.identity import config_identity
from reid_core.results.record_types import RUN, record_kind
from reid_core.utils.mapping import deep_merge
from reid_core.utils.yaml_io import load_yaml

__all__ = ["CONFIGS_DIR", "PROFILES", "Profile", "build_row_config", "deep_merge",
           "load_paper_configs", "records_of_profile"]

#: ``configs/papers/`` of the checkout, or the installed package's copy (reid_core.resources).
CONFIGS_DIR = paper_configs_dir()


@dataclass(frozen=True)
class Profile:
    """A reproduce profile: what its runs are and where its report goes."""

    #: The report's scale: ``"smoke"`` (synthetic data, gains compared in direction only) or
    #: ``"paper"`` (real datasets, values compared).
    scale: str
    #: Its report's directory under the reports root (None: the root itself).
    reports_subdir: str | None
    help: str


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", None, "synthetic data, small scale, fine-tuned from the "
                                    "synthetic-pretrained trunk"),
    "scratch": Profile("smoke", "scratch", "the smoke runs from random initialisation, for "
                                           "comparison (report in reports/scratch/)"),
    "paper": Profile("paper", None, "the published recipe on the real datasets"),
}


def load_paper_configs(paper: str, configs_dir: Path = CONFIGS_DIR) -> tuple[Path, dict[str, Any]]:
    path = configs_dir / f"{paper.lower()}.yaml"
    if not path.is_file():
        raise ConfigError(f"no config file for paper {paper}: expected {path}")
    raw = load_yaml(path, str(path)) or {}
    for key in ("profiles", "variants"):
        if not isinstance(raw.get(key), dict):
            raise ConfigError(f"{path}: missing mapping {key!r}")
    if "paper" not in raw["profiles"]:
        raise ConfigError(f"{path}: profiles.paper is required (the base recipe)")
    return path, raw


def _profile_overrides(raw: dict[str, Any], source: Path, profile: str,
                       seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``profiles.<profile>`` with its ``extends`` chain resolved (paper: no overrides)."""
    if profile not in raw["profiles"]:
        raise ConfigError(f"{source}: profiles has no {profile!r} "
                          f"(known: {', '.join(raw['profiles'])})")
    if profile == "paper":
        return {}
    if profile in seen:
        raise ConfigError(f"{source}: profiles.{profile}.extends forms a cycle "
                          f"({' -> '.join((*seen, profile))})")
    over = dict(raw["profiles"][profile] or {})
    parent = over.pop("extends", None)
    if parent is None:
        return over
    if not isinstance(parent, str):
        raise ConfigError(f"{source}: profiles.{profile}.extends must name a profile, "
                          f"got {parent!r}")
    return deep_merge(_profile_overrides(raw, source, parent, (*seen, profile)), over)


def build_row_config(
    raw: dict[str, Any], source: Path, config_id: str, profile: str, seed: int,
    dataset: str | None = None,
) -> RunConfig:
    """Resolve and validate the config of one table row (see the module docstring)."""
    if config_id not in raw["variants"]:
        raise ConfigError(f"{source}: variants has no entry {config_id!r} "
                          f"(known: {', '.join(raw['variants'])})")
    over = _profile_overrides(raw, source, profile)
    # A profile may re-set keys that a variant sets (e.g. smoke's shorter RPP stage).
    variant_overrides = over.pop("variant_overrides", {}) or {}
    unknown = sorted(set(variant_overrides) - set(raw["variants"]))
    if unknown:
        raise ConfigError(f"{source}: profiles.{profile}.variant_overrides names unknown "
                          f"variant(s) {', '.join(unknown)}")
    merged = deep_merge(raw["profiles"]["paper"], over)
    merged = deep_merge(merged, raw["variants"][config_id] or {})
    merged = deep_merge(merged, variant_overrides.get(config_id) or {})
    merged = deep_merge(merged, {"name": config_id, "seed": seed})
    if dataset is not None:
        merged = deep_merge(merged, {"data": {"dataset": dataset}})
    return config_from_dict(merged, f"{source} (variant {config_id}, profile {profile})")


def records_of_profile(paper: str, records: Sequence[Mapping[str, Any]], profile: str,
                       configs_dir: Path = CONFIGS_DIR) -> list[Mapping[str, Any]]:
    """The run records whose config is the one ``profile`` builds for their row (any seed, on
    the dataset the record ran on): e.g. the fine-tuned ``smoke`` runs and not the ``scratch``
    ones of the same rows. Records of other configs, or whose config no longer validates, are
    left out; records of the other kinds (evaluations, measurements) are kept as they are."""
    source, raw = load_paper_configs(paper, configs_dir)
    wanted: dict[tuple[str, str | None], str] = {}
    kept = []
    for record in records:
        if record_kind(record) != RUN:
            kept.append(record)
            continue
        name, config = record.get("config_name"), record.get("config")
        if name not in raw["variants"] or not isinstance(config, Mapping):
            continue
        dataset = (config.get("data") or {}).get("dataset")
        key = (name, dataset)
        if key not in wanted:
            wanted[key] = build_row_config(raw, source, name, profile, 0, dataset).config_hash()
        try:
            identity = config_identity(config, f"record {record.get('run_id', '?')}: config")
        except (ValueError, TypeError):
            continue
        if identity == wanted[key]:
            kept.append(record)
    return kept
