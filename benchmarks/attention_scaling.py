"""How time and memory of one attention module grow with the feature map: SA, SA via SDPA, CSA
and RGA-S, at C = 256, as H x W grows from 16x8 to 128x64 (N = 128 to 8,192 positions).

    python benchmarks/attention_scaling.py [--device cpu|cuda] [--out results/benchmarks]

Setting (all options below have flags):

* C = 256: the width of ResNet-50's stage 1, the high-resolution stage where CSA is meant to
  make self-attention affordable (the paper puts CSA after stages 1-3). 96x32 is that stage's
  map for PCB's 384x128 input; 128x64 that of a 512x256 input.
* Batch 8, inference: eval mode, ``torch.no_grad`` (no saved activations; training memory is
  larger, SA's in particular, as the N x N softmax is kept for the backward pass).
* Each module at its registry defaults: ``sa`` (C' = C/8), ``sa_sdpa`` (same, via
  ``scaled_dot_product_attention``), ``csa`` (2 groups x 32 base maps), ``rga_s`` (s1 = s2 = 8).
* Time: ``--warmup`` untimed and ``--repeats`` timed forwards; min and median reported. The
  min (the call least disturbed by other processes) is what the slopes, ratios and plot use.
  Warm-up is dropped once the previous size's forward took over a second: it only absorbs
  one-off costs of milliseconds (lazy initialisation, allocator growth).
  Memory: the peak tensor memory of one further forward (:mod:`reid_core.utils.memory`: on CPU,
  torch's allocator, measured with the profiler; not the process RSS).
* Sizes are run in increasing order per module; a size is skipped, with a printed note, when
  the module's peak memory extrapolated as N^2 from the previous size exceeds ``--memory-cap-gb``
  or its forward time, extrapolated with the growth exponent seen from N = 512 on (clamped to
  2..3), exceeds ``--time-cap-s`` (and so are the larger sizes of that module).

Writes ``attention_scaling.csv`` (one row per module and size), ``attention_scaling.md`` (tables
and a reading generated from the numbers) and ``attention_scaling.png`` (log-log time and memory
against N with N and N^2 reference slopes) into ``--out``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import statistics
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from reid_core.models.attention import build_attention
from reid_core.utils.io import atomic_save, atomic_write_text
from reid_core.utils.memory import peak_memory_bytes, time_calls

SIZES = [(16, 8), (24, 8), (32, 16), (48, 16), (64, 32), (96, 32), (128, 64)]
MODULES = ("sa", "sa_sdpa", "csa", "rga_s")
MIB = 2**20
FIT_FROM_N = 512  # slopes are fitted from here on: below, fixed per-call costs dominate


@dataclass
class Row:
    module: str
    height: int
    width: int
    positions: int
    batch: int
    channels: int
    device: str
    threads: int
    status: str = "ok"  # "ok" or "skipped"
    note: str = ""
    warmup: int = 0
    time_min_ms: float | None = None
    time_median_ms: float | None = None
    peak_memory_mib: float | None = None
    times_ms: list[float] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--modules", nargs="+", default=list(MODULES), choices=MODULES)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (0: torch's default)")
    p.add_argument("--memory-cap-gb", type=float, default=6.0,
                   help="skip a size whose extrapolated peak memory exceeds this (GiB)")
    p.add_argument("--time-cap-s", type=float, default=30.0,
                   help="skip a size whose extrapolated single forward exceeds this (s)")
    return p.parse_args(argv)


def skip_reason(row: Row, measured: list[Row], memory_cap: float, time_cap: float) -> str:
    """Why ``row``'s size should not be run, extrapolating from the sizes measured so far."""
    if not measured or measured[-1].peak_memory_mib is None or not measured[-1].time_min_ms:
        return ""
    last = measured[-1]
    growth = row.positions / last.positions
    memory = last.peak_memory_mib * growth**2 / 1024  # GiB; N^2 bounds all four modules
    if memory > memory_cap:
        return (f"extrapolated peak {memory:.1f} GiB > --memory-cap-gb {memory_cap:g} "
                f"(N^2 from {last.height}x{last.width})")
    # The growth exponent over a long baseline (N >= 512, where per-call overheads no longer
    # dominate): two neighbouring sizes alone are at the mercy of one disturbed measurement.
    exponent = 3.0
    first = next((r for r in measured if r.positions >= FIT_FROM_N and r.time_min_ms), None)
    if first is not None and first is not last:
        observed = math.log(last.time_min_ms / first.time_min_ms) / math.log(
            last.positions / first.positions)
        exponent = min(3.0, max(2.0, observed))  # never assume better than N^2
    seconds = last.time_min_ms / 1000 * growth**exponent
    if seconds > time_cap:
        return (f"extrapolated forward {seconds:.2g} s > --time-cap-s {time_cap:g} "
                f"(N^{exponent:.1f} from {last.height}x{last.width})")
    return ""


