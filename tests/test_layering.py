"""The library is layered; a lower layer never imports a higher one (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "reid_core"

# Lowest first. ``config`` (typed config schema), ``utils`` and ``resources`` (where the shipped
# paper tables and configs are) are shared by every layer.
LAYERS = {
    "utils": 0, "config": 0, "resources": 0,
    "data": 1, "models": 2, "losses": 3, "engine": 4, "metrics": 5, "results": 6,
    "app": 7, "cli": 8, "__main__": 8,
}

# Inside the application layer: a run is below the table that runs it, the regression check
# (which reproduces rows) above both.
APP_LAYERS = {"training": 0, "ddp": 0,
              "pretrain": 0, "experiment": 0, "inspect_run": 0, "paper_configs": 0,
              "cross_eval": 1, "tables": 1, "reproduce": 1, "dataset_stats": 1, "regression": 2}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "reid_core" or len(parts) < 2:
        return None
    return LAYERS[parts[1]]


def imports_of(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "reid_core":
                out.update(f"reid_core.{a.name}" for a in node.names if a.name != "__version__")
            else:
                out.add(node.module)
    return out


def test_every_module_has_a_layer():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        if rel.parts == ("__init__",):
            continue
        assert rel.parts[0] in LAYERS, f"{path}: add its top-level name to LAYERS"


def test_every_app_module_has_a_sublayer():
    for path in (PKG / "app").glob("*.py"):
        if path.stem != "__init__":
            assert path.stem in APP_LAYERS, f"{path}: add it to APP_LAYERS"


def test_no_upward_imports_inside_the_application_layer():
    violations = []
    for path in (PKG / "app").glob("*.py"):
        if path.stem == "__init__":
            continue
        for mod in imports_of(path):
            parts = mod.split(".")
            if parts[:2] == ["reid_core", "app"] and len(parts) > 2:
                if APP_LAYERS[parts[2]] > APP_LAYERS[path.stem]:
                    violations.append(f"app/{path.name} imports {mod}")
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_no_upward_imports():
    violations = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        if rel.parts == ("__init__",):
            continue
        own = LAYERS[rel.parts[0]]
        for mod in imports_of(path):
            layer = layer_of(mod)
            if layer is not None and layer > own:
                violations.append(f"{path.relative_to(PKG.parent)} imports {mod}")
    assert not violations, "upward imports:\n" + "\n".join(violations)
