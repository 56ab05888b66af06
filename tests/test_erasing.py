"""Random erasing as Zhong et al.'s code draws it (``data.erasing_mode: zhong``), against a
transcription of that code (zhunzhong07/Random-Erasing ``transforms.py``, Python ``random``),
and torchvision's form next to it."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from reid_core.app.reproduce import build_row_config, load_paper_configs
from reid_core.config import DataConfig, config_from_dict
from reid_core.data.transforms import AUGMENTATIONS, RandomErasing

H, W = 256, 128
DRAWS = 4000


def zhong_reference(rng: random.Random, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3):
    """Zhong et al.'s ``RandomErasing.__call__`` at probability 1, returning the rectangle
    ``(x1, y1, h, w)`` it erases, or None if no rectangle fitted in 100 attempts."""
    for _ in range(100):
        target_area = rng.uniform(sl, sh) * H * W
        aspect_ratio = rng.uniform(r1, 1 / r1)
        h = int(round(math.sqrt(target_area * aspect_ratio)))
        w = int(round(math.sqrt(target_area / aspect_ratio)))
        if w < W and h < H:
            return rng.randint(0, H - h), rng.randint(0, W - w), h, w
    return None


def suite_boxes(mode: str, n: int = DRAWS) -> list[tuple[int, int, int, int] | None]:
    erase = RandomErasing(p=1.0, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=0.0, mode=mode)
    torch.manual_seed(0)
    img = torch.zeros(3, H, W)
    out = []
    for _ in range(n):
        params = erase.make_params([img])
        out.append(None if params["v"] is None
                   else (params["i"], params["j"], params["h"], params["w"]))
    return out


def _stats(boxes):
    fitted = [b for b in boxes if b is not None]
    hs = np.array([b[2] for b in fitted])
    ws = np.array([b[3] for b in fitted])
    return {"tall": float(np.mean(hs > ws)), "fitted": len(fitted) / len(boxes),
            "area": float(np.mean(hs * ws)) / (H * W), "h": float(np.mean(hs)),
            "top": float(np.mean([b[0] / (H - b[2]) for b in fitted if b[2] < H]))}


def test_zhong_mode_draws_the_rectangles_of_zhongs_code():
    rng = random.Random(0)
    ref = _stats([zhong_reference(rng) for _ in range(DRAWS)])
    ours = _stats(suite_boxes("zhong"))
    # Same distributions (4000 draws each: the standard errors are below 0.01 of each value).
    assert ours["tall"] == pytest.approx(ref["tall"], abs=0.03)
    assert ours["area"] == pytest.approx(ref["area"], abs=0.01)
    assert ours["h"] == pytest.approx(ref["h"], rel=0.03)
    assert ours["top"] == pytest.approx(ref["top"], abs=0.03)
    assert ours["fitted"] == ref["fitted"] == 1.0  # 100 tries always fit at 256 x 128


def test_tall_boxes_81_percent_zhong_59_percent_torchvision():
    zhong, tv = _stats(suite_boxes("zhong")), _stats(suite_boxes("torchvision"))
    assert zhong["tall"] == pytest.approx(0.81, abs=0.03)
    assert tv["tall"] == pytest.approx(0.59, abs=0.03)


def test_torchvision_mode_is_torchvisions_draws():
    from torchvision.transforms import v2 as T
    theirs = T.RandomErasing(p=1.0, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=0.0)
    torch.manual_seed(0)
    img = torch.zeros(3, H, W)
    ref = []
    for _ in range(200):
        p = theirs.make_params([img])
        ref.append((p["i"], p["j"], p["h"], p["w"]))
    assert suite_boxes("torchvision", 200) == ref


def test_erasing_mode_reaches_the_transform_and_is_checked():
    cfg = DataConfig(erasing_mode="zhong", erasing_p=0.5)
    erasing = [t for t in AUGMENTATIONS.get(cfg.augment)(cfg).transforms
               if isinstance(t, RandomErasing)]
    assert [e.mode for e in erasing] == ["zhong"]
    with pytest.raises(ValueError, match="unknown erasing mode"):
        RandomErasing(mode="zhong-ish")
    with pytest.raises(ValueError, match="erasing_mode"):
        config_from_dict({"name": "x", "data": {"erasing_mode": "zhong-ish"}})


@pytest.mark.parametrize("profile, mode", [("paper", "zhong"), ("smoke", "torchvision"),
                                           ("scratch", "torchvision")])
def test_rga_profiles_erase_as_their_records(profile, mode):
    source, raw = load_paper_configs("rga")
    assert build_row_config(raw, source, "rga_sc", profile, 0).data.erasing_mode == mode
