"""The MLflow model registry as the pipeline reads it: a version by alias, a version's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow


def download_model_dir(model_uri: str, target: Path) -> Path:
    """The merged model directory in a registered version's artifacts (`models:/name/3`,
    `models:/name@champion`), downloaded under `target` from the configured tracking server."""
    path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(target))
    found = sorted(Path(path).rglob("config.json"))
    if not found:
        raise FileNotFoundError(f"{model_uri} has no model directory in its artifacts")
    return found[0].parent


def version_by_alias(client: Any, name: str, alias: str) -> Any:
    """The registered version of `name` under `alias`, or None when the alias is unset."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:  # RESOURCE_DOES_NOT_EXIST: no such alias (yet)
        return None
