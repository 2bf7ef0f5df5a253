"""The production profile's configuration, rendered without any service: settings from the
environment, Dagster's instance file (env references, never a credential), the service
commands (a password never on a command line) and the jobs' run tags."""

from __future__ import annotations

from dataclasses import replace

import dagster as dg
import pytest
import yaml

from pipeline.settings import Secret, get_settings
from pipeline.shell.local_stack import dagster_instance_env, lakefs_env, prepare_dagster_home, services
from pipeline.shell.production import DAGSTER_POSTGRES_ENV, TRAINING_RUN_TAGS, dagster_instance_yaml

PASSWORD = "pg-s3cret/with:odd@chars"


@pytest.fixture()
def production_env(monkeypatch, tmp_path):
    """FLYWHEEL_PROFILE=production against a "managed" server; settings read afresh."""
    monkeypatch.setenv("FLYWHEEL_PROFILE", "production")
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("FLYWHEEL_DUCKDB_PATH", raising=False)  # set by pipeline.definitions
    monkeypatch.delenv("FLYWHEEL_MLFLOW_BACKEND_STORE_URI", raising=False)
    monkeypatch.setenv("FLYWHEEL_POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("FLYWHEEL_POSTGRES_USER", "flywheel_app")
    monkeypatch.setenv("FLYWHEEL_POSTGRES_PASSWORD", PASSWORD)
    monkeypatch.setenv("FLYWHEEL_POSTGRES_SSLMODE", "require")
    monkeypatch.setenv("FLYWHEEL_DAGSTER_MAX_CONCURRENT_RUNS", "4")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_production_settings_come_from_the_environment_and_never_show_the_password(production_env, tmp_path):
    settings = production_env
    assert settings.production and settings.postgres_managed
    assert settings.profile_dir == tmp_path.resolve() / "production"
    assert settings.dagster_home == settings.profile_dir / "dagster_home"
    assert settings.duckdb_path == settings.profile_dir / "warehouse.duckdb"
    assert settings.dbt_target == "duckdb"  # production keeps dbt on DuckDB for now
    connection = settings.postgres()
    assert (connection.host, connection.port, connection.user) == ("db.internal", 5432, "flywheel_app")
    assert connection.display("mlflow") == "postgresql://flywheel_app@db.internal:5432/mlflow?sslmode=require"
    store = settings.mlflow_backend_store().reveal()
    assert store.startswith("postgresql+psycopg2://flywheel_app:") and store.endswith("/mlflow?sslmode=require")
    assert "pg-s3cret%2Fwith%3Aodd%40chars" in store  # quoted inside the URL
    for text in (repr(settings), str(settings), repr(connection), str(connection), connection.display(),
                 repr(settings.mlflow_backend_store())):
        assert "s3cret" not in text
    assert not settings.postgres_password_file.exists()  # a given password is never written


def test_the_local_trial_server_gets_a_generated_password_of_its_own(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYWHEEL_PROFILE", "production")
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    for name in ("HOST", "PORT", "PASSWORD", "USER"):
        monkeypatch.delenv(f"FLYWHEEL_POSTGRES_{name}", raising=False)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert not settings.postgres_managed
        assert settings.postgres() is None  # no port until `flywheel up` records one
        assert settings.mlflow_backend_store() is None
        password = settings.postgres_password()
        assert oct(settings.postgres_password_file.stat().st_mode & 0o777) == "0o600"
        assert len(password.reveal()) >= 24 and settings.postgres_password() == password  # made once
        (settings.postgres_dir).mkdir(parents=True)
        (settings.postgres_dir / "port").write_text("54321\n")
        connection = settings.postgres()
        assert (connection.host, connection.port, connection.user) == ("127.0.0.1", 54321, "flywheel")
    finally:
        get_settings.cache_clear()


def test_an_unknown_profile_is_refused(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_PROFILE", "staging")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="FLYWHEEL_PROFILE must be one of local, production"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_the_dagster_instance_file_names_env_vars_not_credentials(production_env, monkeypatch):
    settings = production_env
    text = dagster_instance_yaml(settings)
    assert PASSWORD not in text and "db.internal" not in text and "flywheel_app" not in text
    config = yaml.safe_load(text)
    postgres_db = config["storage"]["postgres"]["postgres_db"]
    assert {field: postgres_db[field] for field in DAGSTER_POSTGRES_ENV} == {
        field: {"env": variable} for field, variable in DAGSTER_POSTGRES_ENV.items()}
    assert postgres_db["scheme"] == "postgresql+psycopg2" and postgres_db["params"] == {"sslmode": "require"}
    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"
    assert coordinator["config"]["max_concurrent_runs"] == 4
    (key, value), = TRAINING_RUN_TAGS.items()
    assert coordinator["config"]["tag_concurrency_limits"] == [{"key": key, "value": value, "limit": 1}]

    # Dagster accepts the file, and resolves the references from the environment flywheel
    # gives its processes (the password there, and only there).
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.storage.config import pg_config

    env = dagster_instance_env(settings)
    assert env["FLYWHEEL_POSTGRES_PASSWORD"] == PASSWORD and env["FLYWHEEL_POSTGRES_HOST"] == "db.internal"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (settings.dagster_home / "dagster.yaml").read_text() == text
    validated, _ = dagster_instance_config(str(settings.dagster_home))
    resolved = process_config(pg_config(), validated["storage"]["postgres"])  # as dagster-postgres does
    assert resolved.success, resolved.errors
    assert resolved.value["postgres_db"]["password"] == PASSWORD
    assert resolved.value["postgres_db"]["hostname"] == "db.internal" and resolved.value["postgres_db"]["port"] == 5432


def test_a_flywheel_written_instance_file_follows_the_settings_and_a_users_stays(production_env):
    home = prepare_dagster_home(production_env)
    assert "max_concurrent_runs: 4" in (home / "dagster.yaml").read_text()
    prepare_dagster_home(replace(production_env, dagster_max_concurrent_runs=2))
    assert "max_concurrent_runs: 2" in (home / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    prepare_dagster_home(production_env)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_no_password_on_a_service_command_line(production_env, monkeypatch):
    """lakeFS and MLflow get the PostgreSQL URL through the environment, which `ps` does not
    show; Dagster's processes get the variables dagster.yaml names."""
    settings = production_env
    monkeypatch.setattr("pipeline.shell.local_stack.ensure_lakefs_binary", lambda s: "/usr/bin/true")
    commands = {service.name: service.command() for service in services(settings)}
    assert set(commands) == {"lakefs", "mlflow", "dagster", "dagster-daemon"}
    for argv, _ in commands.values():
        assert not any("s3cret" in arg for arg in argv)
    assert commands["lakefs"][1]["LAKEFS_DATABASE_TYPE"] == "postgres"
    assert commands["lakefs"][1]["LAKEFS_DATABASE_POSTGRES_CONNECTION_STRING"].startswith("postgres://flywheel_app:")
    assert commands["mlflow"][1]["MLFLOW_BACKEND_STORE_URI"] == settings.mlflow_backend_store().reveal()
    assert commands["dagster"][0][0].endswith("dagster-webserver")
    assert commands["dagster-daemon"][0][0].endswith("dagster-daemon") and commands["dagster-daemon"][0][1] == "run"
    for name in ("dagster", "dagster-daemon"):
        env = commands[name][1]
        assert env["DAGSTER_HOME"] == str(settings.dagster_home) and env["FLYWHEEL_POSTGRES_PASSWORD"] == PASSWORD
    for service in services(settings):  # what status prints
        assert "s3cret" not in service.backend


def test_lakefs_env_takes_a_connection_string_only_for_postgres():
    settings = get_settings()
    with pytest.raises(ValueError):
        lakefs_env(settings, database="postgres", data_dir=settings.lakefs_dir, port=1)
    with pytest.raises(ValueError):
        lakefs_env(settings, database="local", data_dir=settings.lakefs_dir, port=1, connection_string="postgres://x")
    env = lakefs_env(settings, database="postgres", data_dir=settings.lakefs_dir, port=1,
                     connection_string="postgres://u:p@127.0.0.1:5/lakefs")
    assert env["LAKEFS_DATABASE_TYPE"] == "postgres"
    assert env["LAKEFS_DATABASE_POSTGRES_CONNECTION_STRING"] == "postgres://u:p@127.0.0.1:5/lakefs"


def test_the_jobs_that_train_carry_the_training_run_tag_and_production_runs_automation(production_env):
    from pipeline.definitions import defs
    from pipeline.orchestration.automation import build_automation

    repository = defs.get_repository_def()
    training = {job.name for job in repository.get_all_jobs()
                if job.run_tags.items() >= TRAINING_RUN_TAGS.items()}
    assert training == {"nightly_retrain_job", "curate_release_train_job", "rl_job"}
    for name in training:
        trains = {dg.AssetKey("fine_tuned_model"), dg.AssetKey("rl_tuned_model")}
        assert trains & repository.get_job(name).asset_layer.executable_asset_keys
    # Under the production profile the daemon serves the schedule and sensors from the start.
    everything = dg.AssetSelection.all()
    _, schedules, sensors = build_automation(everything, everything, everything)
    assert [s.default_status for s in schedules] == [dg.DefaultScheduleStatus.RUNNING]
    assert {s.default_status for s in sensors} == {dg.DefaultSensorStatus.RUNNING}


def test_local_profile_is_unchanged():
    settings = get_settings()
    assert settings.profile == "local" and settings.profile_dir == settings.state_dir
    assert settings.mlflow_backend_store().reveal().startswith("sqlite:///")
    names = [service.name for service in services(settings)]
    assert names == ["lakefs", "mlflow", "dagster"]
    assert repr(Secret("x")) == "Secret('********')"
