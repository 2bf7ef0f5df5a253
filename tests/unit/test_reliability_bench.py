"""What makes `flywheel bench reliability` fail, from its parts' results (no services): records
lost or not as the manifest says, faults that did not fire, places not scanned, leaks."""

from __future__ import annotations

from typing import Any

from pipeline.benchmarks.reliability import reliability_failures, reliability_summary


def _parts(**changes: Any) -> tuple[dict[str, Any], ...]:
    inputs = {"records_tried": 1200, "ingested": 785, "quarantined": 415, "lost": 0, "peak_rss_mb": 75.0,
              "mismatches": []}
    releases = {"scenarios": [{}] * 8, "faults_fired": 8, "partial_main_states": 0,
                "duplicate_or_missing_releases": 0}
    ingestion = {"scenarios": [{}] * 2, "faults_fired": 2, "rows_visible_after_kill": 0, "tables_differing": 0}
    secrets = {"secrets_checked": 28, "places_scanned": ["files", "dagster", "mlflow", "lakefs-datasets"],
               "places_not_scanned": {}, "secrets_leaked": 0, "leaks": []}
    parts = {"inputs": inputs, "releases": releases, "ingestion": ingestion, "secrets": secrets}
    for key, value in changes.items():
        part, field = key.split("__")
        parts[part] = {**parts[part], field: value}
    return parts["inputs"], parts["releases"], parts["ingestion"], parts["secrets"]


def test_a_clean_run_passes_and_counts_the_scenarios_run_and_the_faults_fired():
    summary = reliability_summary(*_parts())
    assert (summary["fault_scenarios_run"], summary["faults_fired"]) == (10, 10)
    assert summary["records_not_as_the_manifest_says"] == 0
    assert reliability_failures(summary) == []


def test_a_fault_that_did_not_fire_fails_the_bench():
    summary = reliability_summary(*_parts(releases__faults_fired=7))
    assert reliability_failures(summary) == [
        "9 faults fired in 10 scenarios: a scenario whose fault did not fire tested nothing"]


def test_records_not_as_the_manifest_says_are_reported_and_fail_the_bench():
    mismatches = [f"canonical-export.ndjson:{line} (truncated_json): expected quarantined, got ingested"
                  for line in range(1, 31)]
    summary = reliability_summary(*_parts(inputs__mismatches=mismatches))
    assert summary["records_not_as_the_manifest_says"] == 30
    assert summary["mismatches"] == mismatches[:20]  # the first ones, each naming its record
    assert reliability_failures(summary) == ["records_not_as_the_manifest_says is 30, must be 0"]


def test_a_place_not_scanned_and_a_leak_fail_the_bench():
    summary = reliability_summary(*_parts(
        secrets__places_not_scanned={"dagster": "ParserError: while parsing a flow node"},
        secrets__secrets_leaked=1, secrets__leaks=["file:/x/run.log @3: secret #0 (sha256:0123456789ab), plain"]))
    assert reliability_failures(summary) == [
        "secrets_leaked is 1, must be 0",
        "dagster not scanned (ParserError: while parsing a flow node): 0 leaks there proves nothing"]
