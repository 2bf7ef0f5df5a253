"""Shared fixtures: real services on free loopback ports, state in temp dirs.

The environment is set before any pipeline module reads settings, so every test run
uses its own state directory and never the developer's `.state/` (except for the built
lakeFS binary, which is a cached tool).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["ci_skip_policy"]  # in CI a skipped test fails the run (tests/ci_skip_policy.py)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_SESSION_STATE = Path(tempfile.mkdtemp(prefix="flywheel-test-state-"))
os.environ.setdefault("FLYWHEEL_TOOLS_DIR", str(PROJECT_ROOT / ".state" / "tools"))
os.environ["FLYWHEEL_STATE_DIR"] = str(_SESSION_STATE)
os.environ["GX_ANALYTICS_ENABLED"] = "false"
# One surrogate key for every run: the same inputs redact to the same data, run after run.
os.environ.setdefault("FLYWHEEL_SURROGATE_KEY", "flywheel-tests-only")
os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"

from pipeline.settings import get_settings  # noqa: E402  (after the environment is set)
from pipeline.shell.local_stack import (  # noqa: E402
    ensure_lakefs_binary,
    lakefs_env,
    stop_process_group,
    wait_until_healthy,
)
from pipeline.shell.ports import free_port  # noqa: E402


class LakeFSServer:
    def __init__(self, endpoint: str, port: int, proc: subprocess.Popen) -> None:
        self.endpoint = endpoint
        self.port = port
        self.proc = proc

    def repository(self, name: str):
        import lakefs

        return lakefs.Repository(name, client=self.client())

    def client(self):
        from pipeline.orchestration.resources import LakeFSResource

        return LakeFSResource(endpoint=self.endpoint).client()


@pytest.fixture(scope="session")
def lakefs_server() -> Iterator[LakeFSServer]:
    """A real lakeFS server: in-memory database, local blockstore in a temp dir."""
    settings = get_settings()
    binary = ensure_lakefs_binary(settings)
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="lakefs-test-"))
    log_path = data_dir / "lakefs.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(binary), "run"],
            env=lakefs_env(settings, database="mem", data_dir=data_dir, port=port),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy("lakefs", f"{endpoint}/_health", proc, log_path, timeout=60)
        yield LakeFSServer(endpoint, port, proc)
    finally:
        stop_process_group(proc.pid)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL (Debian's packages) on a free loopback port, in a temp dir, with one
    database per service the production profile puts on it."""
    from pipeline.shell.postgres import throwaway_postgres

    with throwaway_postgres(free_port(), ["warehouse", "dagster", "mlflow", "lakefs"]) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised model of SmolLM2's architecture, with its tokenizer."""
    from pipeline.learning import base_model

    return base_model.tiny_model_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tokenizer(tiny_dir):
    """The tiny model's tokenizer with the project's chat template."""
    from pipeline.learning.tokenizer import load_tokenizer

    return load_tokenizer(tiny_dir)


@pytest.fixture()
def unique_name(request) -> str:
    """A lakeFS-safe repository name unique to the test."""
    import hashlib
    import re

    name = request.node.name.lower()
    suffix = hashlib.sha256(name.encode()).hexdigest()[:8]
    return re.sub(r"[^a-z0-9-]+", "-", name)[:40].strip("-") + "-" + suffix
