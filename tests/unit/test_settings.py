"""Settings: environment overrides and secrets that never print."""

import logging

from pipeline.settings import Secret, get_settings


def test_secret_is_masked_in_repr_str_and_logs(caplog):
    secret = Secret("hunter2-super-secret")
    settings_text = repr(get_settings())
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("settings %s secret %s", get_settings(), secret)
    for text in (repr(secret), str(secret), f"{secret}", settings_text, caplog.text):
        assert "hunter2" not in text
    assert get_settings().lakefs_secret_access_key.reveal() not in settings_text
    assert secret.reveal() == "hunter2-super-secret"


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("FLYWHEEL_DUCKDB_PATH", raising=False)  # set by pipeline.definitions
    monkeypatch.setenv("FLYWHEEL_LAKEFS_PORT", "18123")
    monkeypatch.setenv("FLYWHEEL_MLFLOW_PORT", "18124")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.state_dir == tmp_path.resolve()
        assert settings.lakefs_endpoint == "http://127.0.0.1:18123"
        assert settings.mlflow_tracking_uri == "http://127.0.0.1:18124"
        assert settings.mlflow_backend_store_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}"
        assert settings.duckdb_path == tmp_path.resolve() / "warehouse.duckdb"
    finally:
        get_settings.cache_clear()


def test_dagster_home_gets_an_instance_config_that_loads_and_is_never_overwritten(tmp_path):
    from dataclasses import replace

    import dagster as dg

    from pipeline.shell.local_stack import prepare_dagster_home

    settings = replace(get_settings(), state_dir=tmp_path)
    home = prepare_dagster_home(settings)
    assert home == tmp_path / "dagster_home"
    instance = dg.DagsterInstance.from_config(str(home))
    assert instance.get_settings("telemetry") == {"enabled": False}
    instance.dispose()

    edited = "telemetry:\n  enabled: true\n"  # a user's own instance config stays theirs
    (home / "dagster.yaml").write_text(edited)
    prepare_dagster_home(settings)
    assert (home / "dagster.yaml").read_text() == edited
