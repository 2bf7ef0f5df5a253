"""Questions an auditor asks, answered from lakeFS and MLflow alone.

- Which releases contain a user's (or a trajectory's) records, and where did they go?
- Which registered models were trained on those releases?
- For a registered model: run → dataset release → raw-log commits → Dagster run → code.

Everything is read by immutable id (release tags resolve to commits; models to versions).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.shell.marts import read_parquet
from pipeline.shell.release import DATA_PREFIX, TAG_PREFIX

MODEL_NAME = "flywheel-agent"
TAG_RELEASE = "lakefs.tag"
TAG_PARENT_VERSION = "parent_version"  # the registered version a model was trained from (RL: its SFT model)


@dataclass(frozen=True)
class ReleaseHit:
    tag: str
    commit_id: str
    destinations: dict[str, int]  # destination -> records (train / eval / excluded)
    rules: list[str]  # rule ids that excluded some of them
    rl_tasks: int = 0  # records whose task RL may replay (rl_tasks keeps excluded attempts too)

    @property
    def used(self) -> bool:
        """Did the release put any of the records into a training or evaluation split, or
        their tasks into rl_tasks?"""
        return self.rl_tasks > 0 or any(self.destinations.get(d) for d in ("train", "eval"))


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
        in_rl = int(rows["in_rl_tasks"].sum()) if "in_rl_tasks" in rows else 0  # releases before rl_tasks: none
        hits.append(ReleaseHit(tag, commit_id, rows["destination"].value_counts().to_dict(), rules, in_rl))
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


def parse_model_spec(spec: str) -> tuple[str, str | None, str | None]:
    """`name`, `name@alias` or `name/version` → (name, alias, version); bare name = champion."""
    if "@" in spec:
        name, alias = spec.split("@", 1)
        return name, alias, None
    if "/" in spec:
        name, version = spec.rsplit("/", 1)
        return name, None, version
    return spec, "champion", None


def trace_model(spec: str, *, tracking_uri: str, lakefs_client: Any,
                datasets_repo: str, raw_repo: str) -> dict[str, Any]:
    """registered version → MLflow run → dataset release → raw-log commits and files →
    Dagster runs → code version, as one JSON-able dict."""
    import json

    import lakefs
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    name, alias, number = parse_model_spec(spec)
    version = (client.get_model_version_by_alias(name, alias) if alias
               else client.get_model_version(name, number))
    run = client.get_run(version.run_id)
    tags = {**run.data.tags, **version.tags}
    release_commit = tags["lakefs.commit"]
    datasets = lakefs.Repository(datasets_repo, client=lakefs_client)
    card_object = datasets.ref(release_commit).object(DATA_PREFIX + "data_card.json")
    with card_object.reader(mode="rb") as handle:
        card = json.loads(handle.read())
    raw = lakefs.Repository(raw_repo, client=lakefs_client)
    raw_commits = []
    for commit_id in card["provenance"]["raw_log_commits"]:
        meta = raw.commit(commit_id).get_commit().metadata or {}
        files = json.loads(meta.get("files_sha256", "{}"))
        raw_commits.append({
            "commit": commit_id,
            "partition": meta.get("partition"),
            "dagster_run_id": meta.get("dagster_run_id"),
            "files": {f"lakefs://{raw_repo}/{commit_id}/dt={meta.get('partition')}/{n}": d
                      for n, d in sorted(files.items())},
        })
    # The card lists commits by id (stable, but arbitrary); readers want them in day order.
    raw_commits.sort(key=lambda c: (c["partition"] or "", c["commit"]))
    inputs = [
        {"name": d.dataset.name, "digest": d.dataset.digest, "source": d.dataset.source}
        for d in (run.inputs.dataset_inputs if run.inputs else [])
    ]
    return {
        "model": {"name": version.name, "version": version.version,
                  "aliases": list(version.aliases), "source": version.source,
                  "method": tags.get("training_method", "sft"), "trained_from": tags.get("init_from")},
        "mlflow_run": {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                       "dataset_inputs": inputs, "params": dict(run.data.params)},
        "dataset_release": {
            "repository": datasets_repo, "tag": tags.get("lakefs.tag"), "commit": release_commit,
            "data_card": f"lakefs://{datasets_repo}/{release_commit}/{DATA_PREFIX}DATA_CARD.md",
            "verdict": card["verdict"], "counts": card["counts"],
        },
        "raw_log_commits": raw_commits,
        "dagster_runs": {"training": tags.get("dagster.run_id"),
                         "ingestion": sorted({c["dagster_run_id"] for c in raw_commits if c["dagster_run_id"]})},
        "code_version": {"training": tags.get("code_version"),
                         "curation": card["provenance"]["code_version"]},
    }


def format_trace(trace: dict[str, Any]) -> str:
    m, r, d = trace["model"], trace["mlflow_run"], trace["dataset_release"]
    lines = [
        f"model      {m['name']} v{m['version']}" + (f" ({', '.join(m['aliases'])})" if m["aliases"] else ""),
        f"  mlflow run   {r['run_id']} (experiment {r['experiment_id']})",
    ]
    if m.get("trained_from"):
        lines.append(f"  trained by   {m['method']} from {m['trained_from']}")
    lines += [f"    input      {i['name']} <- {i['source']}" for i in r["dataset_inputs"]]
    lines += [
        f"  release      {d['tag']} = lakefs://{d['repository']}/{d['commit']} "
        f"(validation {d['verdict']})",
        f"    data card  {d['data_card']}",
    ]
    for c in trace["raw_log_commits"]:
        lines.append(f"    raw logs   {c['partition']}: lakefs commit {c['commit']} "
                     f"(dagster run {c['dagster_run_id']})")
        lines += [f"      file     {uri}" for uri in c["files"]]
    lines += [
        f"  dagster runs training {trace['dagster_runs']['training']}",
        f"  code         training {trace['code_version']['training']}, "
        f"curation {trace['code_version']['curation']}",
    ]
    return "\n".join(lines)
