"""A `lakefs://` dataset source for MLflow, so a training run's input names the exact
lakeFS commit it read (MLflow only knows http, s3, local paths and the like)."""

from __future__ import annotations

from typing import Any

from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import register_dataset_source


class LakeFSDatasetSource(DatasetSource):
    """`lakefs://<repository>/<commit id>/<path>`: immutable because it names a commit."""

    def __init__(self, uri: str) -> None:
        self._uri = uri

    @property
    def uri(self) -> str:
        return self._uri

    @staticmethod
    def _get_source_type() -> str:
        return "lakefs"

    def load(self, dst_path: str | None = None) -> str:
        """Download the object to `dst_path` (or a temp dir) and return the local path."""
        import tempfile
        from pathlib import Path

        import lakefs

        from pipeline.settings import get_settings
        from pipeline.shell.lakefs_store import lakefs_client

        repo_name, commit, path = self._uri.removeprefix("lakefs://").split("/", 2)
        repo = lakefs.Repository(repo_name, client=lakefs_client(get_settings().lakefs_endpoint))
        target = Path(dst_path or tempfile.mkdtemp()) / Path(path).name
        with repo.ref(commit).object(path).reader(mode="rb") as handle:
            target.write_bytes(handle.read())
        return str(target)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith("lakefs://")

    @classmethod
    def _resolve(cls, raw_source: Any) -> LakeFSDatasetSource:
        return cls(raw_source)

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self._uri}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> LakeFSDatasetSource:
        return cls(source_dict["uri"])


register_dataset_source(LakeFSDatasetSource)
