"""Layers import one way (STYLE §1): Polars in io/pipeline, Rich in render/cli, Typer in cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "croctl"
ALLOWED = {
    "polars": ("croctl/io/", "croctl/pipeline/"),
    "rich": ("croctl/render/", "croctl/cli/"),
    "typer": ("croctl/cli/",),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_heavy_libraries_stay_in_their_layer(path):
    relative = path.relative_to(ROOT).as_posix()
    for library, homes in ALLOWED.items():
        if library in _imports(path):
            assert relative.startswith(homes), f"{relative} imports {library}"


def test_modules_stay_small():
    big = [p.name for p in PACKAGE.rglob("*.py") if len(p.read_text().splitlines()) > 400]
    assert not big


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    commands = ("evaluate", "validate", "schema", "power", "init", "--version")
    for command in (f"croctl {c}" for c in commands):
        assert command in readme


def test_a_readout_imports_no_library_it_does_not_use():
    """Start-up is part of every readout's time: these cost ~1.2 s of CPU between them."""
    import subprocess
    import sys

    script = (
        "import sys, croctl.cli.readout, croctl.analysis; "
        "print(' '.join(m for m in ('scipy.stats', 'scipy.optimize', 'sqlglot', 'pyarrow.parquet') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
