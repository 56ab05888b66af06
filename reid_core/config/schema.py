"""The run configuration's schema: typed dataclasses, one per section.

A config file mirrors :class:`RunConfig`: top-level ``name`` and ``seed`` plus one section per
layer (``data``, ``model``, ``loss``, ``optim``, ``eval``). Validation lives in
:mod:`reid_core.config.check`, the format-1 migration and the identity in
:mod:`reid_core.config.migrate`. Defaults follow the BoT recipe (Luo et al., "Bag of Tricks"),
see ``shared/reference/implementation-notes.md`` section 6.2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

#: Field metadata of options added after records existed: left at its default, such a field
#: is left out of the config hash, so adding an option does not orphan earlier run records.
ADDED = {"hash": "omit_default"}


@dataclass
class DataConfig:
    dataset: str = "synthetic"  #: registry name, see ``reid_core.data.available_datasets()``
    root: str | None = None  #: dataset root; ``None`` = synthetic cache / ``--data-root``
    height: int = 256  #: input height in pixels
    width: int = 128  #: input width in pixels
    batch_size: int = 64  #: images per batch = P x K
    num_instances: int = 4  #: K, images per identity in a batch (identity samplers)
    workers: int = 0  #: DataLoader worker processes (0 = load in the main process)
    augment: str = "bot"  #: recipe name in ``reid_core.data.transforms.AUGMENTATIONS``
    flip_p: float = 0.5
    pad: int = 10  #: zero padding before the random crop (BoT recipe)
    erasing_p: float = 0.5  #: random-erasing probability (0 disables it)
    #: Random-erasing fill, in *normalised* space. The default is Zhong et al.'s code default
    #: (the CIFAR-10 mean), kept because committed records ran with it; BoT's config fills
    #: with the ImageNet mean values (0.485, 0.456, 0.406) (configs/bot_r50.yaml), the RGA
    #: code with 0.
    erasing_value: list[float] = field(default_factory=lambda: [0.4914, 0.4822, 0.4465])
    #: Which of a dataset's standard splits to use (CUHK03 classic: 0-19); others ignore it.
    split: int = field(default=0, metadata=ADDED)
    #: Per-image annotations added to every training batch, read from the dataset's sidecar
    #: files (``reid_core.data.sidecars``): ``mask`` (person mask), ``keypoints`` (COCO-17).
    #: They follow the image through every augmentation (DAAF's decoders train on them).
    annotations: list[Literal["mask", "keypoints"]] = field(default_factory=list, metadata=ADDED)
    #: Extra resolutions of every (augmented) training image, ``{name: [height, width]}``,
    #: in the batch under ``views`` (SAG feeds a second resolution through a shared trunk).
    views: dict[str, list[int]] = field(default_factory=dict, metadata=ADDED)
    #: How random erasing draws its rectangle (``reid_core.data.transforms.RandomErasing``):
    #: ``torchvision`` = log-uniform aspect ratio, 10 tries; ``zhong`` = Zhong et al.'s code,
    #: which RGA and BoT use: uniform aspect ratio in [0.3, 3.33], 100 tries.
    erasing_mode: Literal["torchvision", "zhong"] = field(default="torchvision", metadata=ADDED)
    #: Resampling of every resize (train and test): torchvision's default ``bilinear``, or
    #: ``bicubic`` (PIL's mode 3, which SAG's and layumi's code use).
    interpolation: Literal["bilinear", "bicubic"] = field(default="bilinear", metadata=ADDED)
    #: What an epoch is (``reid_core.data.sampler.SAMPLERS``): ``pk`` = BoT's P x K sampler
    #: (every image about once); ``identity_once`` = open-reid's / RGA's (every identity once,
    #: K images: half as many batches at 8 images per id); ``shuffle`` = all images in random
    #: order (PCB's code; no identity structure, so no triplet term).
    sampler: Literal["pk", "identity_once", "shuffle"] = field(default="pk", metadata=ADDED)


@dataclass
class AttentionConfig:
    """Attention modules inserted after backbone stages (``reid_core.models.attention``)."""

    name: str  #: registry name, see ``reid_core.models.attention.available_attention()``
    #: Backbone stages (by the backbone's stage names, checked when the model is built) that get
    #: one module each, after the stage; the default is ResNet's four stages (RGA): other
    #: backbones name theirs (DenseNet-121: ``denseblock1`` .. ``denseblock4``).
    stages: list[str] = field(
        default_factory=lambda: ["layer1", "layer2", "layer3", "layer4"])
    #: Keyword options of the module builder (validated by the builder itself).
    options: dict[str, Any] = field(default_factory=dict)
    #: Where the modules go in each listed stage: ``stage`` = one after the stage (RGA, CSA);
    #: ``residual`` = one inside every residual block, on the branch before the shortcut is
    #: added (SE-ResNet's placement of SE, Hu et al. Fig. 3).
    placement: Literal["stage", "residual"] = field(default="stage", metadata=ADDED)
    #: Deep supervision (CSA): a GAP -> linear identity classifier on the output of every
    #: attention stage, trained by the ``deep_supervision`` loss term (``loss.terms``).
    deep_supervision: bool = field(default=False, metadata=ADDED)
    #: Width of a hidden layer in each deep-supervision classifier: 0 = GAP -> FC (default);
    #: N > 0 = GAP -> FC(C, N) -> BN -> ReLU -> FC(N, classes), the CSA paper's "fully
    #: connected layers" (plural) read as two (``reid_core.models.deep_supervision``).
    deep_supervision_hidden: int = field(default=0, metadata=ADDED)


@dataclass
class ModelConfig:
    name: str = "bnneck"  #: the head, in ``reid_core.models.HEADS``
    backbone: str = "resnet50"  #: in ``reid_core.models.BACKBONES``
    last_stride: int = 1
    #: ``None`` = random init; ``"imagenet"`` = torchvision's weights API; else a local file.
    pretrained: str | None = None
    attention: AttentionConfig | None = None  #: ``None`` = the plain baseline
    #: Options of the head (validated by its option dataclass when the model is built),
    #: e.g. PCB's ``parts`` / ``reduction_dim`` / ``rpp_start_epoch``.
    options: dict[str, Any] = field(default_factory=dict, metadata=ADDED)
    #: Initial weights of the BatchNorm layers in the attention modules (which the authors'
    #: code leaves at the framework's default init): ``ones`` = PyTorch >= 1.2; ``uniform`` =
    #: U(0, 1), PyTorch <= 1.1, under which RGA's code (torch 0.4.0) ran. Heads and
    #: deep-supervision classifiers set their BN weights explicitly; pretrained trunks load them.
    bn_weight_init: Literal["ones", "uniform"] = field(default="ones", metadata=ADDED)
    #: Several processes (``torchrun``) on CUDA: SyncBatchNorm, BN statistics over the whole
    #: global batch. Off (the default): BN per rank on its share of the batch, running
    #: statistics averaged over the ranks before every evaluation and checkpoint. torch has no
    #: SyncBatchNorm on CPU, so there it is an error; in one process it changes nothing.
    sync_bn: bool = field(default=False, metadata=ADDED)


@dataclass
class LossTermConfig:
    """One term of the objective: ``weight * term(outputs, batch)``.

    ``name`` is a term of ``reid_core.losses.LOSS_TERMS`` (``ce``, ``part_ce``, ``triplet``,
    ``deep_supervision``, ...); ``options`` are validated by that term's option dataclass when
    the objective is built. A weight of 0 switches a term off (it is not computed) without
    removing it from the config.
    """

    name: str
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


def _bot_terms() -> list[LossTermConfig]:
    """The BoT objective: label-smoothed cross-entropy + batch-hard triplet (margin 0.3)."""
    return [LossTermConfig("ce", 1.0, {"label_smoothing": 0.1}),
            LossTermConfig("triplet", 1.0, {"margin": 0.3})]


@dataclass
class LossConfig:
    """The objective as data: the weighted sum of ``terms``, in this order, each logged under
    its name. Format-1 configs (``ce_weight``, ``triplet_weight``, ...) are migrated on read
    (:mod:`reid_core.config.migrate`)."""

    terms: list[LossTermConfig] = field(default_factory=_bot_terms)
    #: Format-1 settings that had no effect, kept only so that the migrated config keeps its
    #: identity (``reid_core.config.migrate``); never set it by hand.
    inert: dict[str, Any] = field(default_factory=dict, metadata=ADDED)

    def term(self, name: str) -> LossTermConfig:
        """The (first) term called ``name``."""
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(f"loss.terms: no term {name!r}; terms: "
                       f"{', '.join(t.name for t in self.terms) or 'none'}")


@dataclass
class OptimConfig:
    name: Literal["adam", "sgd"] = "adam"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    weight_decay_bias: float = 5e-4
    bias_lr_factor: float = 1.0
    momentum: float = 0.9  #: SGD only
    nesterov: bool = False  #: SGD only
    backbone_lr_mult: float = 1.0  #: lr multiplier of the pretrained backbone's parameters
    epochs: int = 120
    warmup_epochs: int = 10  #: linear warmup length; the lr is set once per epoch
    warmup_factor: float = 0.01  #: lr factor at epoch 0 of the warmup
    milestones: list[int] = field(default_factory=lambda: [40, 70])
    gamma: float = 0.1


@dataclass
class EvalConfig:
    every: int = 0  #: evaluate every N epochs during training (0 = only at the end)
    #: Which test features to evaluate, by the names the model's head declares (checked when the
    #: model is built): BNNeck ``before_bn`` / ``after_bn``, PCB ``parts_pooled`` / ``parts_reduced``.
    features: list[str] = field(
        default_factory=lambda: ["after_bn", "before_bn"]
    )
    distance: Literal["euclidean", "sqeuclidean", "cosine"] = "euclidean"
    normalize: bool = True  #: L2-normalise features before the distance (BoT: yes)
    flip: bool = False  #: average features of the image and its horizontal flip
    ap_mode: Literal["standard", "trapezoid"] = "standard"
    ranks: list[int] = field(default_factory=lambda: [1, 5, 10])
    batch_size: int = 128
    #: ``single``: one image per query (standard). ``multi_mean`` / ``multi_max``: Market-1501
    #: multi-query -- the query feature is the mean / max over the ``gt_bbox`` images of the
    #: query's identity in the query's camera (needs a dataset with ``gt_bbox``).
    query_mode: Literal["single", "multi_mean", "multi_max"] = field(default="single",
                                                                     metadata=ADDED)
    #: k-reciprocal re-ranking (Zhong et al. 2017) of the distances before ranking.
    rerank: bool = field(default=False, metadata=ADDED)
    rerank_k1: int = field(default=20, metadata=ADDED)
    rerank_k2: int = field(default=6, metadata=ADDED)
    rerank_lambda: float = field(default=0.3, metadata=ADDED)
    #: Classic CUHK03: single-shot gallery samplings per query (torchreid 10, SAG's code 100).
    cuhk03_repeats: int = field(default=10, metadata=ADDED)


@dataclass
class RunConfig:
    name: str
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """The config's identity: SHA-256 of the canonical JSON of
        :func:`reid_core.config.migrate.identity_view` (first 12 hex digits).

        The identity of a config that format 1 could express is that of its format-1 form, so
        migrated configs and the records made from them keep their hash.
        """
        from reid_core.config.migrate import identity_view  # it builds on this module

        canon = json.dumps(identity_view(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:12]


def hash_view(obj: Any) -> Any:
    """``dataclasses.asdict`` without the :data:`ADDED` fields that are at their defaults."""
    if isinstance(obj, list):
        return [hash_view(v) for v in obj]
    if isinstance(obj, dict):
        return {k: hash_view(v) for k, v in obj.items()}
    if not dataclasses.is_dataclass(obj):
        return obj
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("hash") == "omit_default":
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if value == default:
                continue
        out[f.name] = hash_view(value)
    return out
