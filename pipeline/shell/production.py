"""The production profile (FLYWHEEL_PROFILE=production): Dagster's instance (runs, event
logs, schedules), MLflow's backend store and lakeFS's KV store on PostgreSQL.

- PostgreSQL: a managed server (FLYWHEEL_POSTGRES_HOST and friends: we start none), or for a
  single-machine trial one of our own under `$STATE/production/postgres` (`postgres.py`:
  loopback, a free port recorded at its first start, a generated password kept like the
  other secrets, mode 0600, in `$STATE/secrets/`). One database per service.
- Dagster: `dagster.yaml` with `storage: postgres:` whose connection fields are all `env:`
  references (FLYWHEEL_POSTGRES_*), never literals, a QueuedRunCoordinator that runs at most
  one run tagged TRAINING_RUN_TAGS at a time, run monitoring; `dagster-daemon` runs the
  schedules, sensors and the queue beside `dagster-webserver`.
- MLflow: `mlflow server` with a `postgresql://` backend store given through the
  environment (MLFLOW_BACKEND_STORE_URI), not the command line `ps` shows; artifacts on
  local disk in the trial.
- lakeFS: `database.type: postgres` (LAKEFS_DATABASE_TYPE / _POSTGRES_CONNECTION_STRING).
- dbt: still DuckDB (see `Settings.dbt_target`).

Everything here is stdlib at import time (`make setup` imports local_stack, which imports
this, with the system Python); psycopg2 is imported where a connection is made.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.settings import PostgresConnection, Settings
from pipeline.shell import postgres
from pipeline.shell.ports import free_port, port_is_free

# The run tag that the production instance's run queue limits to one run at a time: the jobs
# that train carry it (pipeline/orchestration/automation.py).
TRAINING_RUN_TAGS = {"flywheel/stage": "training"}
MAX_TRAINING_RUNS = 1

# What dagster.yaml reads the connection from; flywheel sets them for every process it starts,
# a deployment that starts Dagster itself sets them (the password from its secret store).
DAGSTER_POSTGRES_ENV = {
    "hostname": "FLYWHEEL_POSTGRES_HOST",
    "port": "FLYWHEEL_POSTGRES_PORT",
    "username": "FLYWHEEL_POSTGRES_USER",
    "password": "FLYWHEEL_POSTGRES_PASSWORD",
    "db_name": "FLYWHEEL_POSTGRES_DAGSTER_DB",
}
# Daemons whose heartbeat says the schedules, sensors and the run queue are being served.
DAEMONS = ("SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR")
MARKER = "# Written by flywheel"  # first line of a dagster.yaml flywheel may rewrite


class ProductionError(RuntimeError):
    """The production profile's PostgreSQL is missing or unreachable; one line saying what to do."""

    @classmethod
    def not_started(cls) -> ProductionError:
        return cls("the production profile's PostgreSQL has not been started: run "
                   "`flywheel up --profile production`, or point FLYWHEEL_POSTGRES_HOST at a managed server")


def dagster_instance_yaml(settings: Settings) -> str:
    """The production dagster.yaml: no credential in it, only `env:` references."""
    connection = "\n".join(
        f"      {field}: {{env: {variable}}}" for field, variable in DAGSTER_POSTGRES_ENV.items()
    )
    # psycopg2: SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql:// (not installed)
    params = "\n      scheme: postgresql+psycopg2"
    if settings.postgres_sslmode:
        params += f"\n      params: {{sslmode: {settings.postgres_sslmode}}}"
    (tag, value), = TRAINING_RUN_TAGS.items()
    return f"""\
{MARKER} for the production profile (FLYWHEEL_PROFILE=production), from settings;
# it rewrites this file while this line is first (delete the line to keep your own edits).
# The connection is read from the environment (FLYWHEEL_POSTGRES_*), which flywheel sets
# for the processes it starts: no credential is written here.
telemetry:
  enabled: false  # nothing beyond the package indexes is reachable from these machines
storage:  # runs, event logs, schedules and sensor state
  postgres:
    postgres_db:
{connection}{params}
run_coordinator:  # dagster-daemon dequeues runs within these limits
  module: dagster
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {settings.dagster_max_concurrent_runs}  # FLYWHEEL_DAGSTER_MAX_CONCURRENT_RUNS
    tag_concurrency_limits:
      - key: {tag}  # the jobs that train: one training run at a time
        value: {value}
        limit: {MAX_TRAINING_RUNS}
run_monitoring:  # a run stuck starting would otherwise hold the training slot for ever
  enabled: true
  start_timeout_seconds: 300
"""


def connection(settings: Settings) -> PostgresConnection:
    """The production profile's PostgreSQL, or a ProductionError saying how to get one."""
    found = settings.postgres()
    if found is None:
        raise ProductionError.not_started()
    return found


def postgres_env(settings: Settings) -> dict[str, str]:
    """The variables dagster.yaml's `env:` references name (the password among them: for a
    process's environment only, never a file or a command line)."""
    found = connection(settings)
    values = {
        "hostname": found.host, "port": str(found.port), "username": found.user,
        "password": found.password.reveal(), "db_name": settings.postgres_dagster_db,
    }
    return {DAGSTER_POSTGRES_ENV[field]: value for field, value in values.items()}


