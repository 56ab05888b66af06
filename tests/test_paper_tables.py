"""Published tables (paper_tables/*.yaml) and their loader (reid_core.results.paper_tables).

Covers: every file validates; the shape and flag counts of the RGA and CSA tables; a sample of
cells checked against the papers' text (shared/papers/004_*.txt RGA, 003_*.txt CSA); consistency
with the papers' prose; each kind of malformed file raising PaperTableError naming file and field.
DAAF / SAG / DSA samples live in their transcriber's own test file.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from reid_core.results.paper_tables import (
    FLAGS,
    FRAME_COLUMNS,
    PAPER_TABLES_DIR,
    PaperTable,
    PaperTableError,
    configs_for_table,
    list_tables,
    load_all_frames,
    load_table,
    load_table_frame,
)

ALL_IDS = list_tables()

# table id -> (rows, columns, clean, reconstructed, missing)
EXPECTED: dict[str, tuple[int, int, int, int, int]] = {
    "rga_table1": (10, 4, 40, 0, 0),
    "rga_table2": (13, 4, 52, 0, 0),
    "rga_table3": (10, 1, 5, 1, 4),
    "rga_table4": (4, 4, 16, 0, 0),
    "rga_table5": (17, 8, 90, 0, 46),
    "csa_table1": (9, 12, 90, 0, 18),
    "csa_table2": (4, 4, 16, 0, 0),
    "csa_table3": (4, 4, 16, 0, 0),
    "csa_table4": (4, 4, 16, 0, 0),
    "csa_table5": (4, 4, 16, 0, 0),
    "csa_table6": (6, 2, 12, 0, 0),
    "csa_table7": (6, 7, 42, 0, 0),
    "csa_table8": (6, 3, 18, 0, 0),
}

# (table id, row, dataset, metric, column note prefix or None) -> value, read from the papers' text.
# NaN means the paper prints '-' / '_' (no number).
RGA_FACTS: list[tuple[str, str, str, str, str | None, float]] = [
    ("rga_table1", "RGA-SC", "cuhk03-labeled", "mAP", None, 77.4),
    ("rga_table1", "RGA-S w/o Rel.", "market1501", "R1", None, 94.3),
    ("rga_table1", "RGA-C w/o Ori.", "cuhk03-labeled", "mAP", None, 74.9),
    ("rga_table2", "SE [18]", "cuhk03-labeled", "mAP", None, 71.9),
    ("rga_table2", "FC-S//C [23]", "market1501", "mAP", None, 85.0),
    ("rga_table3", "RGA-S", "n/a", "params", None, 28.3),
    ("rga_table4", "Symmetric", "cuhk03-labeled", "R1", None, 79.4),
    ("rga_table5", "BAT-net (ICCV19) [11]", "msmt17", "mAP", None, 56.8),
    ("rga_table5", "RGA-SC", "cuhk03-detected", "R1", None, 79.6),
    ("rga_table5", "OSNet (ICCV19) [51]", "cuhk03-labeled", "R1", None, math.nan),
]
CSA_FACTS: list[tuple[str, str, str, str, str | None, float]] = [
    ("csa_table1", "PCB + CSA", "cuhk03-detected", "mAP", None, 63.7),
    ("csa_table1", "PCB-RPP (Sun et al. 2018)", "dukemtmcreid", "R10", None, 92.5),
    ("csa_table1", "DuATM (Si et al. 2018)", "market1501", "R5", None, 97.1),
    ("csa_table2", "PCB + CSA (Map Num = 64)", "market1501", "R1", None, 93.9),
    ("csa_table3", "PCB + CSA (Group Num = 1)", "market1501", "mAP", None, 81.9),
    ("csa_table4", "PCB + CSA (Attn Stages = 2nd,3rd stages)", "dukemtmcreid", "R1", None, 84.7),
    ("csa_table5", "PCB-RPP + CSA (DS = no)", "market1501", "mAP", None, 82.7),
    ("csa_table6", "PCB + SA (Group Num = 1)", "n/a", "memory_per_image", None, 304.33),
    ("csa_table7", "RALNet + CSA", "brown", "FPR95", "train Liberty, test Notredame", 0.40),
    ("csa_table8", "HardNet + SA", "hpatches", "mAP", "Matching", 53.17),
]


@pytest.fixture(scope="module")
def frames() -> pd.DataFrame:
    """All tables as one long frame (loaded once)."""
    return load_all_frames()


def _cell(frame: pd.DataFrame, fact: tuple[str, str, str, str, str | None, float]) -> pd.Series:
    """The single frame line matching a fact's table, row, dataset, metric (and column note)."""
    table_id, row, dataset, metric, column_note, _ = fact
    hit = frame[
        (frame.table_id == table_id)
        & (frame.row == row)
        & (frame.dataset == dataset)
        & (frame.metric == metric)
    ]
    if column_note is not None:
        hit = hit[hit.column_note.fillna("").str.startswith(column_note)]
    assert len(hit) == 1, f"{fact}: {len(hit)} matching cells"
    return hit.iloc[0]


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("table_id", ALL_IDS)
def test_every_file_loads_and_validates(table_id: str) -> None:
    table = load_table(table_id)
    frame = load_table_frame(table_id)
    n_rows, n_cols = table.shape
    assert list(frame.columns) == FRAME_COLUMNS
    assert len(frame) == n_rows * n_cols
    assert list(frame.row.unique()) == [r.name for r in table.rows]  # paper's row order


