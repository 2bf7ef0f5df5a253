"""`flywheel bench reliability`: the counts that say nothing was lost and nothing leaked.

1. inputs: the hostile-input corpus through ingestion (records tried, ingested,
   quarantined, lost, peak memory), and every record's outcome against the corpus manifest;
2. faults: the scenarios of `pipeline.harness.fault_scenarios` in a throwaway lakeFS server
   of our own (`pipeline.harness.throwaway_stack`): the release process, or the lakeFS
   server under it, SIGKILLed at each release failpoint, then the release re-run; ingestion
   SIGKILLed after its raw commit and inside its warehouse write, then re-run. The faults
   that fired are counted from what the failpoints recorded, against the scenarios run;
3. secrets: every configured credential and every planted secret searched for in what the
   pipeline derived (logs, Data Docs, reports, failure summaries, the Dagster event log,
   the MLflow store, the datasets repository). A place that cannot be read, or holds no
   text, is reported not scanned.

`reliability_failures` says why the bench fails: any record lost or not as the manifest
says, a fault that did not fire, a partial release, a leak, a place not scanned.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipeline.harness.fault_scenarios import ingestion_fault_scenarios, release_fault_scenarios
from pipeline.harness.throwaway_stack import throwaway_lakefs
from pipeline.settings import Settings


def scan_secrets(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Every known secret searched for in every place derived data ends up. A place that
    cannot be opened (the Dagster instance cannot be loaded, the stack is down), fails while
    it is read, or yields no text is reported not scanned, with the reason, never a crash."""
    from pipeline.harness.secret_scan import (
        known_secrets,
        scan_place,
        texts_from_dagster,
        texts_from_lakefs,
        texts_from_mlflow,
        texts_from_tree,
    )
    from pipeline.orchestration.resources import fail_fast_mlflow_requests

    secrets = known_secrets(settings)
    derived = [settings.logs_dir, settings.gx_dir, settings.state_dir / "reports",
               settings.state_dir / "failures"]
    fail_fast_mlflow_requests()  # a stopped stack is reported in seconds, not minutes
    places: dict[str, Callable[[], Iterable[tuple[str, str]]]] = {
        "files": lambda: (t for d in derived if d.exists() for t in texts_from_tree(d)),
        "dagster": lambda: texts_from_dagster(_dagster_instance(settings)),
        "mlflow": lambda: texts_from_mlflow(settings.mlflow_tracking_uri),
        "lakefs-datasets": lambda: texts_from_lakefs(_datasets_repo(settings), "main"),
    }
    scans = []
    for name, collect in places.items():
        scans.append(scan := scan_place(name, collect, secrets))
        if not scan.scanned:
            log(f"{name} not scanned: {scan.not_scanned_because}")
    leaks = [leak for scan in scans for leak in scan.leaks]
    return {"secrets_checked": len(secrets),
            "places_scanned": [scan.place for scan in scans if scan.scanned],
            "places_not_scanned": {scan.place: scan.not_scanned_because for scan in scans if not scan.scanned},
            "secrets_leaked": len(leaks), "leaks": [str(leak) for leak in leaks[:20]]}


def _dagster_instance(settings: Settings) -> Any:
    import dagster as dg

    from pipeline.shell.local_stack import prepare_dagster_home

    os.environ.setdefault("DAGSTER_HOME", str(prepare_dagster_home(settings)))
    return dg.DagsterInstance.get()


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
    return reliability_summary(inputs, releases, ingestion, secrets)


def reliability_summary(inputs: dict[str, Any], releases: dict[str, Any], ingestion: dict[str, Any],
                        secrets: dict[str, Any]) -> dict[str, Any]:
    """The bench's counts from its three parts (`run_hostile_ingestion`, the two fault scenario
    runs, `scan_secrets`)."""
    return {
        "inputs_tried": inputs["records_tried"],
        "records_ingested": inputs["ingested"],
        "records_quarantined": inputs["quarantined"],
        "records_lost": inputs["lost"],
        "records_not_as_the_manifest_says": len(inputs["mismatches"]),
        "ingestion_peak_rss_mb": inputs["peak_rss_mb"],
        "fault_scenarios_run": len(releases["scenarios"]) + len(ingestion["scenarios"]),
        "faults_fired": releases["faults_fired"] + ingestion["faults_fired"],
        "main_partly_updated": releases["partial_main_states"],
        "duplicate_or_missing_releases": releases["duplicate_or_missing_releases"],
        "rows_visible_after_killed_ingestion": ingestion["rows_visible_after_kill"],
        "tables_differing_after_reingestion": ingestion["tables_differing"],
        "secrets_checked": secrets["secrets_checked"],
        "places_scanned": secrets["places_scanned"],
        "places_not_scanned": secrets["places_not_scanned"],
        "secrets_leaked": secrets["secrets_leaked"],
        "mismatches": inputs["mismatches"][:20],
        "leaks": secrets["leaks"],
    }


MUST_BE_ZERO = ("records_lost", "records_not_as_the_manifest_says", "secrets_leaked", "main_partly_updated",
                "duplicate_or_missing_releases", "rows_visible_after_killed_ingestion",
                "tables_differing_after_reingestion")


def reliability_failures(summary: dict[str, Any]) -> list[str]:
    """Why the bench fails, one line each (empty: it passes)."""
    failures = [f"{key} is {summary[key]}, must be 0" for key in MUST_BE_ZERO if summary[key]]
    if summary["faults_fired"] != summary["fault_scenarios_run"]:
        failures.append(f"{summary['faults_fired']} faults fired in {summary['fault_scenarios_run']} scenarios: "
                        "a scenario whose fault did not fire tested nothing")
    failures += [f"{place} not scanned ({why}): 0 leaks there proves nothing"
                 for place, why in summary["places_not_scanned"].items()]
    return failures
