"""The identities of a record: its run (``run_id``) and its recipe (:func:`recipe_key`).

* **Run**: :func:`make_run_id` = ``<name>-seed<seed>-<digest>``, the digest covering the config
  identity (``RunConfig.config_hash``) and what the run started from (data identity, weights).
  Written once, never recomputed: a committed record's ``run_id`` and ``config_hash`` are facts.
* **Recipe**: the seeds of one experiment share a recipe -- the config identity without the
  seed, and the data identity. A report averages the records of one recipe and sets aside older
  recipes of the same config name (:func:`recipe_key`).

The recipe uses the *config identity*, never a hash of the raw ``config`` mapping: the identity
leaves options added later out at their defaults and is unchanged by the config format
migration, so re-validating an old record, or writing a new seed of it with today's code (whose
``config`` mapping spells every option), keeps its recipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reid_core.config import config_from_dict

__all__ = ["config_identity", "make_run_id", "recipe_key"]


def make_run_id(config_name: str, seed: int, config_hash: str,
                data_identity: dict[str, str]) -> str:
    """The one definition of a training run's identity: ``<name>-seed<seed>-<digest>``.

    ``digest`` covers the config (through its hash) *and* what it ran on (dataset name,
    protocol, data fingerprint: :meth:`reid_core.data.ReIDData.identity`), so the same config on
    another dataset tree is another run, never a reused record.
    """
    canon = json.dumps({"config": config_hash, "data": data_identity}, sort_keys=True,
                       separators=(",", ":"))
    return f"{config_name}-seed{seed}-{hashlib.sha256(canon.encode()).hexdigest()[:12]}"


def config_identity(config: Mapping[str, Any], where: str = "record config") -> str:
    """The identity of a recorded config *without its seed*: ``config_hash`` of the validated
    (and migrated) config at seed 0 -- equal to the record's own ``config_hash`` for a seed-0
    record. Raises ConfigError (a ValueError) when the mapping is not a valid config."""
    cfg = config_from_dict(dict(config), where)
    return dataclasses.replace(cfg, seed=0).config_hash()


def recipe_key(record: Mapping[str, Any]) -> str | None:
    """Digest of the record's config identity without the seed (:func:`config_identity`) and of
    the data identity it ran on (``dataset.identity``), of the pretrained weights' identity
    when it has one (``run_identity.weights``) and of the world size of a run of several
    processes (``run_identity.world_size``); records of one recipe differ only by seed.
    None when the record carries no config.

    A ``config`` this code cannot validate (a hand-written record, a config of a future format)
    falls back to its raw mapping without ``seed``, marked as such, so that it still forms a
    recipe of its own instead of failing the report.
    """
    config = record.get("config")
    if not isinstance(config, Mapping):
        return None
    try:
        identity: Any = config_identity(config, f"record {record.get('run_id', '?')}: config")
    except (ValueError, TypeError):
        identity = {"raw": {k: v for k, v in config.items() if k != "seed"}}
    # What it ran on is part of the recipe: a run on regenerated synthetic data (another
    # generator version) or another copy of a dataset is not a seed of the same experiment.
    data = (record.get("dataset") or {}).get("identity")
    # So are the weights it started from (run_identity["weights"]: a file's digest, or a
    # synthetic trunk's specification), when it had any: runs from another trunk under the
    # same name are another recipe. Records from random init have none (their key is as before).
    weights = (record.get("run_identity") or {}).get("weights")
    # And the number of processes that trained it (run_identity["world_size"], several
    # processes only): a DDP run's per-rank BN and triplet batches change its results.
    world = (record.get("run_identity") or {}).get("world_size")
    canon = json.dumps({"config": identity, **({"data": data} if data else {}),
                        **({"weights": weights} if weights else {}),
                        **({"world_size": world} if world else {})}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:12]
