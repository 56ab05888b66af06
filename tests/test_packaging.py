"""Packaging: the paper tables and paper configs ship inside the wheel, and
:mod:`reid_core.resources` finds them in a checkout, an editable install and a plain install."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from reid_core import resources

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _setup_shipped() -> dict[str, str]:
    """setup.py's ``SHIPPED`` (data package -> repository directory), read without running it."""
    tree = ast.parse((REPO / "setup.py").read_text())
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                and [getattr(t, "id", None) for t in node.targets] == ["SHIPPED"]]
    return ast.literal_eval(value)


SHIPPED = _setup_shipped()


# --------------------------------------------------------------------------- source tree


def test_resources_resolve_to_the_checkout():
    assert resources.checkout_root() == REPO
    assert resources.paper_tables_dir() == REPO / "paper_tables"
    assert resources.paper_configs_dir() == REPO / "configs" / "papers"
    assert resources.default_results_dir() == REPO / "results"
    assert list(resources.paper_tables_dir().glob("rga_table1.yaml"))
    assert list(resources.paper_configs_dir().glob("rga.yaml"))


def test_the_tables_and_the_configs_are_read_through_resources():
    from reid_core.app.reproduce import CONFIGS_DIR
    from reid_core.results.paper_tables import PAPER_TABLES_DIR

    assert PAPER_TABLES_DIR == resources.paper_tables_dir()
    assert CONFIGS_DIR == resources.paper_configs_dir()


def test_setup_maps_the_data_packages_that_resources_reads():
    """setup.py's package-dir mapping, pyproject's package-data and reid_core.resources agree:
    every YAML file of the two directories is in the wheel where resources looks for it."""
    assert SHIPPED == {f"reid_core.{resources.SHIPPED}.{d.replace('/', '.')}": d
                       for d in (resources.PAPER_TABLES, resources.PAPER_CONFIGS)}
    package_data = PYPROJECT["package-data"]
    for package, directory in SHIPPED.items():
        shipped = {p for g in package_data[package] for p in (REPO / directory).glob(g)}
        assert set((REPO / directory).glob("*.yaml")) <= shipped, package


def test_an_installed_layout_resolves_to_the_shipped_copy(tmp_path):
    """reid_core outside a checkout (as in site-packages) reads reid_core/_shipped/; python -S:
    no site-packages, so nothing but this copy can be imported."""
    site = tmp_path / "site"
    (site / "reid_core" / "_shipped" / "paper_tables").mkdir(parents=True)
    (site / "reid_core" / "_shipped" / "configs" / "papers").mkdir(parents=True)
    for name in ("__init__.py", "resources.py"):
        shutil.copy(REPO / "reid_core" / name, site / "reid_core" / name)
    out = _python_s(site, "import reid_core.resources as r; "
                          "print(r.checkout_root(), r.paper_tables_dir(), r.paper_configs_dir())")
    shipped = site / "reid_core" / "_shipped"
    assert out.split() == ["None", str(shipped / "paper_tables"),
                           str(shipped / "configs" / "papers")]


def test_no_git_commit_is_claimed_outside_a_checkout(monkeypatch):
    from reid_core.results import records

    monkeypatch.setattr(records, "checkout_root", lambda: None)
    assert records._git_commit() is None


def _python_s(path: Path, code: str, cwd: Path | None = None) -> str:
    """Run ``code`` with ``python -S`` (no site-packages, hence no editable install of this
    checkout) and only ``path`` added to sys.path; its stdout."""
    prog = f"import sys; sys.path.insert(0, {str(path)!r}); {code}"
    done = subprocess.run([sys.executable, "-S", "-c", prog], capture_output=True, text=True,
                          cwd=cwd or path, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --------------------------------------------------------------------------- built wheel


def _source_copy(dest: Path) -> Path:
    """What a build reads, copied (building in the shared checkout would race other builds)."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("reid_core", "paper_tables", "configs"):
        shutil.copytree(REPO / name, dest / name, ignore=skip)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


def _pip(*args: str) -> None:
    # --no-build-isolation: build with this environment's setuptools (no index needed).
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_wheel_ships_the_tables_and_configs_and_finds_them_installed(tmp_path):
    pytest.importorskip("setuptools", reason="builds with this environment's setuptools")
    src = _source_copy(tmp_path / "src")
    _pip("wheel", str(src), "-w", str(tmp_path / "dist"))
    (wheel,) = (tmp_path / "dist").glob("reid_attention_bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for directory in SHIPPED.values():
        for path in (REPO / directory).glob("*.yaml"):
            assert f"reid_core/_shipped/{directory}/{path.name}" in names
    assert "reid_core/cli/__init__.py" in names and "reid_core/resources.py" in names
    assert not any(n.startswith(("paper_tables/", "configs/")) for n in names)  # no top level

    # A plain (non-editable) install, imported from elsewhere: the shipped copy is found.
    site = tmp_path / "site"
    _pip("install", str(wheel), "--target", str(site))
    out = _python_s(site, "import reid_core, reid_core.resources as r; print(reid_core.__file__);"
                          "print(r.checkout_root()); print(r.paper_tables_dir());"
                          "print(sorted(p.name for p in r.paper_configs_dir().glob('*.yaml')))",
                    cwd=tmp_path)
    file, root, tables, configs = out.splitlines()
    assert Path(file).is_relative_to(site) and root == "None"
    assert Path(tables) == site / "reid_core" / "_shipped" / "paper_tables"
    assert {p.name for p in Path(tables).glob("*.yaml")} == {
        p.name for p in (REPO / "paper_tables").glob("*.yaml")}
    assert configs == str(sorted(p.name for p in (REPO / "configs" / "papers").glob("*.yaml")))

    # With this environment's packages (torch, pandas) on the path: the installed library
    # loads a table and a paper config from its own copy.
    code = ("import reid_core; from reid_core.results.paper_tables import load_table;"
            "from reid_core.app.reproduce import load_paper_configs;"
            "print(reid_core.__file__); print(load_table('rga_table3').path);"
            "print(load_paper_configs('RGA')[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    assert all(Path(line).is_relative_to(site) for line in done.stdout.splitlines())


@pytest.mark.slow
def test_editable_install_reads_the_checkout(tmp_path):
    """An editable install of a copy: the package and its data come from that copy.

    The editable wheel is built by setuptools' PEP 660 hook and unpacked by hand (what pip does
    for a pure wheel): ``pip install -e --prefix`` would uninstall this environment's own
    editable install first.
    """
    pytest.importorskip("setuptools", reason="builds with this environment's setuptools")
    src = _source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    dist.mkdir()
    build = subprocess.run(
        [sys.executable, "-c", "import sys, setuptools.build_meta as b; "
                               "print(b.build_editable(sys.argv[1]))", str(dist)],
        cwd=src, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    site = tmp_path / "site"
    zipfile.ZipFile(dist / build.stdout.splitlines()[-1]).extractall(site)
    # site.addsitedir runs the install's .pth (its import hook) in a python -S.
    out = _python_s(site, f"import site; site.addsitedir({str(site)!r}); import reid_core, "
                          "reid_core.resources as r; print(reid_core.__file__); "
                          "print(r.paper_tables_dir())", cwd=tmp_path)
    file, tables = out.splitlines()
    assert Path(file) == src / "reid_core" / "__init__.py"
    assert Path(tables) == src / "paper_tables"
