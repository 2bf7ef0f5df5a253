"""`flywheel bench reliability`: the counts that say nothing was lost and nothing leaked.

1. inputs: the hostile-input corpus through ingestion (records tried, ingested,
   quarantined, lost, peak memory);
2. faults: the scenarios of `pipeline.harness.fault_scenarios` in a throwaway lakeFS server
   of our own (`pipeline.harness.throwaway_stack`): the release process, or the lakeFS
   server under it, SIGKILLed at each release failpoint, then the release re-run; ingestion
   SIGKILLed after its raw commit and inside its warehouse write, then re-run;
3. secrets: every configured credential and every planted secret searched for in what the
   pipeline derived (logs, Data Docs, reports, failure summaries, the Dagster event log,
   the MLflow store, the datasets repository), where those are reachable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.harness.fault_scenarios import ingestion_fault_scenarios, release_fault_scenarios
from pipeline.harness.throwaway_stack import throwaway_lakefs
from pipeline.settings import Settings


def scan_secrets(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    from pipeline.harness.secret_scan import (
        known_secrets,
        scan_for_secrets,
        texts_from_dagster,
        texts_from_lakefs,
        texts_from_mlflow,
        texts_from_tree,
    )

    secrets = known_secrets(settings)
    leaks, scanned, not_scanned = [], [], []
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
