"""The terminal a user watches: bad arguments are one line and exit status 2; `flywheel run`
prints one line per step and a summary while Dagster's log stream goes to a file (and to
the terminal with -v). The runs use small stand-in jobs of the same names as the real ones
on the test's own Dagster instance, so no service is needed."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.orchestration.in_process import RUN_LOG, JobFailed, run_main_job
from pipeline.orchestration.terminal import RunTotals, key_figure
from pipeline.settings import get_settings

DAY = "2026-11-16"


@pytest.mark.parametrize("args", [
    ["run", "--partition", "2026-13-45"],  # malformed
    ["run", "--partition", "20261116"],  # a date, but not the YYYY-MM-DD a partition key is
    ["run", "--partition", "2020-01-01"],  # before the first partition
    ["run", "--partition", "2999-01-01"],  # after the last
    ["forget", "--user", ""],
    ["forget", "--user", "   "],
    ["simulate", "--days", "-1"],
    ["simulate", "--per-day", "0"],
    ["bench", "dedup", "--n", "0"],
    ["no-such-command"],
])
def test_a_bad_argument_is_one_line_and_exit_status_2(args):
    result = CliRunner().invoke(main, args, prog_name="flywheel")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("flywheel") and "Traceback" not in result.output


def test_a_blank_user_is_not_recorded(monkeypatch):
    recorded = []
    monkeypatch.setattr("pipeline.shell.warehouse.record_consent_revocation", lambda *a: recorded.append(a))
    assert CliRunner().invoke(main, ["forget", "--user", ""]).exit_code == 2
    assert recorded == []


def test_key_figures_name_what_each_step_did():
    assert key_figure([("raw_agent_logs", {"records_ingested": 40, "records_quarantined": 3})], []) \
        == "40 ingested, 3 quarantined"
    assert key_figure([("fine_tuned_model", {"model_version": 2, "initial_loss": 2.5, "final_loss": 0.75})], []) \
        == "v2, loss 2.500 -> 0.750"
    assert key_figure([("evaluation_report", {
        "headline": {"challenger.action_accuracy": "9/60 = 0.150 [0.08, 0.26]", "challenger.pass_hat_k": "1/6"},
        "promotion": "not promoted"})], []) == "challenger action_accuracy 9/60 = 0.150 [0.08, 0.26]; not promoted"
    assert key_figure([("marts/a", {}), ("marts/b", {})], [("marts/a:unique", True), ("marts/b:gx", False)]) \
        == "2 assets; checks: 1 passed, 1 failed (marts/b:gx)"


def _definitions(fail_downstream: bool = False) -> dg.Definitions:
    """Stand-ins for the code location: an ingest job of one partitioned step and a downstream
    job of one checked step, under the real jobs' names."""
    days = dg.StaticPartitionsDefinition([DAY])

    @dg.asset(name="raw_agent_logs", partitions_def=days)
    def raw(context) -> dg.MaterializeResult:
        context.log.debug("parsing the day's files")
        print("a tool's own output")  # as dbt's log lines are printed by dagster-dbt
        return dg.MaterializeResult(metadata={"records_ingested": 40, "records_quarantined": 3})

    @dg.asset(name="fine_tuned_model", deps=[raw],
              check_specs=[dg.AssetCheckSpec("loss_is_finite", asset="fine_tuned_model")])
    def model() -> dg.MaterializeResult:
        if fail_downstream:
            raise RuntimeError("the tracking server went away")
        return dg.MaterializeResult(
            metadata={"model_version": 2, "initial_loss": 2.5, "final_loss": 0.75},
            check_results=[dg.AssetCheckResult(check_name="loss_is_finite", passed=True)])

    return dg.Definitions(assets=[raw, model], jobs=[
        dg.define_asset_job("ingest_job", selection=[raw]),
        dg.define_asset_job("curate_release_train_job", selection=[model]),
    ])


def test_run_prints_one_line_per_step_and_a_summary_and_logs_dagster_to_a_file(capsys):
    lines: list[str] = []
    run_main_job(_definitions(), [DAY], echo=lines.append)
    steps = [line for line in lines if line.startswith("  ")]
    assert steps[0].split()[:2] == ["raw_agent_logs", "ok"] and steps[0].endswith("40 ingested, 3 quarantined")
    assert steps[1].split()[:2] == ["fine_tuned_model", "ok"]
    assert steps[1].endswith("v2, loss 2.500 -> 0.750; checks: 1 passed")
    [summary] = [line for line in lines if line.startswith("summary")]
    assert "1 day(s) ingested: 40 records, 3 quarantined" in summary and "checks: 1 passed, 0 failed" in summary
    log = (get_settings().logs_dir / RUN_LOG).read_text()
    assert "STEP_START" in log and "parsing the day's files" in log  # Dagster's DEBUG stream
    assert "a tool's own output" in log
    terminal = capsys.readouterr()
    assert "STEP_START" not in terminal.err and "a tool's own output" not in terminal.out


def test_run_verbose_also_shows_the_dagster_stream(capsys):
    run_main_job(_definitions(), [DAY], echo=lambda line: None, verbose=True)
    assert "STEP_START" in capsys.readouterr().err


def test_a_failed_step_is_a_line_and_the_error_names_it():
    lines: list[str] = []
    with pytest.raises(JobFailed, match="fine_tuned_model: RuntimeError: the tracking server went away|"
                                        "fine_tuned_model: the tracking server went away"):
        run_main_job(_definitions(fail_downstream=True), [DAY], echo=lines.append)
    assert any(line.split()[:2] == ["fine_tuned_model", "FAILED"] for line in lines)
    assert any(line.startswith("summary") for line in lines)


def test_totals_add_up_over_runs():
    totals = RunTotals()
    for _ in range(2):
        totals.add([("raw_agent_logs", {"records_ingested": 5, "records_quarantined": 1})], [("x:c", True)])
    assert totals.summary(61.5) == "summary (1m 01.5s): 2 day(s) ingested: 10 records, 2 quarantined; " \
        "checks: 2 passed, 0 failed"


def test_an_rl_run_names_its_model_and_its_evaluation():
    totals = RunTotals()
    totals.add([("rl_tuned_model", {"model_version": 4, "parent_version": 3, "episodes": 12,
                                    "verified_reward_last_step": 0.25})], [])
    totals.add([("rl_evaluation_report", {"headline": {"challenger.action_accuracy": "22/60 = 0.367 [0.256, 0.493]"},
                                          "promotion": "not promoted"})], [])
    assert totals.summary(600) == (
        "summary (10m 00.0s): RL model v4 from v3, 12 episodes, verified reward at the last step 0.25; "
        "RL evaluation challenger action_accuracy 22/60 = 0.367 [0.256, 0.493]; not promoted")
    assert key_figure([("rl_tuned_model", {"model_version": 4, "reused_existing_version": True})], []) == (
        "v4 reused (same release, config and code)")