def test_all_rga_and_csa_tables_present() -> None:
    assert set(EXPECTED) <= set(ALL_IDS)


@pytest.mark.parametrize("table_id", sorted(EXPECTED))
def test_shape_and_flag_counts(table_id: str) -> None:
    rows, cols, clean, recon, missing = EXPECTED[table_id]
    table = load_table(table_id)
    assert table.shape == (rows, cols)
    assert table.flag_counts() == {"clean": clean, "reconstructed": recon, "missing": missing}


@pytest.mark.parametrize("fact", RGA_FACTS + CSA_FACTS, ids=lambda f: f"{f[0]}:{f[1]}:{f[2]}:{f[3]}")
def test_sample_cells_match_paper_text(frames: pd.DataFrame, fact: tuple) -> None:
    line = _cell(frames, fact)
    expected = fact[-1]
    if math.isnan(expected):
        assert math.isnan(line.value) and line.flag == "missing"
    else:
        assert line.value == pytest.approx(expected) and line.flag == "clean"


def test_missing_cells_are_nan_and_flagged(frames: pd.DataFrame) -> None:
    assert set(frames.flag) <= set(FLAGS)
    assert (frames.value.isna() == (frames.flag == "missing")).all()


def test_reconstructed_cells_have_notes() -> None:
    for table_id in ALL_IDS:
        for row in load_table(table_id).rows:
            for cell in row.cells:
                if cell.flag == "reconstructed":
                    assert cell.note and cell.note.strip(), f"{table_id}:{row.name}"


def test_rga_table3_lost_parameter_counts_are_missing() -> None:
    table = load_table("rga_table3")
    missing = {r.name for r in table.rows if r.cells[0].flag == "missing"}
    # FC-C is reconstructed (26.4); SE-ResNet is an option's row, not the paper's.
    assert missing == {"NL", "SE", "RGA-C", "SE-ResNet"}
    assert all(r.cells[0].note for r in table.rows if r.name in missing)


def test_reference_rows_have_no_config_and_metric_rows_have_one(frames: pd.DataFrame) -> None:
    assert frames[frames.reference_only].config.isna().all()
    for table_id in ALL_IDS:
        table = load_table(table_id)
        if table.kind == "metrics":
            assert all(r.config for r in table.rows if not r.reference_only), table_id


def test_descriptor_tables_are_reference_only() -> None:
    for table_id in ("csa_table7", "csa_table8"):
        assert all(r.reference_only and r.config is None for r in load_table(table_id).rows)
        assert configs_for_table(table_id) == []


def test_configs_for_table() -> None:
    assert configs_for_table("rga_table1") == [
        "rga_baseline", "rga_s_wo_rel", "rga_s_wo_ori", "rga_s", "rga_c_wo_rel",
        "rga_c_wo_ori", "rga_c", "rga_s_par_c", "rga_cs", "rga_sc",
    ]
    assert configs_for_table("rga_table2") == [
        "rga_baseline", "rga_cbam_s", "rga_fc_s", "rga_nl", "rga_snl", "rga_s", "rga_se",
        "rga_cbam_c", "rga_fc_c", "rga_c", "rga_cbam_cs", "rga_fc_s_par_c", "rga_sc"]
    assert configs_for_table("csa_table3") == [
        "csa_pcb_csa_g1", "csa_pcb_csa", "csa_pcb_csa_g4", "csa_pcb_csa_g8",
    ]


