"""A pretrained trunk without downloads: ``model.pretrained: synthetic``.

No ImageNet file can be fetched on the project's machine, so every smoke run starts from random
init. This module plays ImageNet's role with what the suite can make itself: the
``synthetic-pretrain`` corpus (:data:`reid_core.data.synthetic.PRESETS` ``["pretrain"]``:
1,000 training identities drawn from a seed no evaluation preset uses, so none of its people is
in any evaluation set, seen by other cameras), and an identity-classification run of the
backbone on it (:data:`RECIPE`). The trunk (the backbone's state dict, torchvision's keys, no
classifier) is what ``model.pretrained: synthetic`` loads, strictly, as it would load an
ImageNet file.

**Cache.** Like the synthetic datasets, trunks are made on first use and reused afterwards,
under the same root (:func:`reid_core.utils.cache.cache_base`)::

    <cache>/synthetic/synthetic-pretrain-<corpus digest>/        the corpus
    <cache>/pretrained/synthetic-<backbone>-<key>.pt             {"state_dict", "meta"}
    <cache>/pretrained/synthetic-<backbone>-<key>.json           the meta, for people (+ sha256)

``<key>`` (:func:`trunk_key`) digests the full specification: the backbone, the corpus's
generator parameters (its spec digest, which covers the generator's format version), the
recipe's config identity and :data:`RECIPE_VERSION` (bumped when code that changes the
result -- trainer, model, augmentation -- changes meaning). The file is written atomically (a
temporary file renamed into place); concurrent first users are serialised by a file lock beside
it (the second waits, saying so, then reuses the first one's trunk); an interrupted pretraining
resumes from its last epoch (``.synthetic-<backbone>-<key>.work/last.pt``, exact resume).

**Identity.** A run from this trunk has ``run_identity["weights"] = "synthetic-<backbone>:<key>"``:
like the synthetic data, the trunk is identified by what it was made from, not by its bytes
(another CPU or torch build trains other bits). Its record's ``pretrained_description`` says
what it is ("initialised from the synthetic-pretrained ResNet-18 <key> ..."), with the file's
SHA-256 for provenance.

Users with ImageNet weights keep ``model.pretrained: imagenet`` (or a file path).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from reid_core.config import ConfigError, RunConfig, config_from_dict
from reid_core.data.synthetic import PRESETS, SyntheticSpec, load_synthetic
from reid_core.metrics.evaluator import RetrievalEvaluator
from reid_core.models import (
    BACKBONES, PretrainedSource, WeightMismatchError, build_model, register_pretrained_source)
from reid_core.models.weights import UnreadableWeightsError, load_torch_file, state_dict_digest
from reid_core.app.training import train
from reid_core.results.records import software_versions, utc_now
from reid_core.utils.cache import cache_base, generation_lock
from reid_core.utils.device import DeviceSettings, resolve_device
from reid_core.utils.io import atomic_save, atomic_write_json, file_sha256, remove_stale_temps
from reid_core.utils.mapping import deep_merge
from reid_core.utils.seed import (
    capture_rng_state, make_deterministic, restore_rng_state, seed_everything)

__all__ = ["CORPUS_DATASET", "RECIPE", "RECIPE_VERSION", "SOURCE", "SyntheticTrunks",
           "TRUNK_FORMAT", "pretrain_trunk", "read_trunk_meta", "recipe_config", "trunk_key",
           "trunk_path"]

#: Bump when code the trunk depends on changes what the same recipe produces (trainer, model
#: construction, augmentation, loss): every cached trunk is then made again.
RECIPE_VERSION = 1
#: Layout of the trunk file (``{"state_dict", "meta"}``).
TRUNK_FORMAT = 1
#: The registered name of the pretraining corpus (``reid_core.data.synthetic``).
CORPUS_DATASET = "synthetic-pretrain"
CORPUS_PRESET = "pretrain"

#: The pretraining recipe, in one place: a run config (validated like any other) that the
#: suite's own trainer runs, with ``model.backbone`` filled in per backbone. Identity
#: classification at the smoke input size (64 x 32, RGA's smoke profile; PCB's 96 x 32 reads
#: the same fully convolutional trunk): BNNeck, label-smoothed cross-entropy over the 1,000
#: corpus identities + batch-hard triplet, Adam with one lr step (x0.1 after epoch 4), the
#: BoT augmentation (flip, pad-and-crop, random erasing). Sized to take <= 10 minutes on 2 CPU
#: cores with the corpus generation (README, "Pretrained weights").
RECIPE: dict[str, Any] = {
    "name": "synthetic-pretrain",
    "seed": 0,
    "data": {"dataset": CORPUS_DATASET, "height": 64, "width": 32, "batch_size": 64,
             "num_instances": 4, "workers": 0, "augment": "bot", "pad": 3, "erasing_p": 0.5},
    "model": {"name": "bnneck", "backbone": "resnet18", "last_stride": 1, "pretrained": None},
    "loss": {"terms": [{"name": "ce", "weight": 1.0, "options": {"label_smoothing": 0.1}},
                       {"name": "triplet", "weight": 1.0, "options": {"margin": 0.3}}]},
    "optim": {"name": "adam", "lr": 8.0e-4, "weight_decay": 5.0e-4, "weight_decay_bias": 5.0e-4,
              # No warmup: it is set once per epoch, so one warmup epoch would train a sixth
              # of the budget at 1% of the lr.
              "epochs": 6, "warmup_epochs": 0, "milestones": [4], "gamma": 0.1},
    # The held-out corpus identities, once at the end: is the trunk any good?
    "eval": {"every": 0, "features": ["after_bn"], "distance": "cosine", "normalize": True,
             "ranks": [1, 5, 10]},
}


def recipe_config(backbone: str, recipe: dict[str, Any] | None = None) -> RunConfig:
    """The validated run config that pretrains ``backbone`` (``recipe``: overrides of
    :data:`RECIPE`, e.g. a tiny one in tests)."""
    raw = deep_merge(deep_merge(RECIPE, recipe or {}),
                      {"model": {"backbone": backbone, "pretrained": None}})
    return config_from_dict(raw, "reid_core.app.pretrain.RECIPE")


def _corpus_spec(corpus: SyntheticSpec | str) -> tuple[str, SyntheticSpec]:
    if isinstance(corpus, str):
        if corpus not in PRESETS:
            raise KeyError(f"unknown synthetic preset {corpus!r}; valid: {', '.join(PRESETS)}")
        return corpus, PRESETS[corpus]
    return "custom", corpus


def trunk_key(backbone: str, corpus: SyntheticSpec | str = CORPUS_PRESET,
              recipe: dict[str, Any] | None = None) -> str:
    """The digest of a trunk's full specification (the cache key; 12 hex digits)."""
    cfg = recipe_config(backbone, recipe)
    canon = json.dumps({"format": TRUNK_FORMAT, "recipe_version": RECIPE_VERSION,
                        "backbone": backbone, "corpus": _corpus_spec(corpus)[1].digest(),
                        "recipe": cfg.config_hash()}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:12]


