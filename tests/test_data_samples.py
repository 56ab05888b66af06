"""Sample dicts of ImageDataset: bit-exact image path, sidecars (masks, keypoints) that follow
every augmentation exactly, erasing / flip semantics, extra views, keypoint heatmaps."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from reid_core.config import DataConfig
from reid_core.data import build_dataset
from reid_core.data.batch import CAMID, IMG, KEYPOINTS, MASK, PID, VIEWS
from reid_core.data.image_dataset import ImageDataset, load_rgb
from reid_core.data.keypoints import (
    COCO_KEYPOINT_NAMES, FLIP_INDEX, KeypointVisibility, heatmap_size, keypoint_heatmaps,
    to_tv_keypoints)
from reid_core.data.sidecars import MarketSidecars, SidecarError
from reid_core.data.transforms import (
    AUGMENTATIONS, IMAGENET_MEAN, IMAGENET_STD, RandomErasing, RandomHorizontalFlip,
    build_test_transform, build_train_transform)

# ---------------------------------------------------------------------------------------------
# Reference: the recipes exactly as they were before sample dicts (image-only, torchvision's
# own flip and erasing, applied to the bare PIL image). Do not "fix" this copy.
# ---------------------------------------------------------------------------------------------


def _ref_normalised() -> list:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def _ref_erasing(cfg: DataConfig) -> list:
    if cfg.erasing_p <= 0:
        return []
    value = cfg.erasing_value if len(cfg.erasing_value) > 1 else cfg.erasing_value[0]
    return [T.RandomErasing(p=cfg.erasing_p, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3),
                            value=value)]


def _ref_bot(cfg):
    size = (cfg.height, cfg.width)
    return T.Compose([T.Resize(size), T.RandomHorizontalFlip(cfg.flip_p), T.Pad(cfg.pad),
                      T.RandomCrop(size), *_ref_normalised(), *_ref_erasing(cfg)])


def _ref_rga(cfg):
    size = (cfg.height, cfg.width)
    big = (round(cfg.height * 1.125), round(cfg.width * 1.125))
    translate = T.RandomChoice(
        [T.Resize(size), T.Compose([T.Resize(big), T.RandomCrop(size)])], p=[0.5, 0.5])
    return T.Compose([translate, T.RandomHorizontalFlip(cfg.flip_p), *_ref_normalised(),
                      *_ref_erasing(cfg)])


def _ref_pcb(cfg):
    return T.Compose([T.Resize((cfg.height, cfg.width)), T.RandomHorizontalFlip(cfg.flip_p),
                      *_ref_normalised(), *_ref_erasing(cfg)])


def _ref_plain(cfg):
    return T.Compose([T.Resize((cfg.height, cfg.width)), *_ref_normalised()])


REFERENCE = {"bot": _ref_bot, "rga": _ref_rga, "pcb": _ref_pcb, "none": _ref_plain}


@pytest.fixture(scope="module")
def tiny(synthetic_cache):
    return build_dataset("synthetic-tiny", synthetic_cache)


def test_reference_covers_every_recipe():
    assert set(REFERENCE) == set(AUGMENTATIONS)


CONFIGS = [
    {},  # the recipe's defaults (BoT erasing fill)
    {"erasing_p": 1.0, "erasing_value": [0.0], "pad": 5, "flip_p": 0.7},  # single fill value
    {"height": 128, "width": 64, "erasing_p": 0.0},  # native size, no erasing
]


@pytest.mark.parametrize("recipe", sorted(AUGMENTATIONS))
@pytest.mark.parametrize("overrides", CONFIGS, ids=["default", "erase-always", "native"])
def test_image_only_samples_are_bit_exact_and_draw_the_same_randomness(tiny, recipe, overrides):
    cfg = dataclasses.replace(DataConfig(augment=recipe), **overrides)
    items = tiny.train[:6]
    reference = REFERENCE[recipe](cfg)
    datasets = {
        "image only": ImageDataset(items, build_train_transform(cfg)),
        # Asking for masks, keypoints and a view must not change the image nor the draws.
        "with sidecars and a view": ImageDataset(items, build_train_transform(cfg),
                                                 sidecars=MarketSidecars(tiny.root),
                                                 views={"low": (64, 32)}),
        # The transform split into a cached deterministic head and its random rest
        # (reid_core.data.prepared): the same bytes, memory layout and draws, cold and warm.
        "cached, prepared": ImageDataset(items, build_train_transform(cfg), cache=True,
                                         cache_prepared=True),
        "cached, prepared, a view": ImageDataset(items, build_train_transform(cfg),
                                                 cache=True, cache_prepared=True,
                                                 views={"low": (64, 32)}),
    }
    assert datasets["cached, prepared"].prepares
    for seed in (0, 1, 7, 2024):
        torch.manual_seed(seed)
        expected, states = [], []
        for path, _, _ in items:
            expected.append(reference(load_rgb(path)))
            states.append(torch.get_rng_state())
        for what, ds in datasets.items():
            torch.manual_seed(seed)
            for i, (_, pid, camid) in enumerate(items):
                sample = ds[i]
                img = sample[IMG]
                assert type(img) is torch.Tensor, what
                assert img.dtype == expected[i].dtype == torch.float32
                assert torch.equal(img, expected[i].as_subclass(torch.Tensor)), (what, seed, i)
                assert img.stride() == expected[i].stride(), (what, seed, i)
                assert torch.equal(torch.get_rng_state(), states[i]), (what, seed, i)
                assert (sample[PID], sample[CAMID]) == (pid, camid)
                if VIEWS in sample:
                    low = TF.resize(expected[i].as_subclass(torch.Tensor), [64, 32],
                                    antialias=True)
                    assert torch.equal(sample[VIEWS]["low"], low), (what, seed, i)


def test_test_transform_is_bit_exact(tiny):
    cfg = DataConfig()
    ds = ImageDataset(tiny.query[:4], build_test_transform(cfg))
    prepared = ImageDataset(tiny.query[:4], build_test_transform(cfg), cache=True,
                            cache_prepared=True)
    assert prepared.prepares
    for i, (path, _, _) in enumerate(tiny.query[:4]):
        expected = _ref_plain(cfg)(load_rgb(path)).as_subclass(torch.Tensor)
        assert torch.equal(ds[i][IMG], expected)
        for _ in range(2):  # cold, then from the cache
            assert torch.equal(prepared[i][IMG], expected)
            assert prepared[i][IMG].stride() == expected.stride()


def test_prepared_samples_never_alias_the_cache(tiny):
    ds = ImageDataset(tiny.train[:2], build_test_transform(DataConfig()), cache=True,
                      cache_prepared=True)
    first = ds[0][IMG]
    first.fill_(0.0)  # a consumer writing into its sample must not change the next one
    assert not torch.equal(ds[0][IMG], first)


def test_prepared_cache_is_bounded_and_exact_beyond_its_budget(tiny, monkeypatch):
    import reid_core.data.image_dataset as image_dataset

    monkeypatch.setattr(image_dataset, "PREPARED_CACHE_MAX_BYTES", 0)
    cfg = DataConfig(augment="rga", height=64, width=32)
    items = tiny.train[:4]
    ds = ImageDataset(items, build_train_transform(cfg), cache=True, cache_prepared=True)
    reference = REFERENCE["rga"](cfg)
    torch.manual_seed(5)
    expected = [reference(load_rgb(path)).as_subclass(torch.Tensor) for path, _, _ in items]
    torch.manual_seed(5)
    assert all(torch.equal(ds[i][IMG], expected[i]) for i in range(len(items)))
    assert ds._prepared == {} and ds._prepared_bytes == 0


class _OwnFlip(T.RandomHorizontalFlip):
    pass


def test_transforms_that_cannot_be_split_run_as_they_are(tiny):
    from reid_core.data.prepared import split_transform

    tail = [T.ToImage(), T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    for recipe in AUGMENTATIONS:
        assert split_transform(build_train_transform(DataConfig(augment=recipe))) is not None
    unsplittable = [
        T.Compose([T.ColorJitter(0.2), *tail]),  # not elementwise-commuting
        T.Compose([T.RandomHorizontalFlip(), T.Resize((64, 32)), *tail]),  # resize after a flip
        T.Compose([T.Resize((64, 32)), T.RandomCrop((64, 32), padding=2), *tail]),
        T.Compose([T.Resize((64, 32)), T.Pad(2, padding_mode="reflect"), *tail]),
        T.Compose([T.Resize((64, 32)), *tail, T.RandomHorizontalFlip()]),  # after conversion
        T.Compose([T.Resize((64, 32)), _OwnFlip(), *tail]),  # a subclass may do more
        T.Compose([T.Resize((64, 32))]),  # no conversion
        T.Resize((64, 32)),
        None,
    ]
    for transform in unsplittable:
        assert split_transform(transform) is None, transform
    ds = ImageDataset(tiny.train[:2], unsplittable[0], cache=True, cache_prepared=True)
    assert not ds.prepares and ds[0][IMG].shape[0] == 3  # the transform itself, unsplit
    with_sidecars = ImageDataset(tiny.train[:2], build_train_transform(DataConfig()),
                                 cache=True, cache_prepared=True,
                                 sidecars=MarketSidecars(tiny.root))
    assert not with_sidecars.prepares  # masks and keypoints take torchvision's own path


def test_batches_are_dicts_of_stacked_tensors(tiny):
    cfg = DataConfig(height=64, width=32)
    ds = ImageDataset(tiny.train[:4], build_train_transform(cfg),
                      sidecars=MarketSidecars(tiny.root), views={"low": (32, 16)})
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert set(batch) == {IMG, PID, CAMID, MASK, KEYPOINTS, VIEWS}
    assert batch[IMG].shape == (4, 3, 64, 32) and batch[IMG].dtype == torch.float32
    assert batch[PID].dtype == batch[CAMID].dtype == torch.int64 and batch[PID].shape == (4,)
    assert batch[MASK].shape == (4, 1, 64, 32) and batch[MASK].dtype == torch.float32
    assert set(batch[MASK].unique().tolist()) <= {0.0, 1.0}
    assert batch[KEYPOINTS].shape == (4, 17, 3) and batch[KEYPOINTS].dtype == torch.float32
    assert batch[VIEWS]["low"].shape == (4, 3, 32, 16)
    plain = next(iter(DataLoader(ImageDataset(tiny.train[:4], build_test_transform(cfg)),
                                 batch_size=4)))
    assert set(plain) == {IMG, PID, CAMID}  # sidecars and views only when asked for


def test_views_are_the_same_augmented_image_resized(tiny):
    cfg = DataConfig(augment="bot", erasing_p=1.0)
    ds = ImageDataset(tiny.train[:3], build_train_transform(cfg),
                      views={"low": (128, 64), "tiny": (32, 16)})
    torch.manual_seed(3)
    for i in range(3):
        s = ds[i]
        for name, size in (("low", (128, 64)), ("tiny", (32, 16))):
            assert torch.equal(s[VIEWS][name], TF.resize(s[IMG], list(size), antialias=True))
    with pytest.raises(ValueError, match=r"views\['low'\]"):
        ImageDataset(tiny.train, build_test_transform(cfg), views={"low": (0, 64)})
    with pytest.raises(ValueError, match="views need a transform"):
        ImageDataset(tiny.train, None, views={"low": (128, 64)})


# ---------------------------------------------------------------------------------------------
# Alignment: an image whose pixels encode its own mask and keypoints
# ---------------------------------------------------------------------------------------------

PERSON_R, BACKGROUND_R = 200, 50
ERASE_FILL = 5.0  # in normalised space: no real pixel normalises to it (max is about 2.64)


def _dot_value(k: int) -> int:
    return 8 * (k + 1)  # blue channel at keypoint k's pixel; 0 elsewhere


def _encoded_dataset(root: Path, height: int, width: int) -> tuple[list, np.ndarray, np.ndarray]:
    """A one-image Market-style dataset written as PNG (lossless), with its sidecars.

    Red encodes the person mask, green a left-to-right ramp (to see flips), blue a unique
    value at each labelled keypoint's pixel. Returns (items, mask (H, W), keypoint pixels (17,
    3) as (col, row, v))."""
    rng = np.random.default_rng(0)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 6: height - 8, width // 4: width - width // 4] = 1
    mask[height // 3: height // 2, 3: width // 4] = 1  # an arm reaching towards the left edge
    # Pixels not on multiples of 9 (an 8/9 resize would make them fractional) and some near
    # the borders (pad + crop pushes those out now and then).
    cols = [c for c in range(1, width - 1) if c % 9]
    rows = [r for r in range(1, height - 1) if r % 9]
    pts = np.stack([rng.choice(cols, 17, replace=False), rng.choice(rows, 17), np.full(17, 2)], 1)
    pts[0, :2] = (2, 3)
    pts[1, :2] = (width - 2, height - 3)
    pts[4, 2] = 1  # occluded in the annotation
    pts[7, 2] = 0  # not labelled
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.where(mask > 0, PERSON_R, BACKGROUND_R)
    img[..., 1] = (np.arange(width) * 200 // width)[None, :] + 20
    for k, (c, r, v) in enumerate(pts):
        if v > 0:
            img[r, c, 2] = _dot_value(k)
    split = root / "bounding_box_train"
    split.mkdir(parents=True)
    (root / "masks" / "bounding_box_train").mkdir(parents=True)
    (root / "keypoints").mkdir()
    name = "0001_c1s1_000001_00.png"
    Image.fromarray(img).save(split / name)
    Image.fromarray(mask * 255, mode="L").save(root / "masks" / "bounding_box_train" /
                                               "0001_c1s1_000001_00.png")
    # File convention: continuous coordinates, a pixel's centre at +0.5.
    kps = [[float(c) + 0.5, float(r) + 0.5, int(v)] if v else [0.0, 0.0, 0] for c, r, v in pts]
    (root / "keypoints" / "bounding_box_train.json").write_text(json.dumps(
        {"format": "coco17", "keypoint_names": list(COCO_KEYPOINT_NAMES),
         "images": {name: kps}}))
    return [(str(split / name), 0, 0)], mask, pts


def _decode(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (3, H, W) -> (erased (H, W) bool, uint8-valued pixels (3, H, W))."""
    erased = (img == ERASE_FILL).all(0)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return erased, torch.round((img * std + mean) * 255).long()


