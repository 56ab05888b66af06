"""Train / test transforms of the BoT, RGA and PCB recipes, on torchvision v2 transforms.

``AUGMENTATIONS`` is the registry the config's ``data.augment`` key selects from:

* ``"bot"`` (Luo et al. 2019): resize -> flip -> pad + random crop -> normalise -> erasing.
* ``"rga"`` (official RGA code): with p=0.5 resize to 1.125x and random-crop back
  ("Random2DTranslation"), else plain resize -> flip -> normalise -> erasing.
* ``"pcb"`` (official PCB code, the CSA paper): resize -> flip -> normalise.
* ``"none"``: resize -> normalise (for debugging).

Random erasing is applied after normalisation, so its fill value lives in normalised space
(``data.erasing_value``: BoT's config fills with the ImageNet mean values (0.485, 0.456,
0.406), RGA's code with 0, Zhong et al.'s code defaults to the CIFAR-10 mean (0.4914, 0.4822,
0.4465)). ``data.erasing_mode`` picks how the rectangle is drawn: torchvision's (log-uniform
aspect ratio, 10 tries) or Zhong et al.'s, which the RGA and BoT code use (uniform aspect
ratio, 100 tries; :class:`RandomErasing`).

A transform takes an RGB PIL image, or a whole sample as a dict (what
:class:`~reid_core.data.image_dataset.ImageDataset` passes): ``{"img": PIL image,
"mask": tv_tensors.Mask (1, H, W), "keypoints": tv_tensors.KeyPoints (17, 2), ...,
KeypointVisibility (17,)}``. Every random draw is made once per sample and applied to all of
its parts by torchvision's own kernels, so the mask and keypoints follow every resize, flip,
pad, crop and translation of the image; the random draws do not depend on which parts a
sample has (an image alone gives the same tensor and consumes the RNG exactly as with a mask
and keypoints). What the image kernels do not define is set by :class:`RandomErasing`: the
erased rectangle is an occluder (mask 0, visible keypoints in it become occluded). Masks are
resized with torchvision's nearest kernel, padding is 0 (not person). A flip also swaps left
and right keypoints (:class:`RandomHorizontalFlip`). Keypoint conventions:
:mod:`reid_core.data.keypoints`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from reid_core.config import DataConfig
from reid_core.utils.registry import Registry
from reid_core.data.keypoints import KeypointVisibility, erase_visibility, swap_left_right

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_normalised_tensor() -> list[T.Transform]:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


class RandomHorizontalFlip(T.RandomHorizontalFlip):
    """torchvision's ``RandomHorizontalFlip`` (same draw; image, mask and keypoint coordinates
    flipped by its kernels) that also swaps left and right COCO keypoints of a flipped sample
    (:func:`~reid_core.data.keypoints.swap_left_right`)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = super().transform(inpt, params)
        if isinstance(out, (tv_tensors.KeyPoints, KeypointVisibility)):
            out = swap_left_right(out)
        return out


class RandomErasing(T.RandomErasing):
    """torchvision's ``RandomErasing`` (same arguments, same random draws, same image), which
    also erases the sample's person mask and keypoints consistently, and can draw the
    rectangle as Zhong et al.'s code does.

    ``mode="torchvision"``: the aspect ratio h / w is log-uniform in ``ratio``, up to 10 tries.
    ``mode="zhong"`` (Zhong et al., AAAI 2020, zhunzhong07/Random-Erasing ``transforms.py``,
    copied into RGA's and BoT's code): uniform in ``ratio``, up to 100 tries. The area fraction
    (uniform in ``scale``), the rounding of h and w, the fit test (``h < H and w < W``) and the
    position (uniform over the valid corners) are the same in both. On 256 x 128 with ratio
    (0.3, 3.33), uniform sampling makes ~81% of the boxes tall (h > w) against ~59%
    log-uniform (tests/test_erasing.py counts it), so Zhong's erases taller strips.
    Zhong's code draws from Python's ``random``; here both modes draw from torch's generator,
    which the suite seeds per worker and epoch.

    The erased rectangle is an occluder pasted over the image: it is not person, so the
    ``tv_tensors.Mask`` is 0 there; keypoints keep their coordinates (they did not move) and
    visible ones (COCO ``v = 2``) whose pixel is inside become occluded (``v = 1``) in the
    sample's :class:`~reid_core.data.keypoints.KeypointVisibility` -- the meaning COCO and
    the synthetic renderer give to points behind an occluder. (torchvision's own class passes
    masks and keypoints through unchanged, with a warning.)
    """

    _ERASE_PARAMS = ("i", "j", "h", "w", "v")
    MODES = ("torchvision", "zhong")

    def __init__(self, *args: Any, mode: str = "torchvision", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"unknown erasing mode {mode!r}; known: {', '.join(self.MODES)}")
        self.mode = mode

    def _zhong_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        img_c, img_h, img_w = T.query_chw(flat_inputs)
        if self.value is not None and len(self.value) not in (1, img_c):
            raise ValueError(f"RandomErasing: value needs 1 or {img_c} entries, "
                             f"got {len(self.value)}")
        area = img_h * img_w
        for _ in range(100):
            erase_area = area * torch.empty(1).uniform_(self.scale[0], self.scale[1]).item()
            aspect_ratio = torch.empty(1).uniform_(self.ratio[0], self.ratio[1]).item()
            h = int(round(math.sqrt(erase_area * aspect_ratio)))
            w = int(round(math.sqrt(erase_area / aspect_ratio)))
            if h < img_h and w < img_w:
                v = (torch.empty([img_c, h, w]).normal_() if self.value is None
                     else torch.tensor(self.value)[:, None, None])
                i = int(torch.randint(0, img_h - h + 1, size=(1,)).item())
                j = int(torch.randint(0, img_w - w + 1, size=(1,)).item())
                return dict(i=i, j=j, h=h, w=w, v=v)
        return dict(i=0, j=0, h=img_h, w=img_w, v=None)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        # All random draws happen here (torchvision's are unchanged in its mode).
        params = (super().make_params(flat_inputs) if self.mode == "torchvision"
                  else self._zhong_params(flat_inputs))
        # One KeyPoints per sample (torchvision's convention): the visibility needs its points.
        params["keypoints"] = next(
            (x for x in flat_inputs if isinstance(x, tv_tensors.KeyPoints)), None)
        return params

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["v"] is None:  # no rectangle fitted in the tries: nothing is erased
            return inpt
        i, j, h, w = (params[k] for k in "ijhw")
        if isinstance(inpt, tv_tensors.Mask):
            # A copy even when ``inplace``: the mask may be a view of a cached sidecar.
            out = inpt.as_subclass(Tensor).clone()
            out[..., i:i + h, j:j + w] = 0
            return tv_tensors.wrap(out, like=inpt)
        if isinstance(inpt, tv_tensors.KeyPoints):
            return inpt
        if isinstance(inpt, KeypointVisibility):
            if params["keypoints"] is None:
                raise ValueError("RandomErasing: the sample has a KeypointVisibility but no "
                                 "tv_tensors.KeyPoints")
            return erase_visibility(params["keypoints"], inpt, i, j, h, w)
        return super().transform(inpt, {k: params[k] for k in self._ERASE_PARAMS})