def pretrained_root(cache_root: str | Path | None = None) -> Path:
    """Where trunks live: ``<cache>/pretrained`` (``cache_root`` or the default cache)."""
    return (Path(cache_root).expanduser() if cache_root is not None else cache_base()) / "pretrained"


def trunk_path(backbone: str, corpus: SyntheticSpec | str = CORPUS_PRESET,
               recipe: dict[str, Any] | None = None, cache_root: str | Path | None = None) -> Path:
    """The file the trunk of this specification is (or will be) cached in."""
    return pretrained_root(cache_root) / f"synthetic-{backbone}-{trunk_key(backbone, corpus, recipe)}.pt"


def read_trunk_meta(path: Path) -> dict[str, Any] | None:
    """The ``meta`` of a trunk file, or None if there is no readable trunk file at ``path``."""
    try:
        obj = load_torch_file(path, "trunk file", mmap=True)
    except (FileNotFoundError, UnreadableWeightsError):
        return None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(obj.get("state_dict"), dict):
        return None
    return meta


def _is_complete(path: Path, key: str) -> bool:
    meta = read_trunk_meta(path)
    return meta is not None and meta.get("key") == key and meta.get("format") == TRUNK_FORMAT


def pretrain_trunk(backbone: str, *, corpus: SyntheticSpec | str = CORPUS_PRESET,
                   recipe: dict[str, Any] | None = None, cache_root: str | Path | None = None,
                   progress: bool = True, console: Console | None = None,
                   device: DeviceSettings | str = "auto") -> Path:
    """The synthetic-pretrained trunk of ``backbone``: made on first use, reused afterwards.

    Args:
        corpus: the corpus preset (default ``"pretrain"``) or a custom spec (tests).
        recipe: overrides of :data:`RECIPE` (tests: a tiny one).
        cache_root: the cache root (default ``$REID_BENCH_CACHE`` or
            ``~/.cache/reid-attention-bench``); the corpus goes to ``<root>/synthetic``, the
            trunk to ``<root>/pretrained``.
        progress: progress bars for the corpus and every epoch, and a line per epoch.
        device: where to train when the trunk must be made.

    The global RNG states are the same after the call as before it, made or reused: a run
    that builds its model from this trunk draws the same random numbers either way.
    """
    key = trunk_key(backbone, corpus, recipe)
    root = pretrained_root(cache_root)
    final = root / f"synthetic-{backbone}-{key}.pt"
    if _is_complete(final, key):
        return final
    root.mkdir(parents=True, exist_ok=True)
    with generation_lock(root, final.name, progress):
        if not _is_complete(final, key):  # else: another process made it while we waited
            rng = capture_rng_state()
            try:
                _make_trunk(final, key, backbone, corpus, recipe, cache_root, progress,
                            console or Console(stderr=True, quiet=not progress),
                            resolve_device(device) if isinstance(device, str) else device)
            finally:
                restore_rng_state(rng)
    return final


