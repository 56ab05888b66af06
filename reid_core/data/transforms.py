"""Train / test transforms of the BoT and RGA recipes, from torchvision transforms.

``AUGMENTATIONS`` is the registry the config's ``data.augment`` key selects from:

* ``"bot"`` (Luo et al. 2019): resize -> flip -> pad + random crop -> normalise -> erasing.
* ``"rga"`` (official RGA code): with p=0.5 resize to 1.125x and random-crop back
  ("Random2DTranslation"), else plain resize -> flip -> normalise -> erasing.
* ``"pcb"`` (official PCB code, the CSA paper): resize -> flip -> normalise.
* ``"none"``: resize -> normalise (for debugging).

Random erasing is applied after normalisation, so its fill value lives in normalised space
(BoT fills with (0.4914, 0.4822, 0.4465), RGA with 0): ``data.erasing_value``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2 as T

from reid_core.config import DataConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_normalised_tensor() -> list[T.Transform]:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def _erasing(cfg: DataConfig) -> list[T.Transform]:
    if cfg.erasing_p <= 0:
        return []
    value = cfg.erasing_value if len(cfg.erasing_value) > 1 else cfg.erasing_value[0]
    return [T.RandomErasing(p=cfg.erasing_p, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3),
                            value=value)]


def bot_train(cfg: DataConfig) -> T.Compose:
    size = (cfg.height, cfg.width)
    return T.Compose([
        T.Resize(size), T.RandomHorizontalFlip(cfg.flip_p),
        T.Pad(cfg.pad), T.RandomCrop(size),
        *_to_normalised_tensor(), *_erasing(cfg),
    ])


def rga_train(cfg: DataConfig) -> T.Compose:
    size = (cfg.height, cfg.width)
    big = (round(cfg.height * 1.125), round(cfg.width * 1.125))
    translate = T.RandomChoice(
        [T.Resize(size), T.Compose([T.Resize(big), T.RandomCrop(size)])], p=[0.5, 0.5])
    return T.Compose([translate, T.RandomHorizontalFlip(cfg.flip_p),
                      *_to_normalised_tensor(), *_erasing(cfg)])


def pcb_train(cfg: DataConfig) -> T.Compose:
    """PCB (Sun et al. 2018, official code; the CSA paper's "random horizontal flip"):
    resize -> flip -> normalise (-> erasing only if ``erasing_p`` > 0; PCB's configs set 0)."""
    return T.Compose([T.Resize((cfg.height, cfg.width)), T.RandomHorizontalFlip(cfg.flip_p),
                      *_to_normalised_tensor(), *_erasing(cfg)])


def plain(cfg: DataConfig) -> T.Compose:
    return T.Compose([T.Resize((cfg.height, cfg.width)), *_to_normalised_tensor()])


AUGMENTATIONS: dict[str, Callable[[DataConfig], T.Compose]] = {
    "bot": bot_train,
    "rga": rga_train,
    "pcb": pcb_train,
    "none": plain,
}


def build_train_transform(cfg: DataConfig) -> T.Compose:
    if cfg.augment not in AUGMENTATIONS:
        raise KeyError(f"data.augment: unknown recipe {cfg.augment!r}; "
                       f"valid: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[cfg.augment](cfg)


def build_test_transform(cfg: DataConfig) -> T.Compose:
    """Plain resize + normalisation (all recipes test this way)."""
    return plain(cfg)