@pytest.mark.parametrize("paper", ["RGA", "CSA"])
def test_same_config_has_same_published_numbers_across_tables(
    frames: pd.DataFrame, paper: str
) -> None:
    """A config id names one model: its (dataset, metric) cells agree in every metrics table."""
    cells = frames[(frames.paper == paper) & frames.config.notna() & (frames.unit == "%")]
    cells = cells.dropna(subset=["value"])
    spread = cells.groupby(["config", "dataset", "metric"]).value.agg(["min", "max", "count"])
    assert (spread["count"] > 1).any()  # the check does compare something
    assert (spread["max"] - spread["min"]).max() == 0.0


def _value(table_id: str, row: str, dataset: str, metric: str) -> float:
    """One clean cell's value."""
    frame = load_table_frame(table_id)
    hit = frame[(frame.row == row) & (frame.dataset == dataset) & (frame.metric == metric)]
    assert len(hit) == 1
    return float(hit.value.iloc[0])


def test_rga_cells_agree_with_prose() -> None:
    """Sec. 4.2 / 4.3: gains quoted in the text, recomputed from the transcribed cells."""
    base = _value("rga_table1", "ResNet-50", "cuhk03-labeled", "mAP")
    gains = [_value("rga_table1", r, "cuhk03-labeled", "mAP") - base for r in ("RGA-S", "RGA-C", "RGA-SC")]
    assert gains == pytest.approx([5.7, 6.6, 8.4])
    t5 = [("cuhk03-labeled", 8.4), ("cuhk03-detected", 9.0), ("market1501", 4.7), ("msmt17", 6.0)]
    for dataset, gain in t5:
        diff = _value("rga_table5", "RGA-SC", dataset, "mAP") - _value("rga_table5", "Baseline", dataset, "mAP")
        assert diff == pytest.approx(gain), dataset


def test_csa_cells_agree_with_prose() -> None:
    """PCB+CSA gains over PCB (Main Results) and the Table 6 memory/FPS ratios quoted in the text."""
    for dataset, (r1, m) in {
        "market1501": (1.4, 4.9), "dukemtmcreid": (3.8, 7.4), "cuhk03-detected": (7.5, 10.5)
    }.items():
        for metric, gain in (("R1", r1), ("mAP", m)):
            diff = _value("csa_table1", "PCB + CSA", dataset, metric) - _value(
                "csa_table1", "PCB (Sun et al. 2018)", dataset, metric
            )
            assert diff == pytest.approx(gain), (dataset, metric)
    pcb_mem = _value("csa_table6", "PCB", "n/a", "memory_per_image")
    pcb_fps = _value("csa_table6", "PCB", "n/a", "fps")
    assert round(100 * _value("csa_table6", "PCB + SA (Group Num = 1)", "n/a", "memory_per_image") / pcb_mem) == 242
    assert round(100 * _value("csa_table6", "PCB + SA (Group Num = 1)", "n/a", "fps") / pcb_fps) == 59
    assert round(100 * _value("csa_table6", "PCB + CSA (Group Num = 8)", "n/a", "memory_per_image") / pcb_mem) == 126


def test_csa_brown_mean_column_matches_cells() -> None:
    """The Mean column confirms the column order read from the damaged Test header."""
    for row in load_table("csa_table7").rows:
        values = [c.value for c in row.cells]
        assert sum(values[:6]) / 6 == pytest.approx(values[6], abs=0.0101), row.name


# --------------------------------------------------------------------------- malformed files

VALID: dict[str, Any] = {
    "paper": "RGA",
    "paper_title": "Relation-Aware Global Attention for Person Re-identification",
    "source": "004_a0c3e239d273580a.txt",
    "table": "1",
    "caption": "test table",
    "kind": "metrics",
    "protocol": {"reranking": False, "query": "single", "cuhk03": "new", "cuhk03_boxes": "labeled",
                 "ap": "trapezoid", "ap_note": "how it is known"},
    "baseline_row": "Baseline",
    "columns": [
        {"dataset": "cuhk03-labeled", "metric": "R1"},
        {"dataset": "cuhk03-labeled", "metric": "mAP"},
    ],
    "rows": [
        {"name": "Baseline", "reference_only": False, "config": "rga_baseline", "values": [73.8, 69.0]},
        {"name": "Other", "reference_only": True, "config": None, "values": [70.0, None]},
    ],
}


