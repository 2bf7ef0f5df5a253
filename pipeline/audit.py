"""Questions an auditor asks, answered from lakeFS and MLflow alone.

- Which releases contain a user's (or a trajectory's) records, and where did they go?
- Which registered models were trained on those releases?
- For a registered model: run → dataset release → raw-log commits → Dagster run → code.

Everything is read by immutable id (release tags resolve to commits; models to versions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from pipeline.quality import read_parquet
from pipeline.release import DATA_PREFIX, TAG_PREFIX

MODEL_NAME = "flywheel-agent"
TAG_RELEASE = "lakefs.tag"


@dataclass(frozen=True)
class ReleaseHit:
    tag: str
    commit_id: str
    destinations: dict[str, int]  # destination -> records (train / eval / excluded)
    rules: list[str]  # rule ids that excluded some of them

    @property
    def used(self) -> bool:
        """Did the release put any of the records into a training or evaluation split?"""
        return any(self.destinations.get(d) for d in ("train", "eval"))


def release_decisions(repo: Any) -> Iterable[tuple[str, str, pd.DataFrame]]:
    """(tag, commit id, curation_decisions) of every dataset release, oldest tag first."""
    for tag in sorted(repo.tags(prefix=TAG_PREFIX), key=lambda t: t.id):
        commit_id = tag.get_commit().id
        data = repo.ref(commit_id).object(DATA_PREFIX + "curation_decisions.parquet")
        with data.reader(mode="rb") as handle:
            yield tag.id, commit_id, read_parquet(handle.read())


def find_in_releases(repo: Any, *, user_id: str | None = None,
                     trajectory_id: str | None = None) -> list[ReleaseHit]:
    hits = []
    for tag, commit_id, decisions in release_decisions(repo):
        if user_id is not None:
            mask = (decisions["user_id"] == user_id) if "user_id" in decisions else (
                decisions["split_group_key"] == f"user:{user_id}"
            )
        else:
            mask = decisions["trajectory_id"] == trajectory_id
        rows = decisions[mask]
        if rows.empty:
            continue
        rules = sorted({r for ids in rows["rule_ids"] for r in (list(ids) if ids is not None else [])})
        hits.append(ReleaseHit(tag, commit_id, rows["destination"].value_counts().to_dict(), rules))
    return hits


def models_trained_on(tracking_uri: str, release_tags: Iterable[str]) -> list[dict[str, str]]:
    """Registered model versions whose training data was one of these releases."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = []
    for tag in release_tags:
        for version in client.search_model_versions(f"tags.`{TAG_RELEASE}` = '{tag}'"):
            found.append({"model": version.name, "version": version.version, "release": tag,
                          "aliases": ",".join(version.aliases)})
    return found
