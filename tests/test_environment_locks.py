"""The optional environment locks (``results/environments/*.txt``): exact pins that cover every
dependency, the environment of the committed records among them, and (``-m slow``) each lock
resolving where its torch is available."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCKS = sorted((REPO / "results" / "environments").glob("torch-*.txt"))
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)$")


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"{lock.name}: not an exact pin: {line!r}"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _requirement_names() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_locks_exist_and_pin_every_dependency_exactly():
    assert LOCKS, "no environment lock in results/environments"
    for lock in LOCKS:
        pins = _pins(lock)
        missing = _requirement_names() - set(pins)
        assert not missing, f"{lock.name} does not pin {sorted(missing)}"
        torch_version = re.search(r"torch-([0-9.]+)-", lock.name).group(1)
        assert pins["torch"] == torch_version, lock.name


def test_a_lock_matches_the_environment_of_the_committed_records():
    records = [json.loads(p.read_text()) for p in (REPO / "results" / "runs").glob("*.json")]
    environments = {(r["versions"]["torch"].split("+")[0], r["versions"]["torchvision"].split("+")[0],
                     r["versions"]["numpy"]) for r in records if "versions" in r}
    locked = {(p["torch"], p["torchvision"], p["numpy"]) for p in map(_pins, LOCKS)}
    assert environments and environments <= locked, (environments, locked)


@pytest.mark.slow
@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_lock_resolves_where_its_torch_is_available(lock, tmp_path):
    """``pip install --dry-run`` of the whole lock (wheels' metadata only, nothing installed).
    Machines whose pip caps torch below the lock's, or registries without its build, skip."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--no-deps", "--report", str(tmp_path / "report.json"), "-r", str(lock)],
        capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        why = [ln.strip() for ln in text.splitlines()
               if "(constraint)" in ln or "No matching distribution found for torch" in ln]
        if why:
            pytest.skip(f"{lock.name}: its torch is not installable here (pip: {why[0][:200]})")
        pytest.fail(f"{lock.name} does not resolve:\n{text[-3000:]}")
    report = json.loads((tmp_path / "report.json").read_text())
    resolved = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                for item in report["install"]}
    assert resolved == _pins(lock)