def _write(directory: Path, data: Any, name: str = "rga_table1.yaml") -> Path:
    """Dump ``data`` as YAML into ``directory/name``."""
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _mutated(**changes: Any) -> dict[str, Any]:
    """A deep copy of VALID with top-level keys replaced (value ... = delete)."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return data


def _with_row(index: int, **changes: Any) -> dict[str, Any]:
    """VALID with one row's keys replaced (value ... = delete)."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is ...:
            del data["rows"][index][key]
        else:
            data["rows"][index][key] = value
    return data


def _with_cell(value: Any) -> dict[str, Any]:
    """VALID with rows[0].values[1] replaced."""
    data = copy.deepcopy(VALID)
    data["rows"][0]["values"][1] = value
    return data


def test_valid_fixture_loads(tmp_path: Path) -> None:
    _write(tmp_path, VALID)
    table = load_table("rga_table1", tmp_path)
    assert isinstance(table, PaperTable)
    assert table.flag_counts() == {"clean": 3, "reconstructed": 0, "missing": 1}


def test_error_message_names_file_and_field_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "paper_tables"
    folder.mkdir()
    data = copy.deepcopy(VALID)
    data["rows"] = [copy.deepcopy(VALID["rows"][0]) | {"name": f"r{i}"} for i in range(4)]
    data["baseline_row"] = "r0"
    data["columns"].append({"dataset": "market1501", "metric": "R1"})
    for row in data["rows"]:
        row["values"] = [1.0, 2.0, 3.0]
    data["rows"][3]["values"][2] = {"value": 3.0, "flag": "clen"}
    _write(folder, data)
    with pytest.raises(PaperTableError) as info:
        load_table("rga_table1", folder)
    assert str(info.value) == (
        "paper_tables/rga_table1.yaml: rows[3].values[2]: flag 'clen' is not one of clean, reconstructed, missing"
    )