def _check_exact_alignment(sample, pts: np.ndarray, events: dict[str, int]) -> None:
    img, mask, kp = sample[IMG], sample[MASK][0], sample[KEYPOINTS]
    h, w = mask.shape
    erased, px = _decode(img)
    r, g, b = px
    # The mask is exactly the red channel's person pixels, minus the erased rectangle.
    assert torch.equal(mask.bool(), (r == PERSON_R) & ~erased)
    assert (mask[erased] == 0).all()
    # Flipped iff the green ramp falls from left to right (padding is 0, erased pixels fill).
    valid = (g > 0) & ~erased
    cols = torch.arange(w).expand(h, w)[valid].double()
    ramp = g[valid].double()
    flipped = bool(((cols - cols.mean()) * (ramp - ramp.mean())).sum() < 0)
    events["flipped"] += flipped
    events["erased"] += bool(erased.any())
    for k in range(17):
        src = FLIP_INDEX[k] if flipped else k  # a flip swaps left and right points
        x, y, v = kp[k].tolist()
        if pts[src, 2] == 0:
            assert v == 0, k
            continue
        assert x == round(x) and y == round(y), (k, x, y)  # no resize: stays on a pixel centre
        col, rw = int(x), int(y)
        hit = ((b == _dot_value(src)) & ~erased).nonzero().tolist()
        if hit:  # the dot survived: the keypoint is exactly on it, visibility unchanged
            assert hit == [[rw, col]], (k, hit, (rw, col))
            assert v == pts[src, 2], k
        elif 0 <= col < w and 0 <= rw < h:  # inside the image but not seen: erased over it
            assert erased[rw, col], k
            assert v == 1, k  # an erased rectangle is an occluder
            events["kp_erased"] += 1
        else:  # pushed out of the image by the crop: coordinates kept, visibility 0
            assert v == 0, k
            events["kp_out"] += 1


