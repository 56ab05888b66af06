"""The embedded synthetic dataset: layout, protocol features, sidecars, determinism, caching, atomicity."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reid_core.data.synthetic as synthetic
from reid_core.data import build_dataset
from reid_core.data.market1501 import MARKET_NAME
from reid_core.data.synthetic import PRESETS, SyntheticSpec, generate_synthetic

SMALL = SyntheticSpec(num_train_ids=4, num_test_ids=4, num_distractors=3, num_junk=3,
                      cams_per_id=(2, 3), images_per_track=(2, 2), seed=5)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("syn"), "tiny", progress=False)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jpg"))


def test_market_layout_and_names(tiny_dir):
    for split in ("bounding_box_train", "bounding_box_test", "query"):
        files = names(tiny_dir / split)
        assert files, split
        assert all(MARKET_NAME.match(f) for f in files), split
    with Image.open(next((tiny_dir / "query").glob("*.jpg"))) as im:
        assert im.size == (64, 128) and im.mode == "RGB"


def test_protocol_features_present(tiny_dir):
    pid = lambda f: int(f.split("_")[0])  # noqa: E731
    cam = lambda f: int(f.split("_")[1][1])  # noqa: E731
    train, gallery, query = (names(tiny_dir / s) for s in
                             ("bounding_box_train", "bounding_box_test", "query"))
    assert not any(pid(f) in (0, -1) for f in train + query)
    assert any(pid(f) == 0 for f in gallery) and any(pid(f) == -1 for f in gallery)
    assert {pid(f) for f in train}.isdisjoint({pid(f) for f in query})
    assert len({cam(f) for f in train + gallery + query}) >= 6
    g_by_id = defaultdict(set)
    for f in gallery:
        g_by_id[pid(f)].add(cam(f))
    same_cam_in_gallery = 0
    for q in query:
        assert g_by_id[pid(q)] - {cam(q)}, f"query {q} has no cross-camera gallery match"
        same_cam_in_gallery += cam(q) in g_by_id[pid(q)]
    assert same_cam_in_gallery > 0  # the same-id-same-camera junk rule is exercised


def test_masks_and_keypoints_for_every_image(tiny_dir):
    for split in ("bounding_box_train", "bounding_box_test", "query"):
        kp = json.loads((tiny_dir / "keypoints" / f"{split}.json").read_text())
        assert kp["format"] == "coco17" and len(kp["keypoint_names"]) == 17
        files = names(tiny_dir / split)
        assert sorted(kp["images"]) == files
        for f in files[:20]:
            with Image.open(tiny_dir / "masks" / split / (Path(f).stem + ".png")) as m:
                mask = np.asarray(m)
            assert mask.shape == (128, 64) and set(np.unique(mask)) <= {0, 255}
            pts = np.asarray(kp["images"][f])
            assert pts.shape == (17, 3) and set(pts[:, 2]) <= {0, 1, 2}
            vis = pts[pts[:, 2] > 0]
            assert ((vis[:, 0] >= 0) & (vis[:, 0] < 64) & (vis[:, 1] >= 0) & (vis[:, 1] < 128)).all()
        # Visible keypoints of ordinary train images lie on the person mask (mostly).
    split = "bounding_box_train"
    kp = json.loads((tiny_dir / "keypoints" / f"{split}.json").read_text())["images"]
    on, total = 0, 0
    for f, pts in kp.items():
        mask = np.asarray(Image.open(tiny_dir / "masks" / split / (Path(f).stem + ".png")))
        for x, y, v in pts:
            if v == 2:
                total += 1
                on += mask[int(y), int(x)] > 0
    assert total > 0 and on / total > 0.8


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_synthetic(tmp_path / "a", SMALL, progress=False)
    b = generate_synthetic(tmp_path / "b", SMALL, progress=False, workers=1)
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        assert names(a / split) == names(b / split)
        for f in names(a / split)[:5]:
            assert (a / split / f).read_bytes() == (b / split / f).read_bytes()
    other = SyntheticSpec(**{**SMALL.__dict__, "seed": 6})
    c = generate_synthetic(tmp_path / "c", other, progress=False)
    assert names(c / "bounding_box_train") != names(a / "bounding_box_train") or any(
        (c / "bounding_box_train" / f).read_bytes() != (a / "bounding_box_train" / f).read_bytes()
        for f in names(a / "bounding_box_train")[:3])


def test_cached_by_parameters(tmp_path):
    d1 = generate_synthetic(tmp_path, SMALL, progress=False)
    stamp = (d1 / "spec.json").stat().st_mtime_ns
    d2 = generate_synthetic(tmp_path, SMALL, progress=False)
    assert d1 == d2 and (d2 / "spec.json").stat().st_mtime_ns == stamp
    d3 = generate_synthetic(tmp_path, SyntheticSpec(**{**SMALL.__dict__, "num_junk": 4}),
                            progress=False)
    assert d3 != d1


def test_killed_generation_leaves_no_dataset(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synthetic._render_and_encode

    def dying(args):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real(args)

    monkeypatch.setattr(synthetic, "_render_and_encode", dying)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(tmp_path, SMALL, progress=False, workers=1)
    left = [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    assert left == []  # neither a final nor a temporary directory is left (the lock file stays)
    monkeypatch.setattr(synthetic, "_render_and_encode", real)
    d = generate_synthetic(tmp_path, SMALL, progress=False, workers=1)
    assert (d / "spec.json").is_file()


def test_read_by_the_market_loader_via_registry(tmp_path):
    data = build_dataset("synthetic-tiny", tmp_path)
    assert data.name == "synthetic-tiny"
    spec = PRESETS["tiny"]
    assert data.num_train_pids == spec.num_train_ids
    assert sorted({p for _, p, _ in data.train}) == list(range(spec.num_train_ids))
    assert all(p != -1 for _, p, _ in data.gallery)  # junk dropped at load time
    assert Counter(p == 0 for _, p, _ in data.gallery)[True] == spec.num_distractors


@pytest.mark.slow
def test_task_is_neither_trivial_nor_random(tmp_path):
    """The README demo (BoT ResNet-50 from scratch, smoke budget) lands clearly above chance
    and clearly below perfect on the default synthetic dataset. ~5 minutes on 2 CPU cores."""
    from reid_core.config import load_config
    from reid_core.app.experiment import run_experiment

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "configs" / "bot_r50_smoke.yaml")
    record = run_experiment(cfg, data_root=tmp_path / "cache", out=tmp_path / "out", device="cpu")
    chance = 100 / record["dataset"]["splits"]["gallery"]["ids"]
    r1 = record["final"]["after_bn"]["R1"]
    assert 5 * chance < r1 < 90, r1