def _make_trunk(final: Path, key: str, backbone: str, corpus: SyntheticSpec | str,
                recipe: dict[str, Any] | None, cache_root: str | Path | None, progress: bool,
                console: Console, device: DeviceSettings) -> None:
    """Pretrain and write the trunk file (with the generation lock held)."""
    t0 = time.perf_counter()
    remove_stale_temps(final.parent, final.name)
    remove_stale_temps(final.parent, final.with_suffix(".json").name)
    cfg = recipe_config(backbone, recipe)
    label, spec = _corpus_spec(corpus)
    corpus_root = (Path(cache_root).expanduser() if cache_root is not None else cache_base())
    data = load_synthetic(corpus_root / "synthetic", spec, CORPUS_DATASET, progress=progress)
    console.print(f"[bold]pretraining[/] the {_pretty(backbone)} trunk for model.pretrained: "
                  f"synthetic (first use; cached afterwards as {final}): {data.num_train_pids:,} "
                  f"identities, {len(data.train):,} images of {CORPUS_DATASET}, "
                  f"{cfg.optim.epochs} epochs at {cfg.data.height}x{cfg.data.width}, "
                  f"recipe v{RECIPE_VERSION}", highlight=False, soft_wrap=True)
    work = final.parent / f".{final.stem}.work"
    work.mkdir(exist_ok=True)
    checkpoint = work / "last.pt"
    seed_everything(cfg.seed)
    make_deterministic()
    model = build_model(cfg.model, data.num_train_pids, (cfg.data.height, cfg.data.width))
    try:
        history = train(model, data.train, cfg, device, checkpoint,
                        resume=checkpoint.is_file(), console=console)
    except (UnreadableWeightsError, WeightMismatchError) as e:  # a damaged work checkpoint
        console.print(f"[yellow]note[/]: {checkpoint} cannot be resumed ({e}); starting over",
                      highlight=False, soft_wrap=True)
        checkpoint.unlink(missing_ok=True)
        seed_everything(cfg.seed)
        model = build_model(cfg.model, data.num_train_pids, (cfg.data.height, cfg.data.width))
        history = train(model, data.train, cfg, device, checkpoint, console=console)
    evaluator = RetrievalEvaluator(data.query, data.gallery, cfg.data, cfg.eval, device)
    held_out = evaluator(model)[cfg.eval.features[0]]
    trunk = {k: v.detach().to("cpu").clone()
             for k, v in model.backbone.state_dict().items()}
    meta = json.loads(json.dumps({
        "format": TRUNK_FORMAT,
        "key": key,
        "backbone": backbone,
        "recipe_version": RECIPE_VERSION,
        "recipe_hash": cfg.config_hash(),
        "recipe": cfg.to_dict(),
        "corpus": {"dataset": CORPUS_DATASET, "preset": label, "digest": spec.digest(),
                   "seed": spec.seed, "train_ids": data.num_train_pids,
                   "train_images": len(data.train),
                   "held_out_ids": len({p for _, p, _ in data.query})},
        "held_out": {k: round(float(held_out[k]), 2) for k in ("R1", "R5", "mAP")
                     if k in held_out},
        "history": [{k: h[k] for k in ("epoch", "loss", "train_acc", "lr", "time_s")
                     if k in h} for h in history],
        "device": device.describe(),
        "versions": software_versions(),
        "created_at": utc_now(),
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }, default=str))
    atomic_save(final, lambda f: _torch_save({"state_dict": trunk, "meta": meta}, f))
    atomic_write_json(final.with_suffix(".json"), {**meta, "sha256": file_sha256(final)})
    shutil.rmtree(work, ignore_errors=True)
    console.print(f"[bold]pretrained[/] {final.name} in {meta['wall_time_s']:.0f} s (held-out "
                  f"corpus identities: R1 {meta['held_out'].get('R1', float('nan')):.1f}, "
                  f"mAP {meta['held_out'].get('mAP', float('nan')):.1f})", highlight=False)


