"""Figures: CMC curves and ranked-list grids (hand-made inputs, pixels read back), and the
``visualize`` command on a tiny real run (checkpoint present, missing, unknown run id)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from reid_core.cli import main as cli_main
from reid_core.config import config_from_dict
from reid_core.app.experiment import run_experiment
from reid_core.app.inspect_run import MissingCheckpointError, RunNotFoundError, load_run, resolve_run
from reid_core.metrics.rank import evaluate_rank
from reid_core.results.visualize import (
    GREEN, NEUTRAL, RED, cmc_label, plot_cmc, ranked_list_grid, select_queries)

# --------------------------------------------------------------------------- hand-made data

# Gallery (pid, cam). For query 0 (pid 1, cam 0): g0 is junk (same pid, same cam) and g1 is
# junk (pid -1) although both are the nearest; g2 is its true match. Query 1 (pid 2, cam 0)
# finds its match g3 only at rank 3. Query 2 (pid 3, cam 0) has only a same-camera image
# (g5): no true match, so the evaluation -- and the grid -- skip it.
G_IDS = [(1, 0), (-1, 1), (1, 1), (2, 1), (5, 1), (3, 0), (0, 2)]
Q_IDS = [(1, 0), (2, 0), (3, 0)]
DIST = np.array([
    #  g0    g1    g2   g3   g4   g5   g6
    [0.00, 0.05, 0.10, 0.2, 0.2, 0.5, 0.4],  # g3/g4 tie: lower gallery index first
    [0.40, 0.00, 0.50, 0.3, 0.1, 0.6, 0.2],
    [0.10, 0.20, 0.30, 0.4, 0.5, 0.0, 0.6],
], dtype=np.float32)
# Colours of the hand-made images: far from the border colours, distinct per image.
Q_COLOURS = [(30, 30, 200), (200, 200, 30), (30, 200, 200)]
G_COLOURS = [(60, 0, 120), (120, 60, 0), (0, 90, 255), (255, 140, 0), (90, 90, 255),
             (255, 0, 255), (0, 0, 60)]


def _images(tmp_path, colours, prefix):
    paths = []
    for i, colour in enumerate(colours):
        p = tmp_path / f"{prefix}{i}.png"
        Image.new("RGB", (16, 32), colour).save(p)  # person-crop aspect (w 16, h 32)
        paths.append(str(p))
    return paths


@pytest.fixture
def handmade(tmp_path):
    q = [(p, pid, cam) for p, (pid, cam) in zip(_images(tmp_path, Q_COLOURS, "q"), Q_IDS)]
    g = [(p, pid, cam) for p, (pid, cam) in zip(_images(tmp_path, G_COLOURS, "g"), G_IDS)]
    ids = lambda items, k: np.array([it[k] for it in items])  # noqa: E731
    return q, g, ids(q, 1), ids(g, 1), ids(q, 2), ids(g, 2)


def _grid(handmade, path, **kw):
    q, g, qp, gp, qc, gc = handmade
    return ranked_list_grid(q, g, DIST, qp, gp, qc, gc, path, **kw)


def _close(pixel, colour, tol=2):
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour))


# --------------------------------------------------------------------------- CMC


def test_plot_cmc_writes_png_of_fixed_size_atomically(tmp_path):
    curves = {"run-a": [50, 60, 70, 75, 80, 82, 85, 88, 89, 90, 91, 92],
              "run-b": np.linspace(20, 70, 50).tolist()}
    path = plot_cmc(curves, tmp_path / "figs" / "cmc.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (640, 480)
        img = img.convert("RGB")
        assert len(img.getcolors(maxcolors=100_000)) > 20  # drawn on, not a blank canvas
    assert [p.name for p in path.parent.iterdir()] == ["cmc.png"]  # no temp file left
    assert cmc_label("run-a", curves["run-a"]) == "run-a (R1 50.0 · R5 80.0 · R10 90.0)"
    assert cmc_label("short", [10, 20]) == "short (R1 10.0)"


def test_plot_cmc_rejects_bad_curves(tmp_path):
    with pytest.raises(ValueError, match="no curves"):
        plot_cmc({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'bad' decreases"):
        plot_cmc({"ok": [1, 2], "bad": [50, 40]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"percentages in \[0, 100\]"):
        plot_cmc({"frac": [0.5, 120]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- ranked lists


def test_junk_is_excluded_and_borders_follow_the_labels(tmp_path, handmade):
    grid = _grid(handmade, tmp_path / "ranked.png", top_k=4, num_queries=8)
    # Query 2 has no true match: skipped. Junk g0 (same pid+cam) and g1 (pid -1) never shown.
    assert [r.query for r in grid.rows] == [0, 1]
    assert grid.rows[0].gallery == [2, 3, 4, 6]  # tie g3/g4 at 0.2 -> lower index first
    assert grid.rows[0].correct == [True, False, False, False]
    # g0 (pid 1, cam 0) is not junk for query 1 (pid 2): it is an ordinary negative.
    assert grid.rows[1].gallery == [4, 6, 3, 0]
    assert grid.rows[1].correct == [False, False, True, False]
    assert grid.rows[0].distances == pytest.approx([0.1, 0.2, 0.2, 0.4])
    assert grid.rows[0].ap == pytest.approx(1.0) and grid.rows[1].ap == pytest.approx(1 / 3)

    with Image.open(grid.path) as img:
        assert img.format == "PNG" and img.size == grid.size
        img = img.convert("RGB")
    for row, boxes in zip(grid.rows, grid.boxes):
        colours = [NEUTRAL] + [GREEN if ok else RED for ok in row.correct]
        contents = [Q_COLOURS[row.query]] + [G_COLOURS[g] for g in row.gallery]
        assert len(boxes) == 5
        for (left, top, right, bottom), border, content in zip(boxes, colours, contents):
            mid_y = (top + bottom) // 2
            # Left and top border strips, and the image in the middle of the cell.
            assert img.getpixel((left + grid.border // 2, mid_y)) == border
            assert img.getpixel(((left + right) // 2, top + 1)) == border
            assert _close(img.getpixel(((left + right) // 2, mid_y)), content)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ranked")) == [
        "ranked.png"]


def test_grid_size_grows_by_one_cell_per_rank_and_one_row_per_query(tmp_path, handmade):
    small = _grid(handmade, tmp_path / "a.png", top_k=3, num_queries=1)
    wide = _grid(handmade, tmp_path / "b.png", top_k=4, num_queries=1)
    tall = _grid(handmade, tmp_path / "c.png", top_k=3, num_queries=2)
    step = small.boxes[0][2][0] - small.boxes[0][1][0]
    row_step = tall.boxes[1][0][1] - tall.boxes[0][0][1]
    assert wide.size[0] == small.size[0] + step  # (the caption re-wraps: height may change)
    assert tall.size == (small.size[0], small.size[1] + row_step)
    for g in (small, wide, tall):
        with Image.open(g.path) as img:
            assert img.size == g.size
        right = max(box[2] for row in g.boxes for box in row)
        bottom = max(box[3] for row in g.boxes for box in row)
        assert right < g.size[0] and bottom < g.size[1]  # every cell inside the image


def test_select_modes(handmade):
    _, _, qp, gp, qc, gc = handmade
    sel = lambda mode, n=8, seed=0: select_queries(  # noqa: E731
        DIST, qp, gp, qc, gc, n, select=mode, seed=seed)
    assert sel("first") == [0, 1]
    assert sel("worst") == [1, 0]  # AP 1/3 before AP 1
    assert sel("best") == [0, 1]
    assert sel("failures") == [1]  # query 0's rank-1 is right (after junk removal)
    assert sel("random", 1, seed=3) == sel("random", 1, seed=3)
    assert set(sel("random")) == {0, 1}  # never the query without a true match
    with pytest.raises(ValueError, match="valid: first, random, worst"):
        sel("median")
    # The APs the selection uses are the metric's own: their mean is evaluate_rank's mAP.
    _, m_ap = evaluate_rank(DIST, qp, gp, qc, gc, max_rank=5)
    assert m_ap == pytest.approx((1 + 1 / 3) / 2)


def test_grid_errors_are_clear(tmp_path, handmade):
    q, g, qp, gp, qc, gc = handmade
    with pytest.raises(ValueError, match=r"g_pids has shape \(6,\), expected \(7,\)"):
        ranked_list_grid(q, g, DIST, qp, gp[:6], qc, gc, tmp_path / "x.png")
    missing = [("/nowhere/q0.png", 1, 0)] + q[1:]
    with pytest.raises(FileNotFoundError, match="/nowhere/q0.png"):
        ranked_list_grid(missing, g, DIST, qp, gp, qc, gc, tmp_path / "x.png")
    none_valid = np.full_like(gc, 0)  # every gallery image in camera 0, like every query
    with pytest.raises(ValueError, match="no query has a true match"):
        ranked_list_grid(q, g, DIST, qp, gp, qc, none_valid, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- tiny real run

TINY = {
    "name": "tinyviz",
    "seed": 5,
    "data": {"dataset": "synthetic-tiny", "height": 64, "width": 32, "batch_size": 16,
             "num_instances": 4},
    "model": {"backbone": "resnet18"},
    "optim": {"epochs": 1, "warmup_epochs": 1, "milestones": [2]},
    "eval": {"ranks": [1, 5], "features": ["after_bn", "before_bn"]},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, synthetic_cache):
    """A finished 1-epoch run: (out dir, record)."""
    out = tmp_path_factory.mktemp("viz-run")
    record = run_experiment(config_from_dict(json.loads(json.dumps(TINY))),
                            data_root=synthetic_cache, out=out, device="cpu")
    return out, record


@pytest.fixture
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "500")  # rich would wrap long paths at 80 columns


def _output(capsys):
    return "".join(capsys.readouterr().out.splitlines())


def test_visualize_cli_on_a_tiny_run(tmp_path, tiny_run, capsys, wide_console):
    out, record = tiny_run
    run_id, figs = record["run_id"], tmp_path / "figs"
    rc = cli_main(["visualize", "tinyviz-seed5", "--runs", str(out / "runs"), "--out",
                   str(figs), "--device", "cpu", "--queries", "4", "--top-k", "5",
                   "--select", "worst"])
    text = _output(capsys)
    assert rc == 0, text
    for name in (f"{run_id}_cmc.png", f"{run_id}_ranked.png"):
        assert str(figs / name) in text
        with Image.open(figs / name) as img:
            assert img.format == "PNG"
    assert "note" not in text  # recomputed metrics equal the record's


def test_reloaded_run_reproduces_the_recorded_metrics(tmp_path, tiny_run):
    out, record = tiny_run
    view = load_run(resolve_run(record["run_id"], out / "runs"), device="cpu")
    assert view.cmc_source == "checkpoint" and view.notes == []
    for feat in ("after_bn", "before_bn"):
        cmc = view.cmc[feat]
        assert len(cmc) == 50
        assert cmc[0] == pytest.approx(record["final"][feat]["R1"], abs=1e-3)
        assert cmc[4] == pytest.approx(record["final"][feat]["R5"], abs=1e-3)
    r = view.require_retrieval()
    assert r.feature == record["primary_feature"]
    assert r.distmat.shape == (len(r.query), len(r.gallery))
    grid = ranked_list_grid(r.query, r.gallery, r.distmat, r.q_pids, r.g_pids, r.q_camids,
                            r.g_camids, tmp_path / "g.png", top_k=6, num_queries=len(r.query))
    for row in grid.rows:
        qp, qc = r.q_pids[row.query], r.q_camids[row.query]
        for g, ok in zip(row.gallery, row.correct):
            assert ok == (r.g_pids[g] == qp)
            assert r.g_pids[g] != -1 and not (r.g_pids[g] == qp and r.g_camids[g] == qc)
        assert row.distances == sorted(row.distances)


def _copy_record(tiny_run, dest, *, cmc=None, run_id=None):
    """The tiny run's record in another results dir, without its checkpoint."""
    _, record = tiny_run
    rec = json.loads(json.dumps(record))
    if run_id:
        rec["run_id"] = run_id
    for feat in rec["final"]:  # cmc=None: a record of before the evaluator stored curves
        if cmc is None:
            rec["final"][feat].pop("CMC", None)
        else:
            rec["final"][feat]["CMC"] = cmc
    path = dest / "runs" / f"{rec['run_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path, rec["run_id"]


