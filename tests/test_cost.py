"""Memory-per-image / FPS measurement (CSA Table 6) and its report."""

from __future__ import annotations

import torch
from torch import nn

from reid_core.engine.cost import measure_model_cost
from reid_core.models import LOGITS, ModelOutput
from reid_core.results.report import cost_frame, render_cost_report
from reid_core.results.paper_tables import load_table
from reid_core.utils.device import resolve_device


class _KnownCost(nn.Module):
    """Per image: one temporary of ``floats`` float32 values (4 * floats bytes)."""

    def __init__(self, floats: int) -> None:
        super().__init__()
        self.floats = floats
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        big = x.new_ones(x.shape[0], self.floats)  # (B, floats): the only per-image memory
        feat = big.sum(dim=1, keepdim=True) * self.w
        return ModelOutput({"before_bn": feat, "after_bn": feat},
                           {LOGITS: feat} if self.training else {})


def test_marginal_memory_per_image_matches_a_known_temporary():
    torch.set_num_threads(1)
    floats = 2 ** 20  # 4 MiB per image
    cost = measure_model_cost(_KnownCost(floats), (8, 4), resolve_device("cpu"),
                              batch_size=2, repeats=2, memory_batch=2)
    mem = cost["memory_per_image_mb"]
    assert abs(mem["inference"] - 4.0) < 0.2, mem
    assert abs(mem["train"] - 4.0) < 0.2, mem
    assert cost["fps"]["best"] >= cost["fps"]["median"] > 0
    assert len(cost["fps"]["times_s"]) == 2


def _record(config: str, train: float, infer: float, fps: float) -> dict:
    return {"config_name": config, "run_id": config, "dataset": {"name": "n/a"},
            "measurements": {"memory_per_image_mb": {"train": train, "inference": infer},
                             "fps": {"best": fps * 1.1, "median": fps, "times_s": [1.0]},
                             "memory_method": "m", "batch_size": 8, "input_size": [384, 128],
                             "device": "cpu", "threads": 2, "repeats": 5}}


def test_cost_report_ratios_and_markdown(tmp_path):
    table = load_table("csa_table6")
    records = [_record("csa_pcb", 100.0, 10.0, 20.0), _record("csa_pcb_sa", 250.0, 30.0, 10.0),
               _record("csa_pcb_sa", 270.0, 30.0, 12.0)]
    rows = {e["config"]: e for e in cost_frame(table, records)}
    assert rows["csa_pcb"]["memory_train_ratio"] == 1.0
    assert rows["csa_pcb_sa"]["memory_train_ratio"] == 2.6  # median of 250, 270 over 100
    assert rows["csa_pcb_sa"]["fps_median_ratio"] == 0.55
    assert abs(rows["csa_pcb_sa"]["pub_memory_ratio"] - 304.33 / 125.64) < 1e-9
    assert rows["csa_pcb_csa_g8"]["n"] == 0 and rows["csa_pcb_csa_g8"].get("memory_train") is None
    md = render_cost_report("csa_table6", records, tmp_path).read_text()
    assert "| PCB + SA (Group Num = 1) | 304.33 | 242% | 260.0 | 260% |" in md
    assert "not run" in md
    assert (tmp_path / "csa_table6_ratios.png").read_bytes()[:4] == b"\x89PNG"
