"""A snapshot of the code location as an analyst sees it in the Dagster UI: every asset with
its upstream edges, description, owners, group, kinds, tags, automation condition,
partitioning and checks (blocking or not); every job, schedule and sensor with what it runs
and when. An unintended change fails here; an intended one is recorded with
`FLYWHEEL_UPDATE_SNAPSHOTS=1 make test` and reviewed in the diff."""

import json
import os
import re
from pathlib import Path

import dagster as dg

from pipeline.definitions import defs

SNAPSHOT = Path(__file__).resolve().parent.parent / "snapshots" / "definitions.json"


def condition_text(condition: dg.AutomationCondition | None) -> str | None:
    """An automation condition as the UI names it: its label, else its operands' labels
    joined by the operator (`eager & all_deps_blocking_checks_passed`)."""
    if condition is None:
        return None
    if condition.get_label():
        return condition.get_label()
    operands = [condition_text(c) for c in getattr(condition, "operands", ())]
    if operands:
        return "(" + f" {'&' if condition.name == 'AND' else '|'} ".join(operands) + ")"
    operand = getattr(condition, "operand", None)
    if condition.name == "NOT" and operand is not None:
        return f"~{condition_text(operand)}"
    return condition.name


# dagster-dbt appends each model's SQL to its description; the SQL has its own diff.
RAW_SQL = re.compile(r"\s*#### Raw SQL:.*", re.S)


def describe_asset(graph, key: dg.AssetKey) -> dict:
    node = graph.get(key)
    return {
        "description": RAW_SQL.sub("", node.description) if node.description else None,
        "owners": sorted(node.owners),
        "group": node.group_name,
        "kinds": sorted(node.kinds),
        "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/kind/")},
        "automation_condition": condition_text(node.automation_condition),
        "partitions": str(node.partitions_def) if node.partitions_def else None,
        "upstream": sorted(k.to_user_string() for k in node.parent_keys),
        "checks": {c.name: "blocking" if graph.get(c).blocking else "non-blocking"
                   for c in sorted(node.check_keys, key=lambda c: c.name)},
    }


def describe_definitions() -> dict:
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    repo = defs.get_repository_def()
    return {
        "assets": {k.to_user_string(): describe_asset(graph, k) for k in keys if graph.get(k).is_materializable},
        "jobs": {
            job.name: {
                "description": job.description,
                "partitioned": job.partitions_def is not None,
                "run_tags": dict(sorted(job.run_tags.items())),  # what the run queue limits by
                "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
            }
            for job in sorted(repo.get_all_jobs(), key=lambda j: j.name) if not job.name.startswith("__")
        },
        "schedules": {
            s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                     "default_status": s.default_status.value, "description": s.description}
            for s in repo.schedule_defs
        },
        "sensors": {
            s.name: {"type": type(s).__name__, "jobs": sorted(t.job_name for t in s.targets),
                     "minimum_interval_seconds": s.minimum_interval_seconds,
                     "default_status": s.default_status.value, "description": s.description}
            for s in repo.sensor_defs
        },
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


def test_every_asset_has_a_description_and_an_owner():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            assert node.description and node.owners, key.to_user_string()