def measure(row: Row, device: torch.device, warmup: int, repeats: int) -> None:
    torch.manual_seed(0)
    module = build_attention(row.module, row.channels, row.height, row.width).to(device).eval()
    x = torch.randn(row.batch, row.channels, row.height, row.width, device=device)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    row.warmup = warmup
    times = time_calls(forward, warmup=warmup, repeats=repeats, device=device)
    row.times_ms = [round(t * 1000, 3) for t in times]
    row.time_min_ms = round(min(times) * 1000, 3)
    row.time_median_ms = round(statistics.median(times) * 1000, 3)
    row.peak_memory_mib = round(peak_memory_bytes(forward, device) / MIB, 3)


def run_module(name: str, args: argparse.Namespace, device: torch.device,
               console) -> Iterator[Row]:
    """Every size for one module, smallest first, skipping what would exceed the caps."""
    rows: list[Row] = []
    measured: list[Row] = []
    for height, width in SIZES:
        row = Row(name, height, width, height * width, args.batch, args.channels, str(device),
                  torch.get_num_threads())
        skipped = next((r for r in rows if r.status != "ok"), None)
        reason = (f"a smaller size ({skipped.height}x{skipped.width}) was skipped" if skipped
                  else skip_reason(row, measured, args.memory_cap_gb, args.time_cap_s))
        if not reason:
            slow = bool(measured) and (measured[-1].time_min_ms or 0) > 1000
            try:
                measure(row, device, 0 if slow else args.warmup, args.repeats)
                measured.append(row)
            except (torch.OutOfMemoryError, RuntimeError) as e:  # CPU OOM is a RuntimeError
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                reason = f"failed: {str(e).splitlines()[0][:120]}"
        if reason:
            row.status, row.note = "skipped", reason
            console.print(f"[yellow]skip {name} at {height}x{width}: {reason}")
        else:
            console.print(f"{name:8s} {height:3d}x{width:<3d} N={row.positions:<5d} min "
                          f"{row.time_min_ms:9.1f} ms, median {row.time_median_ms:9.1f} ms, "
                          f"peak {row.peak_memory_mib:7.1f} MiB")
        rows.append(row)
        yield row


def run(args: argparse.Namespace) -> list[Row]:
    from rich.progress import Progress

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda was requested but torch sees no CUDA device")
    rows: list[Row] = []
    with Progress() as progress:
        task = progress.add_task("attention scaling", total=len(args.modules) * len(SIZES))
        for name in args.modules:
            for row in run_module(name, args, device, progress.console):
                rows.append(row)
                progress.update(task, advance=1, description=f"{name} {row.height}x{row.width}")
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def loglog_slope(rows: list[Row], key: str) -> float | None:
    """Least-squares slope of log(value) on log(N) over the measured sizes with N >= 512."""
    points = [(math.log(r.positions), math.log(getattr(r, key))) for r in rows
              if r.status == "ok" and r.positions >= FIT_FROM_N and getattr(r, key)]
    if len(points) < 2:
        return None
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx


