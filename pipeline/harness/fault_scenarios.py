"""Fault scenarios with real processes: the release process, or the lakeFS server under
it, SIGKILLed at each release failpoint and the release re-run (main never partly updated,
exactly one release); ingestion SIGKILLed after its raw commit and inside its warehouse write
and re-run (nothing of the killed attempt visible, the same table digests). Whether each
fault fired is what the failpoint recorded (FLYWHEEL_FAILPOINT_RECORD), not a guess from exit
codes. The integration tests assert each scenario; `flywheel bench reliability` counts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.settings import Settings
from pipeline.shell.failpoints import fired_failpoints, without_failpoints

# (who is killed, failpoint, delay in ms): the run process itself, or the lakeFS server
# under it. A delayed server kill lands while the merge request is in flight.
RELEASE_FAULTS = (
    ("run", "release.after_commit", 0),
    ("run", "release.after_merge", 0),
    ("lakefs", "release.before_commit", 0),
    ("lakefs", "release.after_commit", 0),
    *(("lakefs", "release.after_commit", delay) for delay in (1, 5, 25)),
    ("lakefs", "release.after_merge", 0),
)
OLD_RELEASE = {"a.parquet": b"old a", "b.parquet": b"old b"}
NEW_RELEASE = {"a.parquet": b"new a", "b.parquet": b"new b"}
# Credentials come from the settings (environment), never the command line (`ps` shows it).
_PUBLISH = """
import json, sys
from pipeline.shell.release import publish
from pipeline.orchestration.resources import LakeFSResource
publish(LakeFSResource(endpoint=sys.argv[1]).repository(sys.argv[2]),
        {k: v.encode() for k, v in json.loads(sys.argv[4]).items()}, run_id=sys.argv[3],
        day="2026-11-21", verdict={"verdict": "passed", "reasons": []}, metadata={})
"""


def _main_state(repo: Any) -> str:
    """"old", "new", or "partial": what main's datasets/ hold right now."""
    from pipeline.shell.release import DATA_PREFIX

    main = repo.ref("main")
    held = {}
    for name in NEW_RELEASE:
        try:
            with main.object(DATA_PREFIX + name).reader(mode="rb") as handle:
                held[name] = handle.read()
        except Exception:  # noqa: BLE001 - a missing object is one of the partial states
            held[name] = None
    return "old" if held == OLD_RELEASE else "new" if held == NEW_RELEASE else "partial"


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][:300]


