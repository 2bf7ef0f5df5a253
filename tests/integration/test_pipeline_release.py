"""The graph from landing files to a dataset release, through Dagster, on a real lakeFS
server: a clean run publishes exactly the marts; planted violations publish nothing."""

import hashlib
import json
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource
from settings_env import settings_env

from assets.curation import CURATION_ASSETS
from assets.ingestion import raw_agent_logs
from assets.redaction import redacted_trajectories
from assets.release import dataset_release
from assets.validation import gx_checks
from pipeline.orchestration.resources import LakeFSResource, dbt_project, venv_tool
from pipeline.settings import get_settings
from pipeline.shell.marts import MART_KEYS, load_mart, parquet_bytes
from pipeline.simulator import simulate

START = date(2026, 11, 16)
DAYS = [str(START + timedelta(days=i)) for i in range(2)]


@pytest.fixture(scope="module")
def pipeline_env(lakefs_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    simulate(days=len(DAYS), per_day=120, out_dir=root, seed=5, start_date=START)
    db_path = root / "warehouse.duckdb"
    env = {
        "FLYWHEEL_LANDING_DIR": str(root / "landing"),
        "FLYWHEEL_DUCKDB_PATH": str(db_path),
        "FLYWHEEL_RAW_REPO": "raw-release-test",
        "FLYWHEEL_DATASETS_REPO": "datasets-release-test",
    }
    with settings_env(env):
        lakefs = LakeFSResource(endpoint=lakefs_server.endpoint)
        dbt = DbtCliResource(project_dir=dbt_project, dbt_executable=venv_tool("dbt"))
        instance = dg.DagsterInstance.ephemeral()
        for day in DAYS:
            result = dg.materialize(
                [raw_agent_logs, redacted_trajectories], partition_key=day,
                resources={"lakefs": lakefs, "duckdb": DuckDBResource(database=str(db_path))},
            )
            assert result.success
        yield {"root": root, "db": db_path, "lakefs": lakefs, "dbt": dbt, "server": lakefs_server,
               "instance": instance}


def _release(env, db_path, *, with_checks: bool):
    """Materialize dataset_release on a (planted) warehouse without rebuilding the marts,
    with or without the GX checks of those marts in the same run."""
    selection = dg.AssetSelection.assets(dataset_release)
    if with_checks:
        selection |= dg.AssetSelection.checks(*gx_checks)
    return dg.materialize(
        [*CURATION_ASSETS, dataset_release, *gx_checks],
        selection=selection,
        resources={"lakefs": env["lakefs"], "duckdb": DuckDBResource(database=str(db_path)),
                   "dbt": env["dbt"]},
        raise_on_error=False,
    )


def _repo(env):
    return env["server"].repository("datasets-release-test")


def _tags(env):
    return [t.id for t in _repo(env).tags(prefix="dataset-")]


def _metadata(result, key):
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == key:
            return {k: v.value for k, v in materialization.metadata.items()}
    raise AssertionError(f"no materialization of {key}")


def _failure_message(result) -> str:
    """Every step failure's message with its causes (a step that exhausted its retries
    reports that, with the last attempt's error as the cause)."""
    messages = []
    for event in result.all_events:
        error = event.event_specific_data.error if event.is_step_failure else None
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return " ".join(messages)


def _curate_and_release(pipeline_env, db: Path):
    """dbt build + release on another warehouse file (the dbt profile follows the env var)."""
    os.environ["FLYWHEEL_DUCKDB_PATH"] = str(db)
    try:
        result = dg.materialize(
            [*CURATION_ASSETS, dataset_release],
            resources={"lakefs": pipeline_env["lakefs"], "dbt": pipeline_env["dbt"],
                       "duckdb": DuckDBResource(database=str(db))},
            raise_on_error=False,
        )
    finally:
        os.environ["FLYWHEEL_DUCKDB_PATH"] = str(pipeline_env["db"])
    assert result.success, _failure_message(result)
    return result


@pytest.fixture(scope="module")
def published(pipeline_env):
    """One clean curate + validate + release run."""
    result = dg.materialize(
        [*CURATION_ASSETS, dataset_release],
        instance=pipeline_env["instance"],
        resources={"lakefs": pipeline_env["lakefs"], "dbt": pipeline_env["dbt"],
                   "duckdb": DuckDBResource(database=str(pipeline_env["db"]))},
        raise_on_error=False,
    )
    assert result.success, _failure_message(result)
    return _metadata(result, dataset_release.key)


def test_a_clean_run_publishes_exactly_the_marts(pipeline_env, published):
    repo = _repo(pipeline_env)
    assert _tags(pipeline_env) == [published["tag"]]
    assert published["tag"] == f"dataset-{DAYS[-1]}-1"
    with duckdb.connect(str(pipeline_env["db"]), read_only=True) as con:
        for name in MART_KEYS:
            at_tag = repo.ref(published["tag"]).object(f"datasets/{name}.parquet").reader(mode="rb").read()
            assert at_tag == parquet_bytes(load_mart(con, name)), name
    card = json.loads(repo.ref(published["tag"]).object("datasets/data_card.json").reader().read())
    assert card["verdict"] == "passed"
    assert len(card["provenance"]["raw_log_commits"]) == len(DAYS)
    assert card["provenance"]["partitions"] == DAYS
    commit = repo.commit(published["lakefs_commit"]).get_commit()
    assert commit.metadata["validation_verdict"] == "passed"
    assert commit.metadata["raw_log_commits"].count(",") == len(DAYS) - 1
    for uri in published["uris"].values():
        assert uri.startswith(f"lakefs://datasets-release-test/{published['lakefs_merge_commit']}/")


def test_curation_rerun_on_the_same_raw_commits_reproduces_every_mart_digest(pipeline_env, published, tmp_path):
    """A warehouse holding only the ingested tables (same raw commits), curated again from
    scratch by the same code, gives byte-identical marts: the digests the data card records."""
    from pipeline.shell.warehouse import GOVERNANCE_SCHEMA, RAW_SCHEMA, REDACTED_SCHEMA

    db = tmp_path / "rebuilt.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"ATTACH '{pipeline_env['db']}' AS reference (READ_ONLY)")
        for schema in (RAW_SCHEMA, REDACTED_SCHEMA, GOVERNANCE_SCHEMA):
            con.execute(f"CREATE SCHEMA {schema}")
            tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = "
                                 "'reference' AND schema_name = ?", [schema]).fetchall()
            for (table,) in tables:
                con.execute(f"CREATE TABLE {schema}.{table} AS SELECT * FROM reference.{schema}.{table}")
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = "
                               "current_database() AND schema_name = 'marts'").fetchone()[0]
    result = _curate_and_release(pipeline_env, db)

    card = json.loads(_repo(pipeline_env).ref(published["tag"]).object("datasets/data_card.json").reader().read())
    with duckdb.connect(str(db), read_only=True) as con:
        rebuilt = {f"{name}.parquet": hashlib.sha256(parquet_bytes(load_mart(con, name))).hexdigest()
                   for name in MART_KEYS}
    assert rebuilt == card["content_digests"]
    released = _metadata(result, dataset_release.key)
    assert released["reused_existing_release"] is True
    assert (released["tag"], released["content_digest"]) == (published["tag"], published["content_digest"])


