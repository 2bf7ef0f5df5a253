"""`flywheel bench reliability`: the counts that say nothing was lost and nothing leaked.

1. inputs: the hostile-input corpus through ingestion (records tried, ingested,
   quarantined, lost, peak memory);
2. faults: the release process, or the lakeFS server under it, SIGKILLed at each release
   failpoint (a throwaway server on a persistent KV, restarted after each kill), then the
   release re-run: main must never be partly updated, and exactly one release must result;
   ingestion SIGKILLed after its raw commit and inside its warehouse write, then re-run:
   nothing of the killed attempt visible, the same table digests as an uninterrupted run;
3. secrets: every configured credential and every planted secret searched for in what the
   pipeline derived (logs, Data Docs, reports, failure summaries, the Dagster event log,
   the MLflow store, the datasets repository), where those are reachable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from pipeline.shell.failpoints import without_failpoints
from pipeline.settings import Settings

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


def throwaway_stack_settings(base: Settings) -> Settings:
    """Settings for services of our own: a temp state directory and free loopback ports."""
    from dataclasses import replace

    from pipeline.shell.local_stack import free_port

    state_dir = Path(tempfile.mkdtemp(prefix="flywheel-faults-"))
    lakefs_port, mlflow_port = free_port(), free_port()
    return replace(
        base, state_dir=state_dir,
        lakefs_port=lakefs_port, lakefs_endpoint=f"http://127.0.0.1:{lakefs_port}",
        mlflow_port=mlflow_port, mlflow_tracking_uri=f"http://127.0.0.1:{mlflow_port}",
        mlflow_backend_store_uri=f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}",
    )


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

    from pipeline.shell.release import content_digest, install_hooks, publish
    from pipeline.shell.local_stack import running_pid, services, start_service

    lakefs_service = next(s for s in services(stack) if s.name == "lakefs")
    new_digest = content_digest(NEW_RELEASE)
    new_files = json.dumps({k: v.decode() for k, v in NEW_RELEASE.items()})
    scenarios = []
    for n, (victim, point, delay_ms) in enumerate(RELEASE_FAULTS):
        repo = lakefs.Repository(f"faults-{n}", client=client).create(storage_namespace=f"local://faults-{n}")
        install_hooks(repo)
        publish(repo, OLD_RELEASE, run_id=f"seed-{n}", day="2026-11-20",
                verdict={"verdict": "passed", "reasons": []}, metadata={})
        argv = [sys.executable, "-c", _PUBLISH, stack.lakefs_endpoint, repo.id]
        clean_env = without_failpoints(dict(os.environ))
        fault_env = {**clean_env, "FLYWHEEL_FAILPOINT": point}
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
            "fault_injected": crashed.returncode == -signal.SIGKILL if victim == "run" else server_killed,
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
        "faults_injected": sum(s["fault_injected"] for s in scenarios),
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

    def ingest(db: Path, failpoint: str | None) -> subprocess.CompletedProcess:
        run_env = {**clean_env, "FLYWHEEL_FAILPOINT": failpoint} if failpoint else clean_env
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
            "fault_injected": killed.returncode == -signal.SIGKILL,
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
        "faults_injected": sum(s["fault_injected"] for s in scenarios),
        "scenarios": scenarios,
        "tables_differing": sum(len(s["tables_differing"]) + (not s["rerun_ok"]) for s in scenarios),
        "rows_visible_after_kill": sum(s["rows_visible_after_kill"] for s in scenarios),
    }


def scan_secrets(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    from pipeline.harness.secret_scan import (
        known_secrets, scan_for_secrets, texts_from_dagster, texts_from_lakefs, texts_from_mlflow,
        texts_from_tree,
    )

    secrets = known_secrets(settings)
    sources: dict[str, Any] = {}
    derived = [settings.logs_dir, settings.gx_dir, settings.state_dir / "reports",
               settings.state_dir / "failures"]
    sources["files"] = (t for d in derived if d.exists() for t in texts_from_tree(d))
    try:
        import dagster as dg

        from pipeline.shell.local_stack import prepare_dagster_home

        os.environ.setdefault("DAGSTER_HOME", str(prepare_dagster_home(settings)))
        sources["dagster"] = texts_from_dagster(dg.DagsterInstance.get())
    except Exception as error:  # noqa: BLE001 - report what could not be scanned
        log(f"dagster event log not scanned: {error}")
        not_scanned.append("dagster")
    leaks, scanned, not_scanned = [], [], []
    for name, texts in sources.items():
        leaks += scan_for_secrets(texts, secrets)
        scanned.append(name)
    from pipeline.orchestration.resources import fail_fast_mlflow_requests

    fail_fast_mlflow_requests()  # a stopped stack is reported in seconds, not minutes
    for name, collect in (
        ("mlflow", lambda: texts_from_mlflow(settings.mlflow_tracking_uri)),
        ("lakefs-datasets", lambda: texts_from_lakefs(_datasets_repo(settings), "main")),
    ):
        try:
            leaks += scan_for_secrets(collect(), secrets)
            scanned.append(name)
        except Exception as error:  # noqa: BLE001
            log(f"{name} not scanned (is the stack up?): {type(error).__name__}")
            not_scanned.append(name)
    return {"secrets_checked": len(secrets), "places_scanned": scanned, "places_not_scanned": not_scanned,
            "secrets_leaked": len(leaks), "leaks": [str(leak) for leak in leaks[:20]]}


def _datasets_repo(settings: Settings) -> Any:
    from pipeline.orchestration.resources import LakeFSResource

    return LakeFSResource(endpoint=settings.lakefs_endpoint).repository(settings.datasets_repo)


def run_reliability(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    from pipeline.benchmarks.hostile_ingestion import run_hostile_ingestion
    from pipeline.simulator import simulate

    log("hostile inputs through ingestion ...")
    inputs = run_hostile_ingestion(1200, 13)
    with throwaway_lakefs(settings) as (stack, client), tempfile.TemporaryDirectory() as work:
        log("killing the run and the lakeFS server at each release failpoint ...")
        releases = release_fault_scenarios(stack, client, log)
        log("killing ingestion mid-way ...")
        simulate(days=1, per_day=40, out_dir=Path(work), seed=3)
        [day] = sorted(p.name for p in (Path(work) / "landing").iterdir())
        ingestion = ingestion_fault_scenarios(
            stack.lakefs_endpoint, day, Path(work),
            env={"FLYWHEEL_LANDING_DIR": str(Path(work) / "landing"), "FLYWHEEL_RAW_REPO": "faults-raw"}, log=log)
    log("scanning derived data for secrets ...")
    secrets = scan_secrets(settings, log)
    return {
        "inputs_tried": inputs["records_tried"],
        "records_ingested": inputs["ingested"],
        "records_quarantined": inputs["quarantined"],
        "records_lost": inputs["lost"],
        "ingestion_peak_rss_mb": inputs["peak_rss_mb"],
        "faults_injected": releases["faults_injected"] + ingestion["faults_injected"],
        "main_partly_updated": releases["partial_main_states"],
        "duplicate_or_missing_releases": releases["duplicate_or_missing_releases"],
        "rows_visible_after_killed_ingestion": ingestion["rows_visible_after_kill"],
        "tables_differing_after_reingestion": ingestion["tables_differing"],
        "secrets_checked": secrets["secrets_checked"],
        "places_scanned": secrets["places_scanned"],
        "places_not_scanned": secrets["places_not_scanned"],
        "secrets_leaked": secrets["secrets_leaked"],
        "leaks": secrets["leaks"],
    }
