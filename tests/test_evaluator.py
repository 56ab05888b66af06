"""The evaluation pipeline: protocol, multi-query, re-ranking and the stored metrics agree with
the metric functions applied by hand to the same features."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid_core.config import DataConfig, EvalConfig, ModelConfig
from reid_core.data import build_dataset
from reid_core.metrics import compute_distance_matrix, evaluate_rank_metrics, re_ranking
from reid_core.metrics.cuhk03_classic import evaluate_cuhk03_classic
from reid_core.metrics.evaluator import RetrievalEvaluator
from reid_core.metrics.multi_query import MultiQueryError, pool_multi_query
from reid_core.models import build_model
from reid_core.utils.device import resolve_device

DATA = DataConfig(dataset="synthetic-tiny", height=64, width=32)


@pytest.fixture(scope="module")
def setup(synthetic_cache):
    torch.manual_seed(0)
    data = build_dataset("synthetic-tiny", synthetic_cache)
    model = build_model(ModelConfig(backbone="resnet18"), 5, (64, 32)).eval()
    return data, model


def _evaluator(data, protocol="market", **eval_kw):
    ev = EvalConfig(features=["after_bn"], **eval_kw)
    return RetrievalEvaluator(data.query, data.gallery, DATA, ev, resolve_device("cpu"),
                              gt_bbox=data.extras.get("gt_bbox"), protocol=protocol, seed=3)


def _by_hand(data, model, ev: RetrievalEvaluator):
    (qf, qp, qc), (gf, gp, gc) = ev.features(model)
    q, g = F.normalize(qf["after_bn"], dim=1), F.normalize(gf["after_bn"], dim=1)
    return q, g, np.asarray(qp), np.asarray(gp), np.asarray(qc), np.asarray(gc)


def test_market_metrics_and_curve(setup):
    data, model = setup
    ev = _evaluator(data)
    got = ev(model)["after_bn"]
    q, g, qp, gp, qc, gc = _by_hand(data, model, ev)
    m = evaluate_rank_metrics(compute_distance_matrix(q, g, "euclidean"), qp, gp, qc, gc)
    assert got["R1"] == pytest.approx(100 * m.cmc[0], abs=1e-3)
    assert got["mAP"] == pytest.approx(100 * m.mAP, abs=1e-3)
    assert got["mINP"] == pytest.approx(100 * m.mINP, abs=1e-3)
    assert got["CMC"] == [round(100 * float(c), 2) for c in m.cmc[:50]]


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_multi_query_pools_gt_bbox_features(setup, mode):
    data, model = setup
    ev = _evaluator(data, query_mode=f"multi_{mode}")
    got = ev(model)["after_bn"]
    q, g, qp, gp, qc, gc = _by_hand(data, model, ev)
    mf, mp, mc = ev._extract(model, ev.gt_bbox)
    pooled = pool_multi_query(q, qp, qc, mf["after_bn"], mp, mc, mode=mode, normalize=True)
    m = evaluate_rank_metrics(compute_distance_matrix(pooled, g, "euclidean"), qp, gp, qc, gc)
    assert got["mAP"] == pytest.approx(100 * m.mAP, abs=1e-3)
    single = _evaluator(data)(model)["after_bn"]
    assert got["mAP"] != single["mAP"]  # the pooling did change the queries


def test_multi_query_without_gt_bbox_is_a_clear_error(setup):
    data, _ = setup
    with pytest.raises(MultiQueryError, match="gt_bbox"):
        RetrievalEvaluator(data.query, data.gallery, DATA, EvalConfig(query_mode="multi_mean"),
                           resolve_device("cpu"), gt_bbox=None)


def test_rerank_uses_the_eval_distance_as_base(setup):
    data, model = setup
    ev = _evaluator(data, rerank=True, rerank_k1=5, rerank_k2=3, rerank_lambda=0.4)
    got = ev(model)["after_bn"]
    q, g, qp, gp, qc, gc = _by_hand(data, model, ev)
    dist = re_ranking(q, g, 5, 3, 0.4, base="euclidean")
    m = evaluate_rank_metrics(dist, qp, gp, qc, gc)
    assert got["mAP"] == pytest.approx(100 * m.mAP, abs=1e-3)


def test_cuhk03_classic_protocol_is_seeded_cmc_and_sampled_gallery_map(setup):
    data, model = setup
    ev = _evaluator(data, protocol="cuhk03_classic")
    got = ev(model)["after_bn"]
    assert "mINP" not in got
    q, g, qp, gp, qc, gc = _by_hand(data, model, ev)
    dist = compute_distance_matrix(q, g, "euclidean")
    cmc = evaluate_cuhk03_classic(dist, qp, gp, qc, gc, max_rank=50, seed=3)
    assert got["R1"] == pytest.approx(100 * cmc[0], abs=1e-3)
    assert got == ev(model)["after_bn"]  # same seed, same sampling
    # The mAP by hand: every (query, repeat) gallery, drawn as the module docstring says,
    # holds one true match at rank r: AP 1/r (standard), 1 or 1/(2r) (trapezoid).
    dist = np.asarray(dist)
    ids = np.unique(gp)
    u = np.random.default_rng(3).random((len(qp), 10, len(ids)))
    aps = {"standard": [], "trapezoid": []}
    for i in range(len(qp)):
        for rep in range(10):
            picks = []
            for j, pid in enumerate(ids):
                pool = [k for k in range(len(gp)) if gp[k] == pid
                        and not (pid == qp[i] and gc[k] == qc[i])]
                if pool:
                    picks.append(pool[int(u[i, rep, j] * len(pool))])
            if not any(gp[k] == qp[i] for k in picks):
                break  # no image of its own identity left: a skipped query
            order = sorted(picks, key=lambda k: (dist[i, k], k))
            r = 1 + [gp[k] for k in order].index(qp[i])
            aps["standard"].append(1 / r)
            aps["trapezoid"].append(1.0 if r == 1 else 0.5 / r)
    for mode, values in aps.items():
        assert got[f"mAP_{mode}"] == pytest.approx(100 * np.mean(values), abs=1e-3)
    assert got["mAP"] == got["mAP_standard"]  # this evaluator's ap_mode


def test_unknown_protocol(setup):
    data, _ = setup
    with pytest.raises(ValueError, match="protocol"):
        _evaluator(data, protocol="viper")


def test_per_query_results_recompute_the_metrics(setup):
    """``per_query=True`` adds the per-query AP / first hit and leaves the metrics as they are."""
    data, model = setup
    ev = _evaluator(data, ranks=[1, 5])
    plain = ev(model)["after_bn"]
    got = ev(model, per_query=True)["after_bn"]
    assert "per_query" not in plain
    pq = got.pop("per_query")
    assert got == plain  # bit-identical metric values
    assert pq["queries"] == len(data.query) == len(pq["ap"]) == len(pq["first_hit"])
    hits = np.array([h for h in pq["first_hit"] if h is not None])
    assert len(hits) == pq["valid"] and pq["valid"] > 0
    for k in (1, 5):  # R-k = share of first hits at 0-based rank < k, exactly
        assert got[f"R{k}"] == round(100 * float(np.mean(hits < k)), 4)
    assert got["mAP"] == pytest.approx(100 * np.mean([a for a in pq["ap"] if a is not None]),
                                       abs=1e-4)
    # first hit by hand: rank among the non-junk gallery items of the first true match
    q, g, qp, gp, qc, gc = _by_hand(data, model, ev)
    dist = compute_distance_matrix(q, g, "euclidean").numpy()
    for i in range(0, len(qp), max(1, len(qp) // 7)):
        order = np.argsort(dist[i], kind="stable")
        keep = order[~((gp[order] == qp[i]) & (gc[order] == qc[i])) & (gp[order] != -1)]
        matches = np.flatnonzero(gp[keep] == qp[i])
        assert pq["first_hit"][i] == (int(matches[0]) if len(matches) else None)
    assert pq["query_digest"] == ev(model, per_query=True)["after_bn"]["per_query"]["query_digest"]


def test_per_query_results_mark_skipped_queries():
    from reid_core.metrics.evaluator import per_query_results, query_digest

    dist = np.array([[0.1, 0.5, 0.9], [0.3, 0.2, 0.1], [0.5, 0.4, 0.3]])
    q_pids, q_cams = np.array([1, 2, 7]), np.array([0, 0, 0])
    g_pids, g_cams = np.array([2, 1, 2]), np.array([1, 1, 1])
    m = evaluate_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    pq = per_query_results(m, q_pids, q_cams)
    # query 0 (pid 1): gallery order 0, 1, 2 -> first hit at rank 1 (0-based), AP 1/2;
    # query 1 (pid 2): order 2, 1, 0 -> hit at 0 and 2, AP (1 + 2/3) / 2; query 2: no pid 7
    assert pq["first_hit"] == [1, 0, None]
    assert pq["ap"] == [0.5, pytest.approx(0.833333, abs=1e-6), None]
    assert (pq["queries"], pq["valid"]) == (3, 2)
    assert pq["query_digest"] == query_digest(q_pids, q_cams) != query_digest(q_pids[::-1], q_cams)


def test_cuhk03_classic_has_no_per_query_results(setup):
    data, model = setup
    got = _evaluator(data, protocol="cuhk03_classic")(model, per_query=True)["after_bn"]
    assert "per_query" not in got