BAD_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": (_mutated(extra=1), "extra: unknown key"),
    "missing top-level key": (_mutated(caption=...), "caption: required key is missing"),
    "unknown kind": (_mutated(kind="metric"), "kind: 'metric' is not one of metrics, data"),
    "unknown paper": (_mutated(paper="XYZ"), "paper: 'XYZ' is not one of"),
    "bad protocol value": (
        _mutated(protocol={**VALID["protocol"], "query": "multiple"}),
        "protocol.query: 'multiple' is not one of",
    ),
    "unknown protocol key": (_mutated(protocol={**VALID["protocol"], "tta": True}), "protocol.tta: unknown key"),
    "unknown column key": (
        _mutated(columns=[{"dataset": "cuhk03-labeled", "metric": "R1", "split": 1}, VALID["columns"][1]]),
        "columns[0].split: unknown key",
    ),
    "unknown dataset": (
        _mutated(columns=[{"dataset": "cuhk03", "metric": "R1"}, VALID["columns"][1]]),
        "columns[0].dataset: 'cuhk03' is not one of",
    ),
    "unknown metric": (
        _mutated(columns=[{"dataset": "cuhk03-labeled", "metric": "top1"}, VALID["columns"][1]]),
        "columns[0].metric: 'top1' is not a metric",
    ),
    "data column without unit": (
        _mutated(kind="data", columns=[{"dataset": "n/a", "metric": "params"}, VALID["columns"][1]]),
        "columns[0].unit: data column 'params' needs a unit",
    ),
    "unknown row key": (_with_row(0, label="x"), "rows[0].label: unknown key"),
    "missing row key": (_with_row(1, values=...), "rows[1].values: required key is missing"),
    "too few values": (_with_row(0, values=[73.8]), "rows[0].values: 1 values for 2 columns"),
    "too many values": (_with_row(0, values=[1.0, 2.0, 3.0]), "rows[0].values: 3 values for 2 columns"),
    "string value": (_with_cell("69.0"), "rows[0].values[1]: value '69.0' is not a number"),
    "bool value": (_with_cell(True), "rows[0].values[1]: value True is not a number"),
    "nan value": (_with_cell(float("nan")), "rows[0].values[1]: value nan is not a finite number"),
    "mapping with non-numeric value": (
        _with_cell({"value": "9x", "flag": "reconstructed", "note": "n"}),
        "rows[0].values[1].value: value '9x' is not a number",
    ),
    "bad flag": (_with_cell({"value": 69.0, "flag": "clen"}), "rows[0].values[1]: flag 'clen' is not one of"),
    "unknown cell key": (_with_cell({"value": 69.0, "flag": "clean", "why": "x"}), "rows[0].values[1].why: unknown key"),
    "reconstructed without note": (
        _with_cell({"value": 69.0, "flag": "reconstructed"}),
        "rows[0].values[1].note: a reconstructed cell needs a note",
    ),
    "missing with a value": (
        _with_cell({"value": 69.0, "flag": "missing", "note": "lost"}),
        "rows[0].values[1].value: flag missing but a value is given",
    ),
    "baseline_row not a row": (_mutated(baseline_row="ResNet-50"), "baseline_row: 'ResNet-50' is not the name of a row"),
    "duplicate row names": (_with_row(1, name="Baseline"), "rows[1].name: duplicate row name 'Baseline'"),
    "reference_only with config": (_with_row(1, config="rga_other"), "rows[1].config: reference_only row has config"),
    "reproducible row without config": (_with_row(0, config=None), "rows[0].config: row is not reference_only but has no config"),
    "config of another paper": (_with_row(0, config="csa_pcb"), "rows[0].config: config 'csa_pcb' is not a snake_case id"),
    "non-bool reference_only": (_with_row(0, reference_only="no"), "rows[0].reference_only: 'no' is not one of true, false"),
    "file name does not match": (_mutated(table="2"), "table: file name should be rga_table2.yaml"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_malformed_file_raises_naming_file_and_field(tmp_path: Path, case: str) -> None:
    data, expected = BAD_CASES[case]
    _write(tmp_path, data)
    with pytest.raises(PaperTableError) as info:
        load_table("rga_table1", tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path.name}/rga_table1.yaml: "), message
    assert expected in message, message


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    (tmp_path / "rga_table1.yaml").write_text("paper: [RGA\n", encoding="utf-8")
    with pytest.raises(PaperTableError, match=r"rga_table1\.yaml: \(yaml\): not valid YAML"):
        load_table("rga_table1", tmp_path)
    (tmp_path / "rga_table1.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(PaperTableError, match=r"rga_table1\.yaml: \(top level\): expected a mapping"):
        load_table("rga_table1", tmp_path)


def test_data_table_rows_may_lack_config(tmp_path: Path) -> None:
    data = _mutated(kind="data", columns=[{"dataset": "n/a", "metric": "params", "unit": "M"}])
    data["rows"] = [{"name": "Baseline", "reference_only": False, "config": None, "values": [25.1]}]
    _write(tmp_path, data)
    assert load_table("rga_table1", tmp_path).shape == (1, 1)


def test_unknown_table_id_lists_valid_ids(tmp_path: Path) -> None:
    _write(tmp_path, VALID)
    with pytest.raises(PaperTableError, match=r"unknown paper table 'rga_table9'.*valid ids: rga_table1"):
        load_table("rga_table9", tmp_path)


def test_default_directory_is_repo_paper_tables() -> None:
    assert PAPER_TABLES_DIR == Path(__file__).resolve().parents[1] / "paper_tables"
    assert (PAPER_TABLES_DIR / "SCHEMA.md").is_file() or (PAPER_TABLES_DIR / "README.md").is_file()


def test_a_table_with_an_mAP_column_must_name_its_ap_definition(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    del data["protocol"]["ap"]
    _write(tmp_path, data)
    with pytest.raises(PaperTableError, match=r"protocol\.ap.*standard, trapezoid, unknown"):
        load_table("rga_table1", tmp_path)
    data["protocol"]["ap"] = "interpolated"
    _write(tmp_path, data)
    with pytest.raises(PaperTableError, match="protocol.ap"):
        load_table("rga_table1", tmp_path)


def test_published_ap_definitions_per_paper() -> None:
    # RGA pins scikit-learn 0.18.1 (trapezoid); SAG's code is Market-MATLAB style (trapezoid);
    # CSA (no code; PCB's sklearn unpinned), DAAF (TriNet's sklearn unpinned) and DSA (no
    # code) are not known.
    expected = {"RGA": "trapezoid", "SAG": "trapezoid", "CSA": "unknown", "DAAF": "unknown",
                "DSA": "unknown"}
    for table_id in list_tables():
        table = load_table(table_id)
        if any(c.metric == "mAP" for c in table.columns):
            assert table.protocol.ap == expected[table.paper], table_id
            assert table.protocol.ap_note