def test_records_store_the_cmc_curve(tiny_run):
    for vals in tiny_run[1]["final"].values():
        assert len(vals["CMC"]) == 50 and vals["CMC"] == sorted(vals["CMC"])
        assert vals["CMC"][0] == pytest.approx(vals["R1"], abs=0.01)


def test_missing_checkpoint_is_explained(tmp_path, tiny_run, capsys, wide_console):
    path, run_id = _copy_record(tiny_run, tmp_path / "elsewhere")
    expected = tmp_path / "elsewhere" / "checkpoints" / run_id / "final.pt"
    view = load_run(path, device="cpu")
    with pytest.raises(MissingCheckpointError, match="reid_core train"):
        view.require_retrieval()

    args = ["visualize", str(path), "--out", str(tmp_path / "figs")]
    assert cli_main(args) == 2
    text = _output(capsys)
    assert f"no checkpoint at {expected}" in text and "python -m reid_core train" in text
    assert "holds no CMC curve" in text  # and nothing to draw from the record either
    assert not (tmp_path / "figs").exists()


def test_record_cmc_is_drawn_without_checkpoint(tmp_path, tiny_run, capsys, wide_console):
    out, record = tiny_run
    cmc = np.linspace(30, 90, 50).round(4).tolist()
    path, run_id = _copy_record(tiny_run, tmp_path / "elsewhere", cmc=cmc, run_id="other-run")
    figs = tmp_path / "figs"

    # Ranked lists asked for: the CMC is still drawn, then the missing checkpoint is reported.
    assert cli_main(["visualize", "other-run", "--runs", str(path.parent), "--out",
                     str(figs)]) == 2
    text = _output(capsys)
    assert (figs / "other-run_cmc.png").is_file() and not (figs / "other-run_ranked.png").exists()
    assert "no checkpoint at" in text and "CMC from the record" in text

    # --cmc-only with two runs: per-run figures plus the combined one, exit 0.
    assert cli_main(["visualize", str(path), str(out / "runs" / f"{record['run_id']}.json"),
                     "--out", str(figs), "--cmc-only", "--device", "cpu"]) == 0
    text = _output(capsys)
    assert str(figs / "cmc_combined.png") in text
    with Image.open(figs / "cmc_combined.png") as img:
        assert img.size == (640, 480)
    view = load_run(path, ranked=False)
    assert view.cmc_source == "record" and view.require_cmc() == cmc