def describe_growth(slope: float | None) -> str:
    if slope is None:
        return "too few sizes to tell"
    if slope > 2.3:
        return f"slope {slope:.2f}: steeper than N^2"
    if slope >= 1.7:
        return f"slope {slope:.2f}: about N^2"
    if slope <= 1.3:
        return f"slope {slope:.2f}: about linear in N"
    return f"slope {slope:.2f}: between N and N^2"


def fmt(value: float | None, digits: int = 1) -> str:
    return "skipped" if value is None else f"{value:,.{digits}f}"


def markdown(rows: list[Row], args: argparse.Namespace, command: str) -> str:
    by_module = {m: [r for r in rows if r.module == m] for m in args.modules}
    threads = rows[0].threads if rows else torch.get_num_threads()
    lines = [
        "# Attention scaling: time and memory against the number of positions N",
        "",
        f"Command: `{command}`",
        "",
        f"Device {args.device} ({platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {threads} intra-op thread(s)); batch {args.batch}, "
        f"C = {args.channels}; inference (eval, no_grad); {args.warmup} warm-up (none once a "
        f"forward takes > 1 s) + {args.repeats} timed forwards; memory = peak tensor memory of "
        "one forward (`reid_core.utils.memory.peak_memory_bytes`: torch's allocator, not "
        "RSS). Modules at their registry defaults (csa: 2 groups x 32 base maps; sa: C' = C/8).",
        "",
        "## Forward time, ms: min (median in brackets)",
        "",
        "| H x W | N | " + " | ".join(args.modules) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in args.modules) + " |",
    ]
    for i, (h, w) in enumerate(SIZES):
        cells = []
        for m in args.modules:
            r = by_module[m][i]
            cells.append("skipped" if r.status != "ok" else
                         f"{fmt(r.time_min_ms)} ({fmt(r.time_median_ms)})")
        lines.append(f"| {h}x{w} | {h * w:,} | " + " | ".join(cells) + " |")
    lines += ["", "## Peak tensor memory, MiB", "",
              "| H x W | N | " + " | ".join(args.modules) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in args.modules) + " |"]
    for i, (h, w) in enumerate(SIZES):
        cells = [fmt(by_module[m][i].peak_memory_mib) for m in args.modules]
        lines.append(f"| {h}x{w} | {h * w:,} | " + " | ".join(cells) + " |")
    skipped = [r for r in rows if r.status != "ok"]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(
            f"{r.module} {r.height}x{r.width} ({r.note})" for r in skipped) + "."]

    lines += ["", "## Reading (generated from the numbers above)", "",
              f"Log-log slopes fitted over the measured sizes with N >= {FIT_FROM_N} "
              "(1 = linear in N, 2 = quadratic):", ""]
    for m in args.modules:
        memory = describe_growth(loglog_slope(by_module[m], "peak_memory_mib"))
        time = describe_growth(loglog_slope(by_module[m], "time_min_ms"))
        lines.append(f"* {m}: memory {memory}; time {time}.")
    lines += ["", *sdpa_reading(by_module), *csa_reading(by_module, args)]
    lines += ["", "Timings: if other processes share the machine, trust the min column and "
              "the slopes more than single medians.", ""]
    return "\n".join(lines)


def largest_common(a: list[Row], b: list[Row]) -> tuple[Row, Row] | None:
    pairs = [(x, y) for x, y in zip(a, b) if x.status == "ok" and y.status == "ok"]
    return pairs[-1] if pairs else None


