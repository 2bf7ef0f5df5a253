"""A snapshot of the code location: every asset with its upstream edges, every check, job,
schedule and sensor. An unintended change of lineage fails here; an intended one is
recorded with `FLYWHEEL_UPDATE_SNAPSHOTS=1 make test` and reviewed in the diff."""

import json
import os
from pathlib import Path

import dagster as dg

from pipeline.definitions import defs

SNAPSHOT = Path(__file__).resolve().parent.parent / "snapshots" / "definitions.json"


def describe_definitions() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if not node.is_materializable:
            continue
        assets[key.to_user_string()] = {
            "upstream": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "partitioned": node.partitions_def is not None,
        }
    checks = sorted(
        f"{c.asset_key.to_user_string()}:{c.name}{' (blocking)' if graph.get(c).blocking else ''}"
        for c in graph.asset_check_keys
    )
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in repo.schedule_defs},
        "sensors": sorted(s.name for s in repo.sensor_defs),
    }


def test_definitions_match_the_snapshot():
    current = describe_definitions()
    if os.environ.get("FLYWHEEL_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    assert current == recorded, (
        "the Dagster definitions changed; if intended, re-record with "
        "FLYWHEEL_UPDATE_SNAPSHOTS=1 and review the diff of tests/snapshots/definitions.json"
    )


def test_every_lifecycle_stage_is_an_asset_with_a_description_and_owner():
    graph = defs.resolve_asset_graph()
    for name in ("raw_agent_logs", "redacted_trajectories", "dataset_release"):
        node = graph.get(dg.AssetKey(name))
        assert node.description and node.owners, name
