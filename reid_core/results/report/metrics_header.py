"""The header of a metrics report: title, caption, and the facts a reader needs to trust the
numbers (profile, records, datasets, devices, code version, environment, seeds, initialisation,
model and schedule, compute, the published protocol), with the warnings above them (smoke scale,
mixed builds, mixed data versions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reid_core.metrics.rank import AP_DEFINITIONS
from reid_core.results.paper_tables import PaperTable
from reid_core.results.report.cell_values import eval_setting, finite, record_dataset
from reid_core.results.report.comparison import Comparison, records_in_row_order
from reid_core.results.report.environment import data_mix_warning
from reid_core.results.report.markdown import counted
from reid_core.results.report.selection import DATASET_TO_COLUMN, Selection

__all__ = ["header_lines"]


def header_lines(comp: Comparison) -> list[str]:
    """Title, caption, and the facts a reader needs to trust the numbers."""
    table, sel = comp.table, comp.selection
    records = sel.records
    out = [f"# {table.paper} Table {table.table}: published vs reproduced", "",
           f"*{table.paper_title}* ({table.paper}), Table {table.table} "
           f"(`paper_tables/{table.table_id}.yaml`, source `{table.source}`).", "",
           f"> {table.caption}", ""]
    if sel.profile == "smoke" and table.rules.retrieval_metrics and records:
        out += [_smoke_warning(table, sel), ""]
    environment = comp.environment
    out += environment.warning_markdown()
    out += data_mix_warning(records_in_row_order(comp))
    run_rows = sorted({r["config_name"] for r in records})
    out += [
        f"- **Profile:** {_profile_text(sel)}",
        f"- **Records:** {len(records)} run record(s) for {len(run_rows)} of "
        f"{len(table.configs())} reproducible configs",
        f"- **Dataset(s):** {_datasets_text(comp)}",
        f"- **Device(s):** {counted(_device_text(r) for r in records)}",
        f"- **Processes:** {counted(_processes_text(r) for r in records)}",
        f"- **Code version (git commit):** {counted(_commit_text(r) for r in records)}",
        environment.bullet(),
        f"- **Finished:** {_date_range(records)}",
        f"- **Seeds:** {_seeds_text(records)} (per row under *Runs* below)",
        f"- **Initialisation:** {_init_text(records)}",
        f"- **Model and schedule:** {counted(_model_text(r) for r in records)}",
        f"- **Compute:** {_compute_text(records)}",
        f"- **Protocol (as published):** {_protocol_text(table)}",
    ]
    if table.rules.retrieval_metrics and records:
        out.append(f"- **Evaluation of the runs:** {counted(_evaluation_text(r) for r in records)}")
    if sel.evaluations:
        out.append(f"- **Further evaluations of these runs** (multi-query columns): "
                   f"{counted(_evaluation_text(r) for r in sel.evaluations)}")
    if any(c.metric == "mAP" for c in table.columns) and records:
        out.append(f"- **mAP's AP definition:** {counted(_ap_text(r) for r in records)}; "
                   f"{_published_ap_text(table, records)}")
    if table.protocol.notes:
        out.append(f"- **Protocol notes:** {table.protocol.notes}")
    return out + [""]


def _evaluation_text(record: Mapping[str, Any]) -> str:
    """How a run (or evaluation record) was evaluated: the dataset's protocol (with the CUHK03
    classic sampling), query mode, distance, flip, re-ranking."""
    setting = lambda key: eval_setting(record, key)  # noqa: E731
    # A run record names its protocol in its data identity, an evaluation record at the top.
    identity = (record.get("dataset") or {}).get("identity") or {}
    parts = []
    if "cuhk03_classic" in (identity.get("protocol"), record.get("protocol")):
        parts.append(f"CUHK03 classic, {setting('cuhk03_repeats') or '?'} single-shot gallery "
                     f"samplings per query (seeded by the run seed)")
    parts.append(f"{setting('query_mode') or 'single'} query")
    parts.append(f"`{setting('distance') or '?'}` distance")
    if setting("flip"):
        parts.append("flip TTA")
    if setting("rerank"):
        parts.append(f"k-reciprocal re-ranking (k1 {setting('rerank_k1')}, k2 "
                     f"{setting('rerank_k2')}, λ {setting('rerank_lambda')})")
    else:
        parts.append("no re-ranking")
    return " · ".join(parts)


def _ap_text(record: Mapping[str, Any]) -> str:
    """The run's ``eval.ap_mode`` and what it means."""
    mode = eval_setting(record, "ap_mode")
    if mode is None:
        return "not recorded"
    return f"`{mode}`: {AP_DEFINITIONS.get(mode, 'unknown definition')}"


def _published_ap_text(table: PaperTable, records: Sequence[Mapping[str, Any]]) -> str:
    """The published mAP's definition (``protocol.ap``), and whether the runs used another."""
    ap, note = table.protocol.ap, table.protocol.ap_note
    text = f"as published: **{ap}**" + (f" ({note})" if note else "")
    modes = {eval_setting(r, "ap_mode") for r in records} - {None}
    if ap in AP_DEFINITIONS and modes - {ap}:
        text += (f". **Some runs used another definition than the paper's:** their mAP under "
                 f"{ap} is in *mAP under both AP definitions* below, where recorded")
    return text


def _model_text(record: Mapping[str, Any]) -> str:
    """Backbone, input size, batch and epochs of a run (smoke runs shrink them: say so)."""
    config = record.get("config")
    if not isinstance(config, Mapping):
        return "not recorded"
    model, data = config.get("model", {}), config.get("data", {})
    optim = config.get("optim", {})
    return (f"{model.get('backbone', '?')}, input {data.get('height', '?')}×{data.get('width', '?')}, "
            f"batch {data.get('batch_size', '?')}, {optim.get('epochs', '?')} epochs")


