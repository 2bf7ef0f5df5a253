"""In CI (`CI=true`) a skipped test fails the run unless the allow-list below names it: a
test that skips proves nothing, and in CI every dependency, service and model is installed
by `make test`, so a skip there means something is missing that should not be. Locally a
skip stays a skip (with its reason in pytest's `-ra` summary).

Loaded by tests/conftest.py (`pytest_plugins`).
"""

from __future__ import annotations

import os

import pytest

# Node-id prefix -> why CI may skip it. Keep it short; every entry needs a reason a reviewer
# accepts. Nothing may skip in CI today: the training tests' skip when the embedded base
# model's weights are missing is deliberately absent (CI must have them).
CI_SKIP_ALLOWED: dict[str, str] = {}

_skipped: list[tuple[str, str]] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _record(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skipped.append((report.nodeid, reason))


def pytest_runtest_logreport(report) -> None:
    _record(report)


def pytest_collectreport(report) -> None:  # a module that skips itself at import
    _record(report)


def refused_skips(skipped: list[tuple[str, str]], allowed: dict[str, str]) -> list[tuple[str, str]]:
    """The skips not on the allow-list."""
    return [(node, reason) for node, reason in skipped if not any(node.startswith(prefix) for prefix in allowed)]


def pytest_sessionfinish(session, exitstatus) -> None:
    if not _in_ci():
        return
    refused = refused_skips(_skipped, CI_SKIP_ALLOWED)
    if not refused:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", f"{len(refused)} skipped test(s) not allowed in CI (tests/ci_skip_policy.py)",
                           red=True)
        for node, reason in refused:
            reporter.write_line(f"SKIPPED IN CI {node}: {reason}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