def release_fault_scenarios(stack: Settings, client: Any, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Kill the run or the lakeFS server (of `throwaway_lakefs`) at each release failpoint,
    then re-run.

    The server is restarted on the same data after each kill. Each scenario starts from a
    repository whose main holds an older release; the killed run publishes new content.
    Observed: what main held after the crash (must be all old or all new, never partial)
    and how many releases of the new content exist after the re-run (must be exactly one).
    """
    import lakefs

    from pipeline.shell.local_stack import running_pid, services, start_service
    from pipeline.shell.release import content_digest, install_hooks, publish

    lakefs_service = next(s for s in services(stack) if s.name == "lakefs")
    new_digest = content_digest(NEW_RELEASE)
    new_files = json.dumps({k: v.decode() for k, v in NEW_RELEASE.items()})
    records = stack.state_dir / "failpoints"  # removed with the throwaway stack
    records.mkdir(exist_ok=True)
    scenarios = []
    for n, (victim, point, delay_ms) in enumerate(RELEASE_FAULTS):
        repo = lakefs.Repository(f"faults-{n}", client=client).create(storage_namespace=f"local://faults-{n}")
        install_hooks(repo)
        publish(repo, OLD_RELEASE, run_id=f"seed-{n}", day="2026-11-20",
                verdict={"verdict": "passed", "reasons": []}, metadata={})
        argv = [sys.executable, "-c", _PUBLISH, stack.lakefs_endpoint, repo.id]
        clean_env = without_failpoints(dict(os.environ))
        record = records / f"release-{n}"
        fault_env = {**clean_env, "FLYWHEEL_FAILPOINT": point, "FLYWHEEL_FAILPOINT_RECORD": str(record)}
        if victim == "lakefs":
            fault_env |= {"FLYWHEEL_FAILPOINT_KILL_PGID": str(running_pid(stack, "lakefs")),
                          "FLYWHEEL_FAILPOINT_DELAY_MS": str(delay_ms)}
        crashed = subprocess.run([*argv, f"crash-{n}", new_files], env=fault_env,
                                 capture_output=True, text=True, timeout=300)
        server_killed = victim == "lakefs" and running_pid(stack, "lakefs") is None
        if server_killed:
            start_service(stack, lakefs_service)  # same data directory, same port
        after_crash = _main_state(repo)
        rerun = subprocess.run([*argv, f"rerun-{n}", new_files], env=clean_env,
                               capture_output=True, text=True, timeout=300)
        new_releases = [t.id for t in repo.tags(prefix="dataset-")
                        if (t.get_commit().metadata or {}).get("content_digest") == new_digest]
        scenarios.append({
            "killed": victim, "failpoint": point, "delay_ms": delay_ms,
            "fault_fired": fired_failpoints(record) == [point],
            "victim_killed": crashed.returncode == -signal.SIGKILL if victim == "run" else server_killed,
            "crashed_run_error": _last_line(crashed.stderr),
            "main_after_crash": after_crash,
            "rerun_ok": rerun.returncode == 0,
            "rerun_error": _last_line(rerun.stderr) if rerun.returncode else "",
            "new_releases": len(new_releases),
            "main_after_rerun": _main_state(repo),
        })
        log(f"  {victim} killed at {point}" + (f" +{delay_ms} ms" if delay_ms else "")
            + f": main after crash {after_crash}, releases after re-run {len(new_releases)}")
    wrong = [s for s in scenarios if s["main_after_crash"] == "partial" or not s["rerun_ok"]
             or s["new_releases"] != 1 or s["main_after_rerun"] != "new"]
    return {
        "faults_fired": sum(s["fault_fired"] for s in scenarios),
        "scenarios": scenarios,
        "partial_main_states": sum(s["main_after_crash"] == "partial" for s in scenarios),
        "duplicate_or_missing_releases": len(wrong),
    }


INGESTION_FAULTS = ("ingest.raw_committed", "warehouse.partly_replaced")
_INGEST = """
import sys
import dagster as dg
from dagster_duckdb import DuckDBResource
from assets.ingestion import raw_agent_logs
from assets.redaction import redacted_trajectories
from pipeline.orchestration.resources import LakeFSResource
dg.materialize([raw_agent_logs, redacted_trajectories], partition_key=sys.argv[1],
               resources={"lakefs": LakeFSResource(endpoint=sys.argv[2]),
                          "duckdb": DuckDBResource(database=sys.argv[3])})
"""


def ingestion_fault_scenarios(endpoint: str, partition: str, work_dir: Path, env: dict[str, str] | None = None,
                              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Ingest `partition` (landing and raw repository as the settings, or `env`, say) uninterrupted
    into a reference warehouse; then, per failpoint, SIGKILL a fresh ingestion there (after
    the raw commit; inside the warehouse transaction with part of the rows inserted), check
    that nothing of it is visible, re-run it, and compare every table's digest with the
    reference's (lineage columns naming each run's own raw commit excluded)."""
    import duckdb

    from pipeline.settings import PROJECT_ROOT
    from pipeline.shell.warehouse import RAW_SCHEMA, RAW_TABLES, REDACTED_SCHEMA, partition_digests

    clean_env = without_failpoints({**os.environ, **(env or {})})

    def record(failpoint: str) -> Path:
        return work_dir / f"{failpoint}.fired"

    def ingest(db: Path, failpoint: str | None) -> subprocess.CompletedProcess:
        run_env = clean_env if failpoint is None else {
            **clean_env, "FLYWHEEL_FAILPOINT": failpoint, "FLYWHEEL_FAILPOINT_RECORD": str(record(failpoint))}
        return subprocess.run([sys.executable, "-c", _INGEST, partition, endpoint, str(db)], env=run_env,
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)

    def digests(db: Path) -> dict[str, dict[str, str]]:
        with duckdb.connect(str(db), read_only=True) as con:
            return {schema: partition_digests(con, partition, schema) for schema in (RAW_SCHEMA, REDACTED_SCHEMA)}

    reference_db = work_dir / "reference.duckdb"
    reference = ingest(reference_db, None)
    if reference.returncode:
        raise RuntimeError(f"reference ingestion failed: {_last_line(reference.stderr)}")
    expected = digests(reference_db)
    scenarios = []
    for point in INGESTION_FAULTS:
        db = work_dir / f"{point}.duckdb"
        killed = ingest(db, point)
        visible = 0
        if db.exists():
            with duckdb.connect(str(db), read_only=True) as con:
                visible = sum(con.execute(f"SELECT count(*) FROM {RAW_SCHEMA}.{t} WHERE partition_date = ?",
                                          [partition]).fetchone()[0] for t in RAW_TABLES)
        rerun = ingest(db, None)
        got = digests(db) if rerun.returncode == 0 else {}
        scenarios.append({
            "failpoint": point,
            "fault_fired": fired_failpoints(record(point)) == [point],
            "victim_killed": killed.returncode == -signal.SIGKILL,
            "rows_visible_after_kill": visible,
            "rerun_ok": rerun.returncode == 0,
            "rerun_error": _last_line(rerun.stderr) if rerun.returncode else "",
            "tables_differing": sorted(f"{schema}.{table}" for schema, tables in expected.items()
                                       for table, digest in tables.items()
                                       if got.get(schema, {}).get(table) != digest),
        })
        log(f"  ingestion killed at {point}: {visible} rows visible after the kill, "
            f"{len(scenarios[-1]['tables_differing'])} tables differ after the re-run")
    return {
        "faults_fired": sum(s["fault_fired"] for s in scenarios),
        "scenarios": scenarios,
        "tables_differing": sum(len(s["tables_differing"]) + (not s["rerun_ok"]) for s in scenarios),
        "rows_visible_after_kill": sum(s["rows_visible_after_kill"] for s in scenarios),
    }
