"""A skipped test fails a CI run unless the allow-list names it (tests/ci_skip_policy.py)."""

import os
import subprocess
import sys
from pathlib import Path

from ci_skip_policy import refused_skips

TESTS = Path(__file__).resolve().parents[1]
SKIPPING = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("the weights are missing")
"""


def _run(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(TESTS)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "ci_skip_policy", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_a_ci_run_and_names_the_test_and_its_reason(tmp_path):
    result = _run(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "SKIPPED IN CI test_sample.py::test_skips: Skipped: the weights are missing" in result.stdout


def test_a_skip_outside_ci_stays_a_skip(tmp_path):
    result = _run(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout


def test_only_skips_on_the_allow_list_are_accepted():
    skipped = [("tests/unit/test_training.py::test_x", "no weights"), ("tests/browser/test_uis.py::test_y", "no ui")]
    allowed = {"tests/browser/": "why it may skip"}
    assert refused_skips(skipped, allowed) == [("tests/unit/test_training.py::test_x", "no weights")]
