"""Dagster resources: thin wrappers that hand the functional core its clients.

Credentials never appear as resource config (which Dagster shows in its UI and stores in
run records): resources read them from `pipeline.settings` at use time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject
from dagster_duckdb import DuckDBResource

from pipeline.settings import DBT_PROJECT_DIR, EXPECTATIONS_DIR, get_settings
from pipeline.shell.lakefs_store import lakefs_client


def venv_tool(name: str) -> str:
    """The console script installed beside this interpreter (dagster may run without the
    venv on PATH); falls back to the bare name resolved from PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
    target=get_settings().dbt_target,
)


class LakeFSResource(dg.ConfigurableResource):
    """lakeFS through the high-level `lakefs` SDK."""

    endpoint: str

    def client(self) -> Any:
        return lakefs_client(self.endpoint)

    def repository(self, name: str) -> Any:
        import lakefs

        return lakefs.Repository(name, client=self.client())

    def ensure_repository(self, name: str, default_branch: str = "main") -> Any:
        """Create the repository on first use (local blockstore namespace `local://name`)."""
        import lakefs

        repo = lakefs.Repository(name, client=self.client())
        return repo.create(
            storage_namespace=f"local://{name}", default_branch=default_branch, exist_ok=True
        )


def fail_fast_mlflow_requests() -> None:
    """MLflow retries each request 7 times with exponential backoff (minutes against a dead
    server); the step's own RetryPolicy already covers longer outages, so each request
    gives up after a few seconds unless the user chose otherwise."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def _is_unreachable(error: BaseException | None) -> bool:
    """Whether a connection failure is behind `error` (MLflow wraps it, sometimes implicitly)."""
    import requests
    import urllib3

    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                              urllib3.exceptions.MaxRetryError, ConnectionError)):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking (dagster-mlflow is an old-style resource, hence our own).

    Every run it opens is tagged with the Dagster run id so either side finds the other.
    """

    tracking_uri: str
    experiment_name: str = "flywheel"
    # Only for a direct sqlite store (tests); a tracking server decides artifact locations.
    artifact_root: str = ""

    def configure(self) -> Any:
        import mlflow

        fail_fast_mlflow_requests()
        mlflow.set_tracking_uri(self.tracking_uri)
        return mlflow

    def client(self) -> Any:
        from mlflow import MlflowClient

        fail_fast_mlflow_requests()
        return MlflowClient(tracking_uri=self.tracking_uri)

    @contextmanager
    def unreachable_is_failure(self) -> Iterator[None]:
        """Turn "the tracking server went away" into one clear, retryable step failure."""
        try:
            yield
        except Exception as error:
            if not _is_unreachable(error):
                raise
            detail = (str(error).strip().splitlines() or [""])[0][:300]
            # `from None`: this message, not the connection error under it, is the root
            # cause that Dagster's UI and the failure summary show.
            raise dg.Failure(
                description=(
                    f"MLflow tracking server {self.tracking_uri} is unreachable. Start it "
                    "(`flywheel up`) and re-run: a model already registered for the same "
                    "release, config and code is reused, never registered twice. "
                    f"({type(error).__name__}: {detail})"
                ),
            ) from None

    def experiment_id(self) -> str:
        mlflow = self.configure()
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        location = (
            str(Path(self.artifact_root) / self.experiment_name) if self.artifact_root else None
        )
        if location:
            location = Path(location).as_uri()
        return mlflow.create_experiment(self.experiment_name, artifact_location=location)

    @contextmanager
    def start_run(
        self, run_name: str, dagster_run_id: str | None, tags: dict[str, str] | None = None
    ) -> Iterator[Any]:
        mlflow = self.configure()
        all_tags = {**(tags or {})}
        if dagster_run_id:
            all_tags["dagster.run_id"] = dagster_run_id
        with mlflow.start_run(
            experiment_id=self.experiment_id(), run_name=run_name, tags=all_tags
        ) as run:
            yield run


class GreatExpectationsResource(dg.ConfigurableResource):
    """Runs the GX suites kept as files in expectations/ on DataFrames.

    GX takes ~5 s to import, so nothing imports it until a validation actually runs.
    """

    suites_dir: str = str(EXPECTATIONS_DIR)

    def validate(self, frame: Any, suite_name: str) -> Any:
        from pipeline.shell.validation import load_suite, validate_dataframe

        return validate_dataframe(frame, load_suite(Path(self.suites_dir) / f"{suite_name}.json"))


def build_resources() -> dict[str, Any]:
    settings = get_settings()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    return {
        "lakefs": LakeFSResource(endpoint=settings.lakefs_endpoint),
        "mlflow": MlflowResource(tracking_uri=settings.mlflow_tracking_uri),
        "duckdb": DuckDBResource(database=str(settings.duckdb_path)),
        "dbt": DbtCliResource(
            project_dir=dbt_project, dbt_executable=venv_tool("dbt"), target=settings.dbt_target
        ),
        "gx": GreatExpectationsResource(),
    }
