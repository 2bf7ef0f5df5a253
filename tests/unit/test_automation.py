"""The sensor's change detection and the schedule's partition choice, without a daemon."""

from datetime import UTC, datetime

import dagster as dg

from pipeline.definitions import defs
from pipeline.orchestration.automation import changed_days, landing_fingerprints


def test_fingerprints_change_only_with_the_files(tmp_path):
    day = tmp_path / "2026-11-20"
    day.mkdir()
    (day / "a.jsonl").write_text("{}\n")
    (tmp_path / "not-a-day").mkdir()
    first = landing_fingerprints(tmp_path)
    assert list(first) == ["2026-11-20"]
    assert landing_fingerprints(tmp_path) == first
    assert changed_days(first, landing_fingerprints(tmp_path)) == []
    (day / "b.jsonl").write_text("{}\n")
    assert changed_days(first, landing_fingerprints(tmp_path)) == ["2026-11-20"]
    second = landing_fingerprints(tmp_path)
    (day / "tau_retail").mkdir()  # `flywheel import` copies under a hidden name, then renames
    (day / "tau_retail" / ".results.json.importing").write_text("[")
    assert changed_days(second, landing_fingerprints(tmp_path)) == []
    (day / "tau_retail" / ".results.json.importing").rename(day / "tau_retail" / "results.json")
    assert changed_days(second, landing_fingerprints(tmp_path)) == ["2026-11-20"]


def test_sensor_requests_each_new_day_once(tmp_path, monkeypatch):
    from pipeline.settings import get_settings

    monkeypatch.setenv("FLYWHEEL_LANDING_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        sensor = defs.resolve_sensor_def("new_landing_files")
        (tmp_path / "2026-11-20").mkdir()
        (tmp_path / "2026-11-20" / "a.jsonl").write_text("{}\n")
        repo = defs.get_repository_def()
        first = sensor.evaluate_tick(dg.build_sensor_context(cursor=None, repository_def=repo))
        assert [r.partition_key for r in first.run_requests] == ["2026-11-20"]
        again = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, repository_def=repo))
        assert again.run_requests == []
        (tmp_path / "2026-11-21").mkdir()
        (tmp_path / "2026-11-21" / "a.jsonl").write_text("{}\n")
        third = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, repository_def=repo))
        assert [r.partition_key for r in third.run_requests] == ["2026-11-21"]
        assert third.run_requests[0].run_key != first.run_requests[0].run_key
    finally:
        get_settings.cache_clear()


def test_nightly_schedule_runs_the_day_that_ended():
    schedule = defs.resolve_schedule_def("nightly_retrain")
    assert schedule.cron_schedule == "0 2 * * *"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-21"
    assert schedule.job_name == "nightly_retrain_job"


def test_a_failure_retrying_cannot_fix_fails_at_once_and_says_what_to_do(tmp_path):
    """Steps retry transient errors (TRANSIENT_RETRY); a missing release is not one."""
    from assets.training import fine_tuned_model
    from pipeline.orchestration.resources import LakeFSResource, MlflowResource

    result = dg.materialize(
        [fine_tuned_model], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        resources={"lakefs": LakeFSResource(endpoint="http://127.0.0.1:9"),
                   "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")},
    )
    assert not result.success
    types = [event.event_type_value for event in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in types and types.count("STEP_FAILURE") == 1
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "no dataset release yet: materialize dataset_release first" in failure.event_specific_data.error.message


def test_downstream_automation_waits_for_upstream_blocking_checks_across_runs():
    """AFTER_BLOCKING_CHECKS (on dataset_release and fine_tuned_model): a failed blocking
    check in one run keeps the next evaluation from starting the downstream asset; once the
    check passes again it is requested."""
    from pipeline.orchestration.automation import AFTER_BLOCKING_CHECKS

    verdict = {"passed": False}

    @dg.asset
    def marts() -> None:
        return None

    @dg.asset_check(asset=marts, blocking=True)
    def marts_valid() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=verdict["passed"])

    @dg.asset(deps=[marts], automation_condition=AFTER_BLOCKING_CHECKS)
    def release() -> None:
        return None

    defs = dg.Definitions(assets=[marts, release], asset_checks=[marts_valid])
    instance = dg.DagsterInstance.ephemeral()

    def requested_after_a_marts_run(passed: bool, cursor):
        verdict["passed"] = passed
        dg.materialize([marts, marts_valid], instance=instance, raise_on_error=False)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        return result.get_num_requested(release.key), result.cursor

    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor  # the first tick
    blocked, cursor = requested_after_a_marts_run(False, cursor)
    assert blocked == 0
    released, _ = requested_after_a_marts_run(True, cursor)
    assert released == 1
