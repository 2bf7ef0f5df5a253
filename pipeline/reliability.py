"""`flywheel bench reliability`: the counts that say nothing was lost and nothing leaked.

1. inputs: the hostile-input corpus through ingestion (records tried, ingested,
   quarantined, lost, peak memory);
2. faults: a real release process SIGKILLed at each release failpoint against a throwaway
   lakeFS server, then re-run (releases made must be exactly one per scenario, main never
   partly updated);
3. secrets: every configured credential and every planted secret searched for in what the
   pipeline derived (logs, Data Docs, reports, failure summaries, the Dagster event log,
   the MLflow store, the datasets repository), where those are reachable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from pipeline.settings import Settings

FAILPOINTS = ("release.after_commit", "release.after_merge")
_PUBLISH = """
import sys, lakefs
from pipeline.release import install_hooks, publish
client = lakefs.Client(host=sys.argv[1], username=sys.argv[2], password=sys.argv[3])
repo = lakefs.Repository("reliability", client=client)
publish(repo, {"data.parquet": sys.argv[5].encode()}, run_id=sys.argv[4], day="2026-11-21",
        verdict={"verdict": "passed", "reasons": []}, metadata={})
"""


def inject_release_faults(settings: Settings) -> dict[str, Any]:
    from pipeline.stack import (
        ensure_lakefs_binary, free_port, lakefs_env, stop_process_group, wait_until_healthy,
    )

    binary = ensure_lakefs_binary(settings)
    data_dir = Path(tempfile.mkdtemp(prefix="flywheel-reliability-"))
    port = free_port()
    log = data_dir / "lakefs.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(binary), "run"], stdout=out, stderr=subprocess.STDOUT,
                                  env=lakefs_env(settings, database="mem", data_dir=data_dir, port=port),
                                  start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    scenarios = []
    try:
        wait_until_healthy("lakefs", f"{endpoint}/_health", server, log, timeout=60)
        import lakefs

        client = lakefs.Client(host=endpoint, username=settings.lakefs_access_key_id,
                               password=settings.lakefs_secret_access_key.reveal())
        repo = lakefs.Repository("reliability", client=client).create(
            storage_namespace="local://reliability", exist_ok=True)
        from pipeline.release import install_hooks

        install_hooks(repo)
        args = [endpoint, settings.lakefs_access_key_id, settings.lakefs_secret_access_key.reveal()]
        for n, point in enumerate(FAILPOINTS):
            content = f"scenario {n}: {point}"  # new content per scenario: a new release each
            killed = subprocess.run([sys.executable, "-c", _PUBLISH, *args, f"kill-{n}", content],
                                    env={**os.environ, "FLYWHEEL_FAILPOINT": point}, capture_output=True)
            rerun = subprocess.run([sys.executable, "-c", _PUBLISH, *args, f"rerun-{n}", content],
                                   env={k: v for k, v in os.environ.items() if k != "FLYWHEEL_FAILPOINT"},
                                   capture_output=True)
            scenarios.append({
                "failpoint": point,
                "killed": killed.returncode == -signal.SIGKILL,
                "rerun_ok": rerun.returncode == 0,
                "releases": len(list(repo.tags(prefix="dataset-"))),
            })
    finally:
        stop_process_group(server.pid)
    # after scenario n exactly n + 1 releases exist: one per scenario, none duplicated or lost
    wrong = sum(abs(s["releases"] - (n + 1)) + (not s["rerun_ok"]) for n, s in enumerate(scenarios))
    return {
        "faults_injected": sum(s["killed"] for s in scenarios),
        "scenarios": scenarios,
        "duplicate_or_missing_releases": wrong,
    }


def scan_secrets(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    from pipeline.secret_scan import (
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

        os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
        sources["dagster"] = texts_from_dagster(dg.DagsterInstance.get())
    except Exception as error:  # noqa: BLE001 - report what could not be scanned
        log(f"dagster event log not scanned: {error}")
    leaks, scanned = [], []
    for name, texts in sources.items():
        leaks += scan_for_secrets(texts, secrets)
        scanned.append(name)
    for name, collect in (
        ("mlflow", lambda: texts_from_mlflow(settings.mlflow_tracking_uri)),
        ("lakefs-datasets", lambda: texts_from_lakefs(_datasets_repo(settings), "main")),
    ):
        try:
            leaks += scan_for_secrets(collect(), secrets)
            scanned.append(name)
        except Exception as error:  # noqa: BLE001
            log(f"{name} not scanned (is the stack up?): {type(error).__name__}")
    return {"secrets_checked": len(secrets), "places_scanned": scanned,
            "secrets_leaked": len(leaks), "leaks": [str(leak) for leak in leaks[:20]]}


def _datasets_repo(settings: Settings) -> Any:
    from pipeline.resources import LakeFSResource

    return LakeFSResource(endpoint=settings.lakefs_endpoint).repository(settings.datasets_repo)


def run_reliability(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    from pipeline.hostile import run_hostile_ingestion

    log("hostile inputs through ingestion ...")
    inputs = run_hostile_ingestion(1200, 13)
    log("killing releases at each failpoint ...")
    faults = inject_release_faults(settings)
    log("scanning derived data for secrets ...")
    secrets = scan_secrets(settings, log)
    return {
        "inputs_tried": inputs["records_tried"],
        "records_ingested": inputs["ingested"],
        "records_quarantined": inputs["quarantined"],
        "records_lost": inputs["lost"],
        "ingestion_peak_rss_mb": inputs["peak_rss_mb"],
        "faults_injected": faults["faults_injected"],
        "duplicate_or_missing_releases": faults["duplicate_or_missing_releases"],
        "secrets_checked": secrets["secrets_checked"],
        "places_scanned": secrets["places_scanned"],
        "secrets_leaked": secrets["secrets_leaked"],
        "leaks": secrets["leaks"],
    }