def databases(settings: Settings) -> list[str]:
    return [settings.postgres_dagster_db, settings.postgres_mlflow_db, settings.postgres_lakefs_db]


def _connect(found: PostgresConnection, database: str, timeout: int = 5):
    import psycopg2

    return psycopg2.connect(found.url(database, scheme="postgresql").reveal(), connect_timeout=timeout)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def ensure_databases(settings: Settings) -> str:
    """Each service's database, created where missing (a managed server's user needs CREATEDB
    for that, or a DBA creates them first)."""
    import psycopg2

    found = connection(settings)
    missing = []
    for name in databases(settings):
        try:
            _connect(found, name).close()
        except psycopg2.OperationalError as error:
            if "does not exist" not in str(error):
                raise ProductionError(f"postgres: cannot connect to {found.display(name)}: {_first_line(error)}") \
                    from None
            missing.append(name)
    if missing:
        server = postgres.PostgresServer(found.host, found.port, found.user, found.password.reveal())
        try:
            postgres.create_databases(server, missing)
        except psycopg2.Error as error:
            raise ProductionError(
                f"postgres: databases {', '.join(missing)} are missing on {found.display()} and could not be "
                f"created ({_first_line(error)}); create them, or name existing ones with "
                "FLYWHEEL_POSTGRES_DAGSTER_DB / _MLFLOW_DB / _LAKEFS_DB"
            ) from None
    return f"postgres: databases {', '.join(databases(settings))} ready" + (
        f" (created {', '.join(missing)})" if missing else "")


# ---------------------------------------------------------------- the local trial server


def _data_dir(settings: Settings) -> Path:
    return settings.postgres_dir / "data"


def _log_file(settings: Settings) -> Path:
    return settings.logs_dir / "postgres.log"


def _answers(found: PostgresConnection) -> bool:
    import psycopg2

    try:
        _connect(found, "postgres", timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


def start_local_postgres(settings: Settings) -> str:
    """Start the trial server (initdb the first time) unless it is already up; a status line."""
    if settings.postgres_managed:
        return f"postgres: managed server {connection(settings).display()} (starting none)"
    running = settings.postgres()
    if running is not None and _answers(running):
        return f"postgres: already running at {running.display()}"
    password = settings.postgres_password()
    port = settings.postgres_port()
    if port is None or not port_is_free(port):
        if settings.postgres_port_env is not None:
            raise ProductionError(f"postgres: port {port} is in use by another process; stop it or choose "
                                  "another port with FLYWHEEL_POSTGRES_PORT")
        port = free_port()  # the recorded one was taken meanwhile: record another
    port_file = settings.postgres_dir / "port"
    port_file.parent.mkdir(parents=True, exist_ok=True)
    port_file.write_text(f"{port}\n")
    data_dir = _data_dir(settings)
    try:
        postgres.init_cluster(data_dir, password.reveal())
        postgres.start(data_dir, port, _log_file(settings), password.reveal())
    except postgres.PostgresError as error:
        raise ProductionError(f"postgres: {error}") from None
    return f"postgres: started at {connection(settings).display()} (data {data_dir}, log {_log_file(settings)})"


def stop_local_postgres(settings: Settings) -> str:
    if settings.postgres_managed:
        return f"postgres: managed server {connection(settings).display()} (left alone)"
    data_dir = _data_dir(settings)
    if not (data_dir / "postmaster.pid").exists():
        return "postgres: not running"
    try:
        postgres.stop(data_dir)
    except postgres.PostgresError as error:
        raise ProductionError(f"postgres: {error}") from None
    return "postgres: stopped"


def postgres_status(settings: Settings) -> tuple[bool, str]:
    found = settings.postgres()
    what = "managed server" if settings.postgres_managed else "local trial server"
    if found is None:
        return False, f"postgres: not started ({what}; `flywheel up --profile production` starts it)"
    if _answers(found):
        where = "" if found.managed else f", data {_data_dir(settings)}"
        return True, f"postgres: up at {found.display()} ({what}{where})"
    if not found.managed and not (_data_dir(settings) / "postmaster.pid").exists():
        return False, f"postgres: not running ({what} {found.display()})"
    return False, f"postgres: DOWN ({what} {found.display()} does not answer)"


# ---------------------------------------------------------------- dagster-daemon health


def daemons_alive_since(settings: Settings, since: float) -> bool:
    """Whether the scheduler, the sensor daemon and the run queue's coordinator have each sent
    a heartbeat (dagster-daemon writes them to the instance's run storage) since `since`."""
    import psycopg2

    try:
        con = _connect(connection(settings), settings.postgres_dagster_db, timeout=2)
    except (psycopg2.OperationalError, ProductionError):
        return False
    try:
        with con.cursor() as cur:
            cur.execute("select daemon_type, body from daemon_heartbeats")
            beats = {daemon: json.loads(body).get("timestamp", 0.0) for daemon, body in cur.fetchall()}
    except psycopg2.Error:  # no table yet: no daemon has started against this database
        return False
    finally:
        con.close()
    return all(beats.get(daemon, 0.0) >= since for daemon in DAEMONS)
