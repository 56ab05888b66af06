"""The embedded synthetic re-ID dataset, written in the real Market-1501 layout.

Every default run of the suite uses it (no real dataset can be downloaded here), and the real
Market-1501 reader reads it: ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` with
names like ``0002_c1s1_000451_03.jpg``. Rendering (people, cameras, occluders) lives in
:mod:`reid_core.data.synthetic_render`; this module plans the dataset and writes it.

The plan follows Market-1501's structure:

* train and test identities are disjoint; each identity is seen by 2-6 cameras, each
  (identity, camera) pair is a *track* with its own viewpoint, background and placement;
* for every test identity, one image from each of a few of its cameras goes to ``query/``,
  always leaving a gallery image of it in another camera; the rest go to the gallery, so
  **same-id-same-camera** gallery images exist (the protocol's junk rule is exercised);
* the gallery also holds **distractors** (pid ``0000``: people who are never queried) and
  **junk** (pid ``-1``: bad boxes: off-centre, zoomed in, tiny, mostly occluded).

Sidecars for every image (used by DAAF later):

* ``masks/<split dir>/<image stem>.png``: uint8 person mask, 255 = person;
* ``keypoints/<split dir>.json``: ``{"format": "coco17", "keypoint_names": [...],
  "images": {file name: [[x, y, v] x 17]}}`` in image pixels, COCO visibility;
* ``spec.json``: the generation parameters, format version and counts.

Generation is deterministic (each image's randomness derives from (seed, image index), so the
number of worker processes does not matter), cached by the hash of its parameters, and atomic:
everything is written into a temporary sibling directory that is renamed into place last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reid_core.data.base import ReIDData, register_dataset
from reid_core.data.market1501 import read_market_style
from reid_core.data.synthetic_render import (
    JUNK_KINDS, KEYPOINT_NAMES, STREAM_IDENTITY, STREAM_PLAN, VIEWS, Camera, RenderJob,
    render_image, sample_cameras, sample_identity)
from reid_core.utils.io import atomic_write_json

FORMAT_VERSION = 1
SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic dataset (all counts are exact except where a range is given).

    Attributes:
        num_train_ids / num_test_ids: identities per split (disjoint).
        num_cameras: cameras (<= 6, like Market-1501).
        cams_per_id: (min, max) cameras that see one identity.
        images_per_track: (min, max) images of one identity in one camera.
        queries_per_id: (min, max) query images of a test identity (one per camera).
        num_distractors: gallery images of pid 0000 (never-queried people).
        num_junk: gallery images of pid -1 (bad boxes).
        height / width: image size in pixels (Market-1501: 128 x 64).
        camera_strength: how far the cameras' colour casts, gamma, brightness, saturation and
            haze depart from neutral (0..1, see ``synthetic_render.sample_cameras``). 0.5 keeps
            the cross-camera task hard but learnable from scratch within the smoke budget.
        seed: everything derives from it.
    """

    num_train_ids: int
    num_test_ids: int
    num_cameras: int = 6
    cams_per_id: tuple[int, int] = (2, 5)
    images_per_track: tuple[int, int] = (2, 4)
    queries_per_id: tuple[int, int] = (1, 3)
    num_distractors: int = 100
    num_junk: int = 60
    height: int = 128
    width: int = 64
    camera_strength: float = 0.5
    seed: int = 0

    def digest(self) -> str:
        canon = json.dumps({"version": FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(canon.encode()).hexdigest()[:12]


PRESETS: dict[str, SyntheticSpec] = {
    # Unit tests: a couple of hundred images, a second or two.
    "tiny": SyntheticSpec(num_train_ids=12, num_test_ids=10, num_distractors=12, num_junk=8,
                          cams_per_id=(2, 4), images_per_track=(2, 3)),
    # Demos.
    "default": SyntheticSpec(num_train_ids=150, num_test_ids=150, num_distractors=300,
                             num_junk=150),
    # Smoke tables: ten or more rows must train within minutes on 2 CPU cores.
    "small": SyntheticSpec(num_train_ids=100, num_test_ids=100, num_distractors=150,
                           num_junk=80),
}


@dataclass(frozen=True)
class PlannedImage:
    job: RenderJob
    split: str  # one of SPLIT_DIRS
    file_name: str


def plan(spec: SyntheticSpec) -> list[PlannedImage]:
    """Decide every image: identity, camera, viewpoint, split and file name."""
    if not 2 <= spec.num_cameras <= 6:
        raise ValueError("num_cameras must be in 2..6")
    rng = np.random.default_rng([spec.seed, STREAM_PLAN])
    n_people = spec.num_train_ids + spec.num_test_ids + spec.num_distractors
    people = [sample_identity(np.random.default_rng([spec.seed, STREAM_IDENTITY, k]))
              for k in range(n_people)]
    frames = [0] * spec.num_cameras  # running frame number per camera, for unique names
    out: list[PlannedImage] = []
    track = 0

    def add(person: int, pid: int, cam: int, view: str, split: str, kind: str = "person") -> None:
        frames[cam] += int(rng.integers(10, 200))
        det = int(rng.integers(0, 8))
        name = f"{pid:04d}" if pid >= 0 else "-1"
        file_name = f"{name}_c{cam + 1}s1_{frames[cam]:06d}_{det:02d}.jpg"
        out.append(PlannedImage(RenderJob(len(out), people[person], cam, view, track, kind),
                                split, file_name))

    def tracks(person: int) -> Iterator[tuple[int, str, int]]:
        """(camera, view, number of images) for each camera that sees ``person``."""
        lo, hi = spec.cams_per_id
        n_cams = int(rng.integers(lo, min(hi, spec.num_cameras) + 1))
        for cam in sorted(rng.choice(spec.num_cameras, n_cams, replace=False).tolist()):
            view = VIEWS[int(rng.integers(0, len(VIEWS)))]
            yield cam, view, int(rng.integers(spec.images_per_track[0], spec.images_per_track[1] + 1))

    for k in range(spec.num_train_ids):
        for cam, view, n in tracks(k):
            for _ in range(n):
                add(k, k + 1, cam, view, "bounding_box_train")
            track += 1
    for j in range(spec.num_test_ids):
        person, pid = spec.num_train_ids + j, spec.num_train_ids + j + 1
        cam_tracks = list(tracks(person))
        # Queries: one image from each of some cameras, never from all of them, so each query
        # keeps a true match in another camera.
        n_q = int(rng.integers(spec.queries_per_id[0],
                               min(spec.queries_per_id[1], len(cam_tracks) - 1) + 1))
        query_cams = set(rng.choice(len(cam_tracks), n_q, replace=False).tolist())
        for t, (cam, view, n) in enumerate(cam_tracks):
            for i in range(n):
                add(person, pid, cam, view, "query" if (t in query_cams and i == 0)
                    else "bounding_box_test")
            track += 1
    first_distractor = spec.num_train_ids + spec.num_test_ids
    for d in range(spec.num_distractors):
        add(first_distractor + d, 0, int(rng.integers(0, spec.num_cameras)),
            VIEWS[int(rng.integers(0, len(VIEWS)))], "bounding_box_test")
        track += 1
    for _ in range(spec.num_junk):
        person = int(rng.integers(spec.num_train_ids, n_people))  # test people and distractors
        add(person, -1, int(rng.integers(0, spec.num_cameras)),
            VIEWS[int(rng.integers(0, len(VIEWS)))], "bounding_box_test",
            kind=JUNK_KINDS[int(rng.integers(0, len(JUNK_KINDS)))])
        track += 1
    return out


def _render_and_encode(args: tuple[PlannedImage, tuple[Camera, ...], int, int, int]):
    """Worker: render one image; return JPEG bytes, PNG mask bytes and keypoints."""
    item, cameras, seed, height, width = args
    r = render_image(item.job, cameras, seed, height, width)
    jpg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(r.image).save(jpg, format="JPEG", quality=90)
    Image.fromarray(r.mask, mode="L").save(png, format="PNG")
    return jpg.getvalue(), png.getvalue(), np.round(r.keypoints, 2).tolist()


def _write_dataset(spec: SyntheticSpec, target: Path, progress: bool, workers: int) -> dict:
    items = plan(spec)
    cameras = sample_cameras(spec.seed, spec.num_cameras, spec.camera_strength)
    for split in SPLIT_DIRS:
        (target / split).mkdir(parents=True)
        (target / "masks" / split).mkdir(parents=True)
    (target / "keypoints").mkdir()
    keypoints: dict[str, dict[str, list]] = {s: {} for s in SPLIT_DIRS}
    jobs = [(it, cameras, spec.seed, spec.height, spec.width) for it in items]
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        results = (pool.map(_render_and_encode, jobs, chunksize=16) if pool is not None
                   else map(_render_and_encode, jobs))
        for it, (jpg, png, kps) in _progress(zip(items, results), len(items), progress):
            (target / it.split / it.file_name).write_bytes(jpg)
            (target / "masks" / it.split / (Path(it.file_name).stem + ".png")).write_bytes(png)
            keypoints[it.split][it.file_name] = kps
    for split in SPLIT_DIRS:
        (target / "keypoints" / f"{split}.json").write_text(json.dumps(
            {"format": "coco17", "keypoint_names": list(KEYPOINT_NAMES),
             "images": keypoints[split]}))
    counts = {s: sum(1 for it in items if it.split == s) for s in SPLIT_DIRS}
    meta = {"format_version": FORMAT_VERSION, "digest": spec.digest(),
            "spec": dataclasses.asdict(spec), "counts": counts}
    atomic_write_json(target / "spec.json", meta)
    return meta


def _progress(it, total: int, enabled: bool):
    if not enabled:
        yield from it
        return
    from rich.progress import track

    yield from track(it, total=total, description="generating synthetic re-ID dataset")


def default_cache_root() -> Path:
    """``$REID_BENCH_CACHE/synthetic``, else ``~/.cache/reid-attention-bench/synthetic``."""
    env = os.environ.get("REID_BENCH_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "reid-attention-bench"
    return base / "synthetic"


def generate_synthetic(cache_root: str | Path, spec: SyntheticSpec | str = "default", *,
                       progress: bool = True, workers: int | None = None) -> Path:
    """Generate (or reuse) a synthetic dataset; return its directory.

    The directory is ``cache_root/synthetic-<preset or "custom">-<hash of spec>/``. If it exists
    with a matching ``spec.json`` it is returned at once. Otherwise the dataset is written into
    a temporary sibling directory that is renamed into place only when complete, so an
    interrupted generation never leaves a partial dataset under the final name.
    """
    label = spec if isinstance(spec, str) else "custom"
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise KeyError(f"unknown synthetic preset {spec!r}; valid: {', '.join(PRESETS)}")
        spec = PRESETS[spec]
    cache_root = Path(cache_root).expanduser()
    final = cache_root / f"synthetic-{label}-{spec.digest()}"
    if _is_complete(final, spec):
        return final
    cache_root.mkdir(parents=True, exist_ok=True)
    for stale in cache_root.glob(f".{final.name}.*.tmp"):  # leftovers of killed generations
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=cache_root))
    try:
        _write_dataset(spec, tmp, progress, workers or min(2, os.cpu_count() or 1))
        if final.exists():  # a broken leftover under the final name (e.g. edited by hand)
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _is_complete(directory: Path, spec: SyntheticSpec) -> bool:
    try:
        meta = json.loads((directory / "spec.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("digest") == spec.digest() and meta.get("format_version") == FORMAT_VERSION


def _loader(preset: str, name: str):
    def load(root: Path) -> ReIDData:
        return read_market_style(generate_synthetic(root, preset), name)

    load.__doc__ = f"The {preset!r} synthetic preset, generated (cached) under ``root``."
    return load


register_dataset("synthetic")(_loader("default", "synthetic"))
register_dataset("synthetic-small")(_loader("small", "synthetic-small"))
register_dataset("synthetic-tiny")(_loader("tiny", "synthetic-tiny"))