def test_ingestion_killed_midway_then_rerun_gives_the_same_tables(pipeline_env, tmp_path):
    """The run process is SIGKILLed after the raw commit, and inside the warehouse write with
    part of the partition inserted; nothing of it is visible, and the re-run's tables equal
    an uninterrupted run's. (`flywheel bench reliability` counts the same scenarios.)"""
    from pipeline.harness.fault_scenarios import INGESTION_FAULTS, ingestion_fault_scenarios

    result = ingestion_fault_scenarios(pipeline_env["server"].endpoint, DAYS[0], tmp_path)
    assert [s["failpoint"] for s in result["scenarios"]] == list(INGESTION_FAULTS)
    for scenario in result["scenarios"]:
        assert scenario["fault_fired"] and scenario["victim_killed"], scenario
        assert scenario["rows_visible_after_kill"] == 0, scenario
        assert scenario["rerun_ok"], scenario
        assert scenario["tables_differing"] == [], scenario
    with duckdb.connect(str(tmp_path / "reference.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.trajectories").fetchone()[0] > 0


def _planted(pipeline_env, tmp_path, sql: str):
    db = tmp_path / "planted.duckdb"
    shutil.copy(pipeline_env["db"], db)
    with duckdb.connect(str(db)) as con:
        con.execute(sql)
    return db


PLANTS = {
    # an address redaction never issued (surrogates are accepted, anything else is a leak)
    "pii": (
        "UPDATE marts.sft_examples SET messages = replace(messages::varchar, '\"role\":\"user\",\"content\":\"', "
        "'\"role\":\"user\",\"content\":\"Write to maria.keller7@gmail.com. ')::json "
        "WHERE record_key = (SELECT min(record_key) FROM marts.sft_examples)",
        "sft_examples",
    ),
    "group_overlap": (
        "INSERT INTO marts.eval_cases SELECT * REPLACE ('leak-' || case_id AS case_id, "
        "(SELECT min(split_group_key) FROM marts.sft_examples) AS split_group_key) "
        "FROM marts.eval_cases LIMIT 1",
        "split_membership",
    ),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_violation_publishes_nothing_and_leaves_evidence(pipeline_env, published, tmp_path, plant):
    sql, failing_suite = PLANTS[plant]
    db = _planted(pipeline_env, tmp_path, sql)
    repo = _repo(pipeline_env)
    main_before = repo.branch("main").get_commit().id

    # With the GX checks in the run, the failing blocking check stops the release.
    gated = _release(pipeline_env, db, with_checks=True)
    failed_checks = [
        e.event_specific_data.check_name for e in gated.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert f"gx_{failing_suite}" in failed_checks
    assert not any(e.is_step_success and e.step_key == "dataset_release" for e in gated.all_events)

    # Released on its own, the release's own audit rejects it and keeps the branch.
    alone = _release(pipeline_env, db, with_checks=False)
    assert not alone.success
    message = _failure_message(alone)
    assert "release rejected, main unchanged" in message and failing_suite in message
    branch = message.split("inspect lakeFS branch '")[1].split("'")[0]

    assert repo.branch("main").get_commit().id == main_before
    assert _tags(pipeline_env) == [published["tag"]]
    verdict = json.loads(repo.ref(branch).object("_validation/verdict.json").reader().read())
    assert verdict["verdict"] == "failed"
    assert verdict["suites"][failing_suite] is False


def test_forgetting_a_user_excludes_them_from_the_next_release(pipeline_env, published, tmp_path):
    from pipeline.shell.audit import find_in_releases
    from pipeline.shell.warehouse import record_consent_revocation

    db = tmp_path / "forget.duckdb"
    shutil.copy(pipeline_env["db"], db)
    with duckdb.connect(str(db)) as con:
        [(user_id,)] = con.execute(
            "SELECT user_id FROM marts.curation_decisions WHERE destination = 'train' "
            "GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1"
        ).fetchall()
        record_consent_revocation(con, user_id, "test")
    result = _curate_and_release(pipeline_env, db)
    new_tag = _metadata(result, dataset_release.key)["tag"]
    assert new_tag != published["tag"]

    hits = {h.tag: h for h in find_in_releases(_repo(pipeline_env), user_id=user_id)}
    assert hits[published["tag"]].used
    assert not hits[new_tag].used
    assert hits[new_tag].rules == ["R14_consent_revoked"]



def test_train_evaluate_promote_and_trace_from_the_release(pipeline_env, published, tmp_path, monkeypatch):
    """The tiny random model of the same architecture stands in for SmolLM2 (seconds)."""
    import mlflow

    from assets.evaluation import evaluation_report
    from assets.training import fine_tuned_model
    from pipeline.orchestration.resources import MlflowResource
    from pipeline.shell.audit import MODEL_NAME, trace_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    resources = {"lakefs": pipeline_env["lakefs"],
                 "mlflow": MlflowResource(tracking_uri=tracking, artifact_root=str(tmp_path / "artifacts"))}
    run_config = {"ops": {
        "fine_tuned_model": {"config": {"base_model": "tiny-random-llama", "max_steps": 3, "dpo_steps": 1,
                                        "max_examples": 4, "max_length": 2048, "dpo": True}},
        "evaluation_report": {"config": {"max_cases": 3, "sandbox_tasks": 1, "k": 1,
                                         "max_new_tokens": 8, "max_turns": 2}},
    }}
    result = dg.materialize([fine_tuned_model, evaluation_report], instance=pipeline_env["instance"],
                            resources=resources, run_config=run_config, raise_on_error=False)
    assert result.success, _failure_message(result)
    trained = _metadata(result, fine_tuned_model.key)
    evaluated = _metadata(result, evaluation_report.key)

    client = resources["mlflow"].client()
    version = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    assert int(version.version) == trained["model_version"]
    assert version.tags["lakefs.commit"] == published["lakefs_merge_commit"]
    assert version.tags["lakefs.tag"] == published["tag"]
    run = client.get_run(version.run_id)
    [dataset_input] = run.inputs.dataset_inputs
    assert json.loads(dataset_input.dataset.source)["uri"] == (
        f"lakefs://datasets-release-test/{published['lakefs_merge_commit']}/datasets/sft_examples.parquet")
    assert len(client.get_metric_history(run.info.run_id, "loss")) >= 1
    # SFT, then DPO on the release's preference pairs, in the same run.
    assert published["rows"]["preference_pairs"] > 0
    assert len(client.get_metric_history(run.info.run_id, "dpo.loss")) >= 1

    # The registered version loads and answers with no network.
    mlflow.set_tracking_uri(tracking)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@challenger")
    import pandas as pd

    [answer] = model.predict(pd.DataFrame({"messages": [json.dumps([{"role": "user", "content": "hi"}])],
                                           "tools": ["[]"]}), params={"max_new_tokens": 4})
    assert set(json.loads(answer)) >= {"content", "tool_calls"}

    # Evaluation compared base and challenger and recorded its decision with reasons.
    assert evaluated["compared_with"] == "base"
    # Three cases, two random models that both fail every one: no gain can be established, so
    # the base stays, the reasons give the interval, and no champion alias is set.
    assert evaluated["promotion"] == "not promoted"
    assert evaluated["improvement"] == 0.0 and evaluated["improvement_95"][0] < 0 < evaluated["improvement_95"][1]
    tags = client.get_model_version(MODEL_NAME, version.version).tags
    assert tags["promotion"] == "not promoted"
    reasons = tags["promotion_reasons"]
    assert reasons.startswith("keep the base: its gain on action_accuracy over the base is not established")
    assert "required: lower bound above 0.000: not met" in reasons
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert Path(evaluated["report"]).read_text().count("challenger") > 0
    assert client.list_artifacts(version.run_id, "evaluation")

    # Lineage from MLflow alone: version -> run -> release -> raw-log commits.
    chain = trace_model(f"{MODEL_NAME}/{version.version}", tracking_uri=tracking,
                        lakefs_client=pipeline_env["lakefs"].client(),
                        datasets_repo="datasets-release-test", raw_repo="raw-release-test")
    assert chain["dataset_release"]["tag"] == published["tag"]
    assert [c["partition"] for c in chain["raw_log_commits"]] == DAYS

    # Re-running training on the same release and config registers nothing new.
    again = dg.materialize([fine_tuned_model], instance=pipeline_env["instance"], resources=resources,
                           run_config={"ops": {"fine_tuned_model": run_config["ops"]["fine_tuned_model"]}})
    assert _metadata(again, fine_tuned_model.key)["reused_existing_version"] is True
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 1

    # Secret hygiene over everything this module's runs produced: every Dagster event (logs,
    # asset metadata, check results), the MLflow store (params, tags, artifacts, the report),
    # and the released data and data cards on the datasets repository's main.
    from pipeline.harness.secret_scan import (
        known_secrets,
        scan_for_secrets,
        texts_from_dagster,
        texts_from_lakefs,
        texts_from_mlflow,
        texts_from_tree,
    )

    secrets = known_secrets(ground_truth_dirs=[pipeline_env["root"] / "ground_truth"])
    planted = [s for s in secrets if s != get_settings().lakefs_secret_access_key.reveal()]
    assert get_settings().lakefs_secret_access_key.reveal() in secrets and len(planted) > 1
    places = {
        "dagster": texts_from_dagster(pipeline_env["instance"]),
        "mlflow": texts_from_mlflow(tracking),
        "lakefs": texts_from_lakefs(_repo(pipeline_env), "main"),
        "report": texts_from_tree(Path(evaluated["report"]).parent),
    }
    for place, texts in places.items():
        texts = list(texts)
        assert texts, f"nothing read from {place}: the scan would prove nothing"
        assert scan_for_secrets(texts, secrets) == [], place

    # The auditor's commands, end to end through the CLI, against the same services.
    _auditor_commands(pipeline_env, published, tracking, version.version, tmp_path, monkeypatch)


def test_rl_from_the_sft_model_is_registered_with_its_lineage_and_evaluated(pipeline_env, published, tmp_path,
                                                                            monkeypatch):
    """rl_job's assets after fine_tuned_model, on the tiny model: GRPO on the release's training
    tasks, per-step rewards in MLflow, a challenger whose parent is the SFT version, evaluated
    against base and SFT on the same cases, and traced back to its parent and release."""
    from assets.evaluation import rl_evaluation_report
    from assets.reinforcement import rl_tuned_model
    from assets.training import fine_tuned_model
    from pipeline.orchestration.resources import MlflowResource
    from pipeline.shell.audit import MODEL_NAME, format_trace, trace_model
    from pipeline.shell.marts import load_rl_tasks, read_parquet
    from pipeline.shell.release import read_release_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    resources = {"lakefs": pipeline_env["lakefs"],
                 "mlflow": MlflowResource(tracking_uri=tracking, artifact_root=str(tmp_path / "artifacts"))}
    evaluation = {"max_cases": 3, "sandbox_tasks": 2, "k": 1, "max_new_tokens": 8, "max_turns": 2}
    run_config = {"ops": {
        "fine_tuned_model": {"config": {"base_model": "tiny-random-llama", "max_steps": 2, "max_examples": 4,
                                        "max_length": 2048}},
        "rl_tuned_model": {"config": {"steps": 2, "tasks_per_step": 1, "group_size": 2, "max_turns": 2,
                                      "max_new_tokens": 6}},
        "rl_evaluation_report": {"config": evaluation},
    }}
    result = dg.materialize([fine_tuned_model, rl_tuned_model, rl_evaluation_report],
                            instance=pipeline_env["instance"], resources=resources, run_config=run_config,
                            raise_on_error=False)
    assert result.success, _failure_message(result)
    sft = _metadata(result, fine_tuned_model.key)
    rl = _metadata(result, rl_tuned_model.key)
    evaluated = _metadata(result, rl_evaluation_report.key)

    commit = published["lakefs_merge_commit"]
    tasks = load_rl_tasks(read_parquet(read_release_file(_repo(pipeline_env), commit, "rl_tasks.parquet")))
    assert rl["tasks"] == len(tasks) > 0 and rl["episodes"] == 2 * 1 * 2
    client = resources["mlflow"].client()
    version = client.get_model_version(MODEL_NAME, str(rl["model_version"]))
    assert version.aliases == ["challenger"] and rl["parent_version"] == sft["model_version"]
    assert version.tags["parent_version"] == str(sft["model_version"])
    assert version.tags["training_method"] == "grpo" and version.tags["lakefs.commit"] == commit
    run = client.get_run(version.run_id)
    [dataset_input] = run.inputs.dataset_inputs
    assert json.loads(dataset_input.dataset.source)["uri"].endswith(f"/{commit}/datasets/rl_tasks.parquet")
    for metric in ("rl.reward.verified", "rl.reward.shaped", "rl.kl", "rl.episode_turns", "rl.rollouts_per_second"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2], metric
    assert any(k.startswith("rl.reward.verified.") for k in run.data.metrics)

    # evaluated against base and its SFT parent, on the same cases and tasks
    report = json.loads((Path(evaluated["report"]).parent / "results.json").read_text())
    assert report["model_order"] == ["base", "parent-sft", "challenger"]
    assert report["meta"]["parent"]["name"] == "parent-sft"
    assert str(report["meta"]["parent"]["version"]) == str(sft["model_version"])
    assert set(evaluated["gain_over_parent"]) == {"action_accuracy", "pass_hat_k", "pass_at_1"}
    logged = client.get_run(version.run_id).data.metrics
    assert {"eval.parent-sft.action_accuracy", "eval.challenger.pass_at_1"} <= set(logged)
    for name in ("parent-sft", "challenger"):
        assert report["models"][name]["overall"]["n_tasks"] == 2

    chain = trace_model(f"{MODEL_NAME}/{version.version}", tracking_uri=tracking,
                        lakefs_client=pipeline_env["lakefs"].client(),
                        datasets_repo="datasets-release-test", raw_repo="raw-release-test")
    assert chain["model"]["trained_from"] == f"{MODEL_NAME}/{sft['model_version']}"
    assert f"trained by   grpo from {MODEL_NAME}/{sft['model_version']}" in format_trace(chain)
    assert chain["dataset_release"]["commit"] == commit


def _auditor_commands(pipeline_env, published, tracking, model_version, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import main

    with duckdb.connect(str(pipeline_env["db"]), read_only=True) as con:
        trajectory_id, user_id = con.execute(
            "SELECT d.trajectory_id, d.user_id FROM marts.curation_decisions d "
            "JOIN marts.sft_examples s USING (record_key) ORDER BY d.record_key LIMIT 1").fetchone()
    scratch_db = tmp_path / "forget.duckdb"  # forget writes a revocation: not into the shared warehouse
    shutil.copy(pipeline_env["db"], scratch_db)
    monkeypatch.setenv("FLYWHEEL_LAKEFS_ENDPOINT", pipeline_env["server"].endpoint)
    monkeypatch.setenv("FLYWHEEL_MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("FLYWHEEL_DUCKDB_PATH", str(scratch_db))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        traced = runner.invoke(main, ["trace", "flywheel-agent@challenger", "--json"])
        assert traced.exit_code == 0, traced.output
        assert json.loads(traced.output)["dataset_release"]["tag"] == published["tag"]

        found = runner.invoke(main, ["trace", "--trajectory", trajectory_id, "--json"])
        assert found.exit_code == 0, found.output
        answer = json.loads(found.output)
        # every release it is in is named (earlier tests in this module publish more of them)
        releases = {r["tag"]: r for r in answer["releases"]}
        assert published["tag"] in releases and set(releases) <= set(_tags(pipeline_env))
        assert releases[published["tag"]]["destinations"].get("train", 0) >= 1
        assert [(m["model"], m["version"]) for m in answer["models"]] == [("flywheel-agent", model_version)]

        forgot = runner.invoke(main, ["forget", "--user", user_id, "--reason", "test"])
        assert forgot.exit_code == 0, forgot.output
        assert f"consent of user {user_id} revoked" in forgot.output
        assert f"release {published['tag']}" in forgot.output and "contains them" in forgot.output
        assert f"model flywheel-agent v{model_version} was trained on {published['tag']}" in forgot.output
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.mark.parametrize("failpoint", ["training.step_logged", "training.registered"])
def test_mlflow_dying_during_training_fails_clearly_and_the_rerun_registers_once(
        pipeline_env, published, monkeypatch, failpoint):
    """A real MLflow server is SIGKILLed mid-training (after a logged step) or right after the
    version was registered; the run fails with one clear message, and once the server is back
    a re-run leaves exactly one registered version."""
    from assets.training import fine_tuned_model
    from pipeline.harness.throwaway_stack import throwaway_stack_settings
    from pipeline.orchestration.resources import MlflowResource
    from pipeline.shell.audit import MODEL_NAME
    from pipeline.shell.local_stack import running_pid, services, start_service, stop_service

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stack = throwaway_stack_settings(get_settings())
    mlflow_service = next(s for s in services(stack) if s.name == "mlflow")
    start_service(stack, mlflow_service)
    resources = {"lakefs": pipeline_env["lakefs"], "mlflow": MlflowResource(tracking_uri=stack.mlflow_tracking_uri)}
    run_config = {"ops": {"fine_tuned_model": {"config": {
        "base_model": "tiny-random-llama", "max_steps": 2, "max_examples": 4}}}}
    try:
        monkeypatch.setenv("FLYWHEEL_FAILPOINT", failpoint)
        monkeypatch.setenv("FLYWHEEL_FAILPOINT_KILL_PGID", str(running_pid(stack, "mlflow")))
        failed = dg.materialize([fine_tuned_model], instance=pipeline_env["instance"],
                                resources=resources, run_config=run_config, raise_on_error=False)
        assert not failed.success
        assert running_pid(stack, "mlflow") is None, "the failpoint killed the server"
        message = _failure_message(failed)
        assert f"MLflow tracking server {stack.mlflow_tracking_uri} is unreachable" in message, message

        monkeypatch.delenv("FLYWHEEL_FAILPOINT")
        start_service(stack, mlflow_service)  # same backend store and artifacts
        rerun = dg.materialize([fine_tuned_model], instance=pipeline_env["instance"],
                               resources=resources, run_config=run_config, raise_on_error=False)
        assert rerun.success, _failure_message(rerun)
        trained = _metadata(rerun, fine_tuned_model.key)
        assert trained["reused_existing_version"] is (failpoint == "training.registered")
        client = resources["mlflow"].client()
        assert [v.version for v in client.search_model_versions(f"name = '{MODEL_NAME}'")] == ["1"]
        assert client.get_model_version_by_alias(MODEL_NAME, "challenger").version == "1"
        # The killed attempt's MLflow run does not stay RUNNING forever: the re-run ended it.
        runs = client.search_runs([resources["mlflow"].experiment_id()])
        statuses = sorted(r.info.status for r in runs)
        assert statuses == (["FINISHED", "KILLED"] if failpoint == "training.step_logged" else ["KILLED"]), statuses
        [killed] = [r for r in runs if r.info.status == "KILLED"]
        assert killed.data.tags["dagster.run_id"] == failed.run_id
        assert killed.data.tags["flywheel.ended_by"].startswith(f"dagster run {rerun.run_id}")
    finally:
        stop_service(stack, mlflow_service)