def test_unknown_run_lists_close_matches(tmp_path, tiny_run, capsys, wide_console):
    out, record = tiny_run
    runs = tmp_path / "runs"
    shutil.copytree(out / "runs", runs)
    assert cli_main(["visualize", "tinyvis-seed5", "--runs", str(runs)]) == 2
    text = _output(capsys)
    assert "unknown run 'tinyvis-seed5'" in text and f"close matches: {record['run_id']}" in text
    with pytest.raises(RunNotFoundError, match="no run records in"):
        resolve_run("anything", tmp_path / "empty")
    with pytest.raises(RunNotFoundError, match="run record not found"):
        resolve_run(str(tmp_path / "gone.json"))


def test_evaluate_cli_on_a_partial_set(tiny_run, synthetic_cache, capsys, wide_console):
    """A run trained on synthetic-tiny evaluated on its Partial-REID-layout set (DAAF Table 3
    style), checked against features extracted by hand from the loaded checkpoint."""
    import torch
    import torch.nn.functional as F

    from reid_core.data import build_dataset
    from reid_core.data.image_dataset import ImageDataset
    from reid_core.data.transforms import build_test_transform
    from reid_core.engine.features import extract_features
    from reid_core.metrics import compute_distance_matrix
    from reid_core.models import build_model
    from reid_core.utils.device import resolve_device

    out, record = tiny_run
    rc = cli_main(["evaluate", "tinyviz-seed5", "--runs", str(out / "runs"), "--dataset",
                   "synthetic-tiny-partial-reid", "--data-root", str(synthetic_cache),
                   "--ranks", "1", "3", "--device", "cpu"])
    assert rc == 0, _output(capsys)
    path = out / "evaluations" / f"{record['run_id']}--on--synthetic-tiny-partial-reid.json"
    ev = json.loads(path.read_text())
    assert ev["trained_on"] == "synthetic-tiny" and set(ev["final"]["after_bn"]) >= {"R1", "R3"}

    cfg = config_from_dict(record["config"])
    model = build_model(cfg.model, record["dataset"]["splits"]["train"]["ids"], (64, 32))
    model.load_state_dict(torch.load(out / "checkpoints" / record["run_id"] / "final.pt",
                                     weights_only=True)["model"])
    data = build_dataset("synthetic-tiny-partial-reid", synthetic_cache)
    tf = build_test_transform(cfg.data)
    feats = [extract_features(model, ImageDataset(items, tf), device=resolve_device("cpu"))
             for items in (data.query, data.gallery)]
    (qf, qp, qc), (gf, gp, gc) = feats
    dist = compute_distance_matrix(F.normalize(qf["after_bn"], dim=1),
                                   F.normalize(gf["after_bn"], dim=1), "euclidean")
    cmc, m_ap = evaluate_rank(dist.numpy(), qp, gp, qc, gc, max_rank=3)
    assert ev["final"]["after_bn"]["R3"] == pytest.approx(100 * cmc[2], abs=1e-3)
    assert ev["final"]["after_bn"]["mAP"] == pytest.approx(100 * m_ap, abs=1e-3)


def test_evaluate_cli_overrides_query_mode_and_rerank(tiny_run, synthetic_cache, capsys,
                                                     wide_console):
    out, record = tiny_run
    base = ["evaluate", "tinyviz-seed5", "--runs", str(out / "runs"), "--dataset",
            "synthetic-tiny", "--data-root", str(synthetic_cache), "--device", "cpu"]
    assert cli_main(base) == 0, _output(capsys)
    assert cli_main([*base, "--query-mode", "multi_max", "--rerank"]) == 0, _output(capsys)
    plain = json.loads((out / "evaluations" /
                        f"{record['run_id']}--on--synthetic-tiny.json").read_text())
    tagged = json.loads((out / "evaluations" /
                         f"{record['run_id']}--on--synthetic-tiny--multi_max--rerank.json")
                        .read_text())
    assert plain["final"] == record["final"]  # same data, same settings: the run's own numbers
    assert tagged["eval"]["query_mode"] == "multi_max" and tagged["eval"]["rerank"] is True
    assert tagged["final"]["after_bn"]["mAP"] != plain["final"]["after_bn"]["mAP"]
