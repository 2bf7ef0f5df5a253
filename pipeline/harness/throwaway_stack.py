"""Services of our own for fault tests and benchmarks: a temporary state directory, free
loopback ports, and a lakeFS server on a persistent local KV started as `flywheel up` starts
it (so it can be killed and restarted on its data), removed afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.settings import Settings


def throwaway_stack_settings(base: Settings) -> Settings:
    """Settings for services of our own: a temp state directory and free loopback ports."""
    from dataclasses import replace

    from pipeline.shell.ports import free_port

    state_dir = Path(tempfile.mkdtemp(prefix="flywheel-faults-"))
    lakefs_port, mlflow_port = free_port(), free_port()
    return replace(
        base, state_dir=state_dir,
        lakefs_port=lakefs_port, lakefs_endpoint=f"http://127.0.0.1:{lakefs_port}",
        mlflow_port=mlflow_port, mlflow_tracking_uri=f"http://127.0.0.1:{mlflow_port}",
        mlflow_backend_store_uri=f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}",
    )


@contextmanager
def throwaway_lakefs(settings: Settings) -> Iterator[tuple[Settings, Any]]:
    """A lakeFS server of our own on a persistent local KV, as `flywheel up` runs it:
    (its settings, an SDK client). Removed with its data afterwards."""
    from pipeline.orchestration.resources import LakeFSResource
    from pipeline.shell.local_stack import services, start_service, stop_service

    stack = throwaway_stack_settings(settings)
    service = next(s for s in services(stack) if s.name == "lakefs")
    start_service(stack, service)
    try:
        yield stack, LakeFSResource(endpoint=stack.lakefs_endpoint).client()
    finally:
        stop_service(stack, service)
        shutil.rmtree(stack.state_dir, ignore_errors=True)
