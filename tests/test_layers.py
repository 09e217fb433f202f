"""Imports point down rltorch's layers ([tool.importlinter] in pyproject.toml, docs/architecture.md): the
contract holds for the package as it is, and fails when a lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": cwd}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_package_keeps_its_layers():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def _copy_of_the_package(tmp_path) -> str:
    """The package's Python sources and the project's contract, in a scratch tree."""
    shutil.copytree(os.path.join(ROOT, "rltorch"), tmp_path / "rltorch",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path / "pyproject.toml")
    return str(tmp_path)


@pytest.mark.parametrize("planted,importer,imported", [
    ("rltorch/ops/_planted.py", "rltorch.ops", "rltorch.agents"),              # a kernel wrapper reaching up
    ("rltorch/classifiers/_planted.py", "rltorch.classifiers", "rltorch.agents"),
    ("rltorch/envs/_planted.py", "rltorch.envs", "rltorch.replay"),            # siblings stay independent
])
def test_a_planted_upward_import_breaks_the_contract(tmp_path, planted, importer, imported):
    tree = _copy_of_the_package(tmp_path)
    with open(os.path.join(tree, planted), "w") as f:
        f.write(f"def later():\n    import {imported}  # lazy imports count too\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert f"{importer} is not allowed to import {imported}" in proc.stdout, proc.stdout