def _erasing(cfg: DataConfig) -> list[T.Transform]:
    if cfg.erasing_p <= 0:
        return []
    value = cfg.erasing_value if len(cfg.erasing_value) > 1 else cfg.erasing_value[0]
    return [RandomErasing(p=cfg.erasing_p, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3),
                          value=value, mode=cfg.erasing_mode)]


def _resize(cfg: DataConfig, size: tuple[int, int] | None = None) -> T.Resize:
    """Resize to ``size`` (default: the input size) with ``data.interpolation``."""
    mode = T.InterpolationMode.BICUBIC if cfg.interpolation == "bicubic" else \
        T.InterpolationMode.BILINEAR
    return T.Resize(size or (cfg.height, cfg.width), interpolation=mode)


def bot_train(cfg: DataConfig) -> T.Compose:
    size = (cfg.height, cfg.width)
    return T.Compose([
        _resize(cfg), RandomHorizontalFlip(cfg.flip_p),
        T.Pad(cfg.pad), T.RandomCrop(size),
        *_to_normalised_tensor(), *_erasing(cfg),
    ])


def rga_train(cfg: DataConfig) -> T.Compose:
    size = (cfg.height, cfg.width)
    big = (round(cfg.height * 1.125), round(cfg.width * 1.125))
    translate = T.RandomChoice(
        [_resize(cfg), T.Compose([_resize(cfg, big), T.RandomCrop(size)])], p=[0.5, 0.5])
    return T.Compose([translate, RandomHorizontalFlip(cfg.flip_p),
                      *_to_normalised_tensor(), *_erasing(cfg)])


def pcb_train(cfg: DataConfig) -> T.Compose:
    """PCB (Sun et al. 2018, official code; the CSA paper's "random horizontal flip"):
    resize -> flip -> normalise (-> erasing only if ``erasing_p`` > 0; PCB's configs set 0).
    Also SAG's ``train.py`` recipe (bicubic resize, erasing p 0.8, fill 0)."""
    return T.Compose([_resize(cfg), RandomHorizontalFlip(cfg.flip_p),
                      *_to_normalised_tensor(), *_erasing(cfg)])


def plain(cfg: DataConfig) -> T.Compose:
    return T.Compose([_resize(cfg), *_to_normalised_tensor()])


#: ``data.augment`` -> the recipe's builder; a new recipe registers itself here.
AUGMENTATIONS: Registry[Callable[[DataConfig], T.Compose]] = Registry("augmentation")
for _name, _recipe in (("bot", bot_train), ("rga", rga_train), ("pcb", pcb_train),
                       ("none", plain)):
    AUGMENTATIONS.register(_name)(_recipe)


def build_train_transform(cfg: DataConfig) -> T.Compose:
    if cfg.augment not in AUGMENTATIONS:
        raise KeyError(f"data.augment: unknown recipe {cfg.augment!r}; "
                       f"valid: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS.get(cfg.augment)(cfg)


def build_test_transform(cfg: DataConfig) -> T.Compose:
    """Plain resize + normalisation (all recipes test this way)."""
    return plain(cfg)