@pytest.mark.parametrize("recipe", ["bot", "pcb", "none"])
def test_mask_and_keypoints_follow_flip_pad_crop_and_erasing_exactly(tmp_path, recipe):
    items, _, pts = _encoded_dataset(tmp_path / "ds", 128, 64)
    cfg = DataConfig(augment=recipe, height=128, width=64, erasing_p=1.0,
                     erasing_value=[ERASE_FILL])
    ds = ImageDataset(items, build_train_transform(cfg), sidecars=MarketSidecars(tmp_path / "ds"))
    events = dict.fromkeys(("flipped", "erased", "kp_erased", "kp_out"), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchvision's erasing warns on masks; ours must not
        for seed in range(60):
            torch.manual_seed(seed)
            _check_exact_alignment(ds[0], pts, events)
    if recipe != "none":
        assert 10 < events["flipped"] < 50
    if recipe == "bot":
        assert events["erased"] > 0 and events["kp_erased"] > 0 and events["kp_out"] > 0


def test_mask_and_keypoints_follow_the_rga_translation_exactly(tmp_path):
    """RGA: resize to 1.125x then random-crop back. With the source at exactly 1.125x the
    resize is the identity, so a translated sample must line up pixel for pixel; the other
    branch (plain resize by 8/9) is recognised by its fractional keypoints."""
    cfg = DataConfig(augment="rga", height=128, width=64, erasing_p=1.0,
                     erasing_value=[ERASE_FILL])
    items, _, pts = _encoded_dataset(tmp_path / "ds", 144, 72)
    ds = ImageDataset(items, build_train_transform(cfg), sidecars=MarketSidecars(tmp_path / "ds"))
    events = dict.fromkeys(("flipped", "erased", "kp_erased", "kp_out"), 0)
    translated = resized = 0
    for seed in range(60):
        torch.manual_seed(seed)
        s = ds[0]
        labelled = torch.from_numpy(pts[:, 2] > 0)
        xy = s[KEYPOINTS][labelled & labelled[list(FLIP_INDEX)], :2]  # flipped or not
        if torch.equal(xy, xy.round()):
            translated += 1
            _check_exact_alignment(s, pts, events)
        else:  # resized: the mask still agrees with the image except along edges
            resized += 1
            erased, (r, _, _) = _decode(s[IMG])
            image_mask = (r > (PERSON_R + BACKGROUND_R) // 2) & ~erased
            m = s[MASK][0].bool()
            assert (m & image_mask).sum() / (m | image_mask).sum() > 0.9
    assert translated > 10 and resized > 10 and events["kp_out"] > 0


def test_mask_follows_an_integer_upscale_exactly(tmp_path):
    """BoT at 2x (a 128 x 64 image trained at 256 x 128): the nearest-resized mask is exactly
    the bilinearly resized image's person pixels; keypoints land in their dot's 2x2 block."""
    items, _, pts = _encoded_dataset(tmp_path / "ds", 128, 64)
    cfg = DataConfig(augment="bot", height=256, width=128, erasing_p=1.0,
                     erasing_value=[ERASE_FILL])
    ds = ImageDataset(items, build_train_transform(cfg), sidecars=MarketSidecars(tmp_path / "ds"))
    for seed in range(20):
        torch.manual_seed(seed)
        s = ds[0]
        erased, (r, _, b) = _decode(s[IMG])
        assert torch.equal(s[MASK][0].bool(), (r > (PERSON_R + BACKGROUND_R) // 2) & ~erased)
        for x, y, v in s[KEYPOINTS].tolist():
            if v == 2:
                assert b[round(y), round(x)] > 0


def test_synthetic_sidecars_load_through_the_loader(tiny):
    ds = ImageDataset(tiny.train[:5], build_test_transform(DataConfig(height=128, width=64)),
                      sidecars=MarketSidecars(tiny.root))
    kp_file = json.loads((tiny.root / "keypoints" / "bounding_box_train.json").read_text())
    for i, (path, _, _) in enumerate(tiny.train[:5]):
        s = ds[i]
        name = Path(path).name
        mask_file = tiny.root / "masks" / "bounding_box_train" / (Path(name).stem + ".png")
        with Image.open(mask_file) as m:
            expected = torch.from_numpy(np.asarray(m) > 127)
        assert torch.equal(s[MASK][0].bool(), expected)
        raw = torch.tensor(kp_file["images"][name], dtype=torch.float32)
        assert torch.equal(s[KEYPOINTS][:, 2], raw[:, 2])  # every labelled point is in the image
        assert torch.allclose(s[KEYPOINTS][:, :2], raw[:, :2] - 0.5)  # pixel centres at integers
    only_masks = ImageDataset(tiny.train[:1], build_test_transform(DataConfig()),
                              sidecars=MarketSidecars(tiny.root, keys=[MASK]))
    assert set(only_masks[0]) == {IMG, PID, CAMID, MASK}


def test_coco17_flip_pairs():
    assert FLIP_INDEX[COCO_KEYPOINT_NAMES.index("left_wrist")] == \
        COCO_KEYPOINT_NAMES.index("right_wrist")
    assert sorted(FLIP_INDEX) == list(range(17)) and FLIP_INDEX[0] == 0


def test_missing_or_foreign_sidecars_name_the_file(tmp_path, tiny):
    items, _, _ = _encoded_dataset(tmp_path / "ds", 64, 32)
    (tmp_path / "ds" / "masks" / "bounding_box_train" / "0001_c1s1_000001_00.png").unlink()
    ds = ImageDataset(items, None, sidecars=MarketSidecars(tmp_path / "ds"))
    with pytest.raises(SidecarError, match=r"masks/bounding_box_train/0001_c1s1_000001_00\.png"):
        ds[0]
    kp_only = ImageDataset(tiny.train[:1], None,
                           sidecars=MarketSidecars(tmp_path / "ds", keys=[KEYPOINTS]))
    with pytest.raises(SidecarError, match="not inside the dataset directory"):
        kp_only[0]
    with pytest.raises(ValueError, match="subset of"):
        MarketSidecars(tmp_path, keys=["heatmaps"])


# ---------------------------------------------------------------------------------------------
# Erasing, flip and heatmap semantics on hand-made samples
# ---------------------------------------------------------------------------------------------


def _sample(h: int = 20, w: int = 10):
    points = torch.tensor([[2.0, 3.0, 2], [5.0, 10.0, 2], [5.0, 11.0, 1], [6.0, 12.0, 0]]
                          + [[0.0, 0.0, 0]] * 13)
    kp, vis = to_tv_keypoints(points, (h, w))
    return {IMG: tv_tensors.Image(torch.rand(3, h, w)),
            MASK: tv_tensors.Mask(torch.ones(1, h, w, dtype=torch.uint8)), KEYPOINTS: kp,
            "vis": vis}


def test_erasing_makes_an_occluder_of_the_rectangle():
    hits = 0
    for seed in range(30):
        torch.manual_seed(seed)
        out = RandomErasing(p=1.0, scale=(0.1, 0.4), value=9.0)(_sample())
        erased = (out[IMG] == 9.0).all(0)
        assert erased.any()
        assert torch.equal(out[MASK][0] == 0, erased)  # mask 0 exactly where erased
        assert torch.equal(out[KEYPOINTS], _sample()[KEYPOINTS])  # points do not move
        assert isinstance(out["vis"], KeypointVisibility)
        for (x, y), v, v0 in zip(out[KEYPOINTS].tolist(), out["vis"].tolist(),
                                 _sample()["vis"].tolist()):
            inside = bool(erased[int(y), int(x)])
            hits += inside and v0 == 2
            assert v == (min(v0, 1) if inside else v0)
    assert hits > 0


def test_erasing_draws_like_torchvision():
    for seed in range(10):
        torch.manual_seed(seed)
        ours = RandomErasing(p=0.5, value=0.3)(_sample())[IMG]
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = T.RandomErasing(p=0.5, value=0.3)(_sample())[IMG]
        assert torch.equal(ours, theirs)


def test_flip_mirrors_and_swaps_left_and_right():
    s = _sample()
    out = RandomHorizontalFlip(1.0)(s)
    assert torch.equal(out[MASK], s[MASK].flip(-1))
    for k in range(17):
        src = FLIP_INDEX[k]
        assert out[KEYPOINTS][k, 0] == 10 - 1 - s[KEYPOINTS][src, 0]  # W - 1 - x: same pixel
        assert out[KEYPOINTS][k, 1] == s[KEYPOINTS][src, 1]
        assert out["vis"][k] == s["vis"][src]
    assert isinstance(out["vis"], KeypointVisibility)


def test_keypoint_heatmaps_peak_on_their_cell():
    stride, sigma = 4, 1.0
    kp = torch.zeros(2, 17, 3)
    kp[0, 0] = torch.tensor([4 * 5 + 1.5, 4 * 7 + 1.5, 2])  # centre of cell (x=5, y=7)
    kp[0, 1] = torch.tensor([10.0, 10.0, 1])  # occluded: kept by default
    kp[1, 2] = torch.tensor([30.0, 60.0, 0])  # unlabelled: zero map
    hm = keypoint_heatmaps(kp, (64, 32), stride, sigma)
    assert hm.shape == (2, 17, 16, 8) and heatmap_size((65, 32), 4) == (17, 8)
    assert hm[0, 0, 7, 5] == 1.0 and hm[0, 0].argmax() == 7 * 8 + 5
    assert torch.allclose(hm[0, 0, 7, 6], torch.tensor(float(np.exp(-0.5))))
    assert hm[0, 1].max() > 0 and hm[1, 2].max() == 0
    assert keypoint_heatmaps(kp, (64, 32), stride, sigma, min_visibility=2)[0, 1].max() == 0