def _smoke_warning(table: PaperTable, sel: Selection) -> str:
    text = (f"> **Smoke scale: absolute values are NOT comparable.** These runs used the "
            f"synthetic dataset `{sel.smoke_dataset}`, not the paper's data. Their numbers are "
            f"lined up under the paper's `{sel.compare_to}` columns only so the rows can be "
            f"read side by side; Δ (reproduced − published) is therefore not given. ")
    if table.baseline_row is None and not table.claims:
        return text + ("This table names no baseline row and its text no claim between its "
                       "rows (it compares with other methods' published numbers): at this "
                       "scale the report shows the values and judges nothing.")
    return text + ("What the report judges is the direction of each claimed difference (gains "
                   "over the baseline, claims between rows) *at this scale* (this data, model "
                   "and schedule; see the header): a claim contradicted here did not show in "
                   "this setting, which says nothing about the paper's number at its own scale.")


def _profile_text(sel: Selection) -> str:
    if not sel.records:
        return "none: no run record matches this table's configs yet"
    if sel.profile == "smoke":
        return (f"synthetic smoke (`{sel.smoke_dataset}`, compared against the published "
                f"`{sel.compare_to}` columns in direction only)")
    return "real datasets at paper scale (absolute values compared)"


def _datasets_text(comp: Comparison) -> str:
    sel = comp.selection
    if not sel.records:
        return "—"
    names = sorted({record_dataset(r) for r in sel.records})
    if sel.profile == "smoke":
        return ", ".join(f"`{n}`" for n in names) + f" → lined up with `{sel.compare_to}`"
    parts = [f"`{n}` → `{DATASET_TO_COLUMN[n]}` columns" for n in names]
    return "; ".join(parts)


def _device_text(record: Mapping[str, Any]) -> str:
    device = record.get("device")
    if not isinstance(device, Mapping):
        return "unknown"
    text = str(device.get("type", "unknown"))
    if device.get("name"):
        text += f" {device['name']}"
    if device.get("amp"):
        text += f" (AMP {device.get('amp_dtype') or ''})".replace(" )", ")")
    return text


#: How a report names a DDP run's BatchNorm mode (every mode of ``BN_MODES`` but one process).
_BN_MODE_TEXT: dict[str, str] = {"per_rank_bn_averaged": "BN averaged before eval",
                                 "sync_bn": "SyncBN"}


def _processes_text(record: Mapping[str, Any]) -> str:
    """``1 process`` (also a record from before DDP, which has no ``distributed``), or
    ``2 processes (DDP, per-rank batch 16, BN averaged before eval)``."""
    info = record.get("distributed")
    world = info.get("world_size") if isinstance(info, Mapping) else None
    if not isinstance(world, int) or world <= 1:
        return "1 process"
    mode = str(info.get("bn_mode"))
    return (f"{world} processes (DDP, per-rank batch {info.get('per_rank_batch', '?')}, "
            f"{_BN_MODE_TEXT.get(mode, mode)})")


def _commit_text(record: Mapping[str, Any]) -> str:
    versions = record.get("versions")
    commit = versions.get("git_commit") if isinstance(versions, Mapping) else None
    if not commit:
        return "unknown"
    sha = str(commit).removesuffix("-dirty")
    return f"`{sha[:12]}`" + (" with uncommitted changes" if sha != str(commit) else "")


def _date_range(records: Sequence[Mapping[str, Any]]) -> str:
    stamps = sorted(str(r["finished_at"]) for r in records if r.get("finished_at"))
    if not stamps:
        return "—"
    return stamps[0] if stamps[0] == stamps[-1] else f"{stamps[0]} … {stamps[-1]}"


def _seeds_text(records: Sequence[Mapping[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in records if isinstance(r.get("seed"), int)})
    return ", ".join(map(str, seeds)) if seeds else "—"


def _init_text(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return "—"
    random = [r for r in records if r.get("pretrained") is None]
    if len(random) == len(records):
        return (f"all {len(records)} run(s) started from **random initialisation** "
                f"(`pretrained: null`); no pretrained weights were used")
    starts = counted(str(r.get("pretrained_description") or r["pretrained"]) for r in records
                     if r.get("pretrained") is not None)
    if not random:
        return f"all runs started from pretrained weights: {starts}"
    return (f"**mixed**: {len(random)} of {len(records)} run(s) from random initialisation "
            f"(`pretrained: null`), the others from {starts}")


def _compute_text(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return "—"
    wall = sum(finite(r.get("wall_time_s")) or 0.0 for r in records)
    parts = [f"total wall time {wall / 3600:.2f} h" if wall >= 360 else
             f"total wall time {wall:.0f} s"]
    for key, label in (("host_rss_peak_mb", "peak host RSS"),
                       ("cuda_allocated_peak_mb", "peak CUDA allocated")):
        peaks = [finite(r.get("peak_memory", {}).get(key)) for r in records
                 if isinstance(r.get("peak_memory"), Mapping)]
        peaks_f = [p for p in peaks if p is not None]
        if peaks_f:
            parts.append(f"{label} {max(peaks_f) / 1024:.1f} GiB")
    return "; ".join(parts)


def _protocol_text(table: PaperTable) -> str:
    p = table.protocol
    rerank = "yes" if p.reranking is True else "no" if p.reranking is False else str(p.reranking)
    return (f"re-ranking: {rerank} · query: {p.query} · CUHK03 split: {p.cuhk03} · "
            f"CUHK03 boxes: {p.cuhk03_boxes}")