def _torch_save(obj: Any, f) -> None:
    import torch

    torch.save(obj, f)


def _pretty(backbone: str) -> str:
    """``resnet18`` -> ``ResNet-18``, ``densenet121`` -> ``DenseNet-121`` (else unchanged)."""
    m = re.fullmatch(r"(resnet|densenet)(\d+)", backbone)
    if m is None:
        return backbone
    return {"resnet": "ResNet", "densenet": "DenseNet"}[m.group(1)] + "-" + m.group(2)


class SyntheticTrunks(PretrainedSource):
    """``model.pretrained: synthetic`` (the model's backbone) and ``synthetic-<backbone>``
    (that backbone only). The attributes are the specification used (tests shrink them)."""

    def __init__(self) -> None:
        self.corpus: SyntheticSpec | str = CORPUS_PRESET
        self.recipe: dict[str, Any] | None = None
        self.cache_root: str | Path | None = None
        self.console: Console | None = None
        self.device: DeviceSettings | str = "auto"

    def check(self, name: str, backbone: str) -> None:
        wanted = name.removeprefix("synthetic").removeprefix("-")
        if wanted and wanted != backbone:
            raise ConfigError(f"model.pretrained: {name!r} is the trunk of {wanted}, but "
                              f"model.backbone is {backbone!r}; use 'synthetic' (the trunk of "
                              f"the model's backbone) or 'synthetic-{backbone}'")

    def key(self, backbone: str) -> str:
        return trunk_key(backbone, self.corpus, self.recipe)

    def path(self, backbone: str) -> Path:
        return trunk_path(backbone, self.corpus, self.recipe, self.cache_root)

    def weights_file(self, name: str, backbone: str) -> Path:
        self.check(name, backbone)
        return pretrain_trunk(backbone, corpus=self.corpus, recipe=self.recipe,
                              cache_root=self.cache_root, console=self.console,
                              device=self.device)

    def identity(self, name: str, backbone: str) -> str:
        return f"synthetic-{backbone}:{self.key(backbone)}"

    def describe(self, name: str, backbone: str) -> str:
        path = self.weights_file(name, backbone)
        meta = read_trunk_meta(path) or {}
        corpus = meta.get("corpus", {})
        optim = meta.get("recipe", {}).get("optim", {})
        data = meta.get("recipe", {}).get("data", {})
        # The weights' digest, not the file's: a trunk made again (same spec, same build) has
        # the same weights but another meta (creation time, commit) in its file.
        weights = state_dict_digest(load_torch_file(path, "trunk file", mmap=True)
                                    ["state_dict"])
        return (f"initialised from the synthetic-pretrained {_pretty(backbone)} "
                f"{meta.get('key', self.key(backbone))} (weights sha256:{weights[:16]}), trained "
                f"on {corpus.get('train_ids', 0):,} disjoint identities "
                f"({corpus.get('train_images', 0):,} images of {corpus.get('dataset')}, "
                f"spec {corpus.get('digest')}) for {optim.get('epochs')} epochs at "
                f"{data.get('height')}x{data.get('width')}, recipe v{meta.get('recipe_version')}")


#: The registered source (``model.pretrained: synthetic`` / ``synthetic-<backbone>``).
SOURCE = SyntheticTrunks()
for _name in ("synthetic", *(f"synthetic-{b}" for b in BACKBONES)):
    register_pretrained_source(_name)(SOURCE)
del _name
