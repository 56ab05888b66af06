"""The library is layered; a lower layer never imports a higher one (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "reid_core"

# Lowest first. ``config`` (typed config schema) and ``utils`` are shared by every layer.
LAYERS = {
    "utils": 0, "config": 0,
    "data": 1, "models": 2, "losses": 3, "engine": 4, "metrics": 5, "results": 6,
    "experiment": 7, "inspect_run": 7, "cross_eval": 7, "reproduce": 8, "regression": 9, "cli": 9, "__main__": 9,
}


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
