"""Parameters and compute of every SAG Table 1 row at the paper's 160 x 64 (ResNet-50).

Usage::

    python benchmarks/sag_cost.py              # counts only (deterministic, seconds)
    python benchmarks/sag_cost.py --time 20    # also the median inference time per image

For each row of ``paper_tables/sag_table1.yaml`` the paper profile's model
(``configs/papers/sag.yaml``, 751-way Market classifier) is built and measured:

* **params**: all parameters of the model; **used**: those that receive a gradient from one
  training step (the ``truncate`` reading leaves the stages after the deepest depth unused);
* **GFLOPs**: floating-point operations of one inference forward pass per image, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2); the x2 pass of every
  SAG row sees 4x the pixels, so a row costs about 5x the baseline up to its deepest depth;
* with ``--time N``: the median over N timed forwards (batch 8, after 3 warm-up ones) per image,
  on this machine's CPU (``torch.get_num_threads()`` threads); timings vary with the machine's
  load, counts do not.

Writes ``results/benchmarks/sag_cost.md`` (atomically).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from reid_core.app.paper_configs import build_row_config, load_paper_configs
from reid_core.models import build_model
from reid_core.results.paper_tables import load_table
from reid_core.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
MARKET_CLASSES = 751


def measure(config_id: str, raw, source, timed: int) -> dict[str, float]:
    cfg = build_row_config(raw, source, config_id, "paper", 0)
    size = (cfg.data.height, cfg.data.width)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), MARKET_CLASSES, size)
    total = sum(p.numel() for p in model.parameters())
    model.train()
    out = model(torch.randn(4, 3, *size))
    out.train["logits"].sum().backward()
    used = sum(p.numel() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, *size))
    row = {"params": total, "used": used, "gflops": counter.get_total_flops() / 1e9}
    if timed:
        x = torch.randn(8, 3, *size)
        with torch.no_grad():
            for _ in range(3):
                model(x)
            times = []
            for _ in range(timed):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) / len(x))
        row["ms_per_image"] = 1000 * statistics.median(times)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--time", type=int, default=0, metavar="N", help="timed forwards (0: none)")
    p.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "sag_cost.md")
    args = p.parse_args()
    console = Console()
    source, raw = load_paper_configs("sag")
    table = load_table("sag_table1")
    rows = [(r.name, r.config) for r in table.rows if r.config]
    results = {}
    for name, cid in rows:
        results[cid] = measure(cid, raw, source, args.time)
        console.print(f"{name}: {results[cid]}")
    base = results["sag_baseline"]
    head = ["row", "config", "params (M)", "used in training (M)", "GFLOPs / image",
            "× baseline"] + (["ms / image (median)"] if args.time else [])
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] *
                                                                  (len(head) - 2)) + " |"]
    view = Table(title="SAG Table 1 rows at 160 x 64 (ResNet-50, 751 classes)")
    for col in head:
        view.add_column(col)
    for name, cid in rows:
        r = results[cid]
        cells = [name, f"`{cid}`", f"{r['params'] / 1e6:.2f}", f"{r['used'] / 1e6:.2f}",
                 f"{r['gflops']:.2f}", f"{r['gflops'] / base['gflops']:.2f}"]
        if args.time:
            cells.append(f"{r['ms_per_image']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
        view.add_row(*cells)
    console.print(view)
    threads = f", {torch.get_num_threads()} CPU threads" if args.time else ""
    text = "\n".join([
        "# SAG Table 1: parameters and compute per row",
        "",
        f"Made by `python benchmarks/sag_cost.py{' --time ' + str(args.time) if args.time else ''}`"
        f" (torch {torch.__version__}{threads}). The paper profile's model of each row",
        "(`configs/papers/sag.yaml`: ResNet-50, last stride 2, 160 x 64 input and its x2",
        "upsampling, 751-way ClassBlock), randomly initialised. *used in training*: parameters",
        "that receive a gradient in a training step (the `truncate` reading of D1-D3 leaves",
        "the later stages unused). GFLOPs: one inference forward per image, counted by",
        "`torch.utils.flop_counter` (multiply-add = 2).",
        "",
        *lines,
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    console.print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
