"""The test command also checks the code's shape: ruff finds nothing, the import-linter
contracts in pyproject.toml hold (the layering of pipeline/ and assets/), and planting an
import that breaks a contract makes the check fail, so the contracts are not a hope."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess:
    """import-linter on the packages under `cwd` (it puts `cwd` first on sys.path), with the
    contracts of `cwd`/pyproject.toml; `contracts` limits the run to those ids."""
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo"]
    for contract in contracts:
        command += ["--contract", contract]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_the_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "planted", "contract", "reported"), [
    # the domain opens no database
    ("pipeline/core/record.py", "import duckdb", "pure-domain", "pipeline.core.record -> duckdb"),
    # the evaluation imports no torch, not even through a lazy import of the learning package
    ("pipeline/evaluation/metrics.py", "def _engine():\n    from pipeline.learning import generate",
     "pure-domain", "pipeline.evaluation.metrics -> pipeline.learning.generate"),
    # the product never imports a benchmark
    ("pipeline/shell/warehouse.py", "from pipeline.benchmarks import dedup", "product-without-harness",
     "pipeline.shell.warehouse -> pipeline.benchmarks.dedup"),
    # a lower layer never imports a higher one
    ("pipeline/shell/marts.py", "from pipeline.orchestration import resources", "layers",
     "pipeline.shell.marts -> pipeline.orchestration.resources"),
    # formats build on the record, never the other way round
    ("pipeline/core/record.py", "from pipeline.core import formats", "core-layers",
     "pipeline.core.record -> pipeline.core.formats"),
    # two modules of one package that import each other
    ("pipeline/core/formats/guard.py", "from pipeline.core.formats import fields", "acyclic",
     ".guard -> .fields"),
])
def test_a_broken_contract_fails_the_check(tmp_path, module, planted, contract, reported):
    copy = tmp_path / "repository"
    for package in ("pipeline", "assets"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    assert _lint_imports(copy, contract).returncode == 0  # the copy holds before the plant
    target = copy / module
    target.write_text(target.read_text() + f"\n\n{planted}  # planted by the test\n")
    result = _lint_imports(copy, contract)
    assert result.returncode == 1, result.stdout[-3000:]
    assert reported in result.stdout, result.stdout[-3000:]