def sdpa_reading(by_module: dict[str, list[Row]]) -> list[str]:
    if "sa" not in by_module or "sa_sdpa" not in by_module:
        return []
    pair = largest_common(by_module["sa"], by_module["sa_sdpa"])
    if pair is None:
        return []
    sa, sdpa = pair
    memory_ratio = sdpa.peak_memory_mib / sa.peak_memory_mib
    time_ratio = sdpa.time_min_ms / sa.time_min_ms
    slope = loglog_slope(by_module["sa_sdpa"], "peak_memory_mib")
    removed = memory_ratio < 0.5 and slope is not None and slope <= 1.3
    verdict = ("removes SA's memory penalty on this device: its memory grows about linearly"
               if removed else "does not remove SA's memory penalty on this device")
    return [f"SDPA: at the largest size both ran ({sa.height}x{sa.width}, N = {sa.positions:,}),"
            f" sa_sdpa needs {memory_ratio:.1%} of sa's peak memory and {time_ratio:.2f}x its "
            f"time, so the fused kernel {verdict}. Its time: "
            f"{describe_growth(loglog_slope(by_module['sa_sdpa'], 'time_min_ms'))} -- a fused "
            "kernel saves memory, not multiply-adds (here it even does more, since q and k are "
            "zero-padded from C' = C/8 to C channels so that the flash kernel applies).", ""]


def csa_reading(by_module: dict[str, list[Row]], args: argparse.Namespace) -> list[str]:
    if "csa" not in by_module:
        return []
    ok = [r for r in by_module["csa"] if r.status == "ok"]
    if not ok:
        return []
    per_position = [r.peak_memory_mib * MIB / (r.batch * r.positions) / 1024 for r in ok]
    out = [f"CSA: peak memory per image and position is {min(per_position):.2f}-"
           f"{max(per_position):.2f} KiB over N = {ok[0].positions:,}-{ok[-1].positions:,} "
           f"(O(N (C + G D)) with C = {args.channels}, G D = 64 predicts a constant)."]
    if "sa" in by_module:
        pair = largest_common(by_module["sa"], by_module["csa"])
        if pair is not None:
            sa, csa = pair
            out[0] += (f" At {sa.height}x{sa.width} it needs {csa.peak_memory_mib:,.0f} MiB "
                       f"against sa's {sa.peak_memory_mib:,.0f} MiB and runs "
                       f"{sa.time_min_ms / csa.time_min_ms:.1f}x faster (min times).")
    return out


def plot(rows: list[Row], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (("time_min_ms", "forward time, min of repeats (ms)"),
              ("peak_memory_mib", "peak tensor memory (MiB)"))
    for ax, (key, label) in zip(axes, panels):
        for m in args.modules:
            ok = [r for r in rows if r.module == m and r.status == "ok"]
            ax.plot([r.positions for r in ok], [getattr(r, key) for r in ok], "o-", label=m)
        values = [(r.positions, getattr(r, key)) for r in rows if r.status == "ok"]
        if values:  # reference slopes from the data's geometric-mean height at the smallest N
            n0 = min(v[0] for v in values)
            n1 = max(v[0] for v in values)
            y0 = math.exp(sum(math.log(v[1]) for v in values) / len(values))
            for power, style in ((1, ":"), (2, "--")):
                ax.plot([n0, n1], [y0, y0 * (n1 / n0) ** power], style, color="grey",
                        label=f"∝ N{'²' if power == 2 else ''}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("positions N = H x W")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Attention modules at C = {args.channels}, batch {args.batch}, {args.device} "
                 f"({rows[0].threads if rows else '?'} thread(s)), inference")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_save(path, lambda f: f.write(buffer.getvalue()))


def write_csv(rows: list[Row], path: Path) -> None:
    import pandas as pd

    records = []
    for r in rows:
        record = asdict(r)
        record["times_ms"] = json.dumps(r.times_ms)
        records.append(record)
    atomic_write_text(path, pd.DataFrame.from_records(records).to_csv(index=False))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/attention_scaling.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    rows = run(args)
    out: Path = args.out
    write_csv(rows, out / "attention_scaling.csv")
    atomic_write_text(out / "attention_scaling.md", markdown(rows, args, command.strip()))
    plot(rows, args, out / "attention_scaling.png")
    print(f"wrote {out / 'attention_scaling.csv'}, .md and .png")


if __name__ == "__main__":
    main()
