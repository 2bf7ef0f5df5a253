"""The production profile on a real PostgreSQL (Debian's packages, the `postgres_server`
fixture): Dagster's runs and schedules, its run queue, MLflow's backend store and lakeFS's KV
store, each started as `flywheel up --profile production` starts it; and `flywheel up/status/
down --profile production` with a PostgreSQL of its own.

Each test has databases of its own on the shared server, so one test's runs never meet
another's queue. Settings come from the environment, as in a deployment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from pipeline.settings import PROJECT_ROOT, Settings, get_settings
from pipeline.shell.local_stack import (
    dagster_instance_env,
    services,
    start_service,
    stop_service,
)
from pipeline.shell.ports import free_port
from pipeline.shell.postgres import create_databases
from pipeline.shell.production import TRAINING_RUN_TAGS, daemons_alive_since

PROBE_JOBS = Path(__file__).with_name("production_probe_jobs.py")
WORKSPACE = PROJECT_ROOT / "workspace.yaml"


@pytest.fixture()
def production(postgres_server, tmp_path, monkeypatch):
    """Production settings from the environment, on the fixture's server (as a managed one:
    nothing here starts or stops it), with databases of the test's own; a function that
    makes them (`databases` names the dagster, mlflow and lakefs databases to use)."""

    def make(prefix: str, **env: str) -> Settings:
        names = {kind: f"{prefix}_{kind}" for kind in ("dagster", "mlflow", "lakefs")}
        create_databases(postgres_server, list(names.values()))
        lakefs_port, mlflow_port = free_port(), free_port()
        values = {
            "FLYWHEEL_PROFILE": "production",
            "FLYWHEEL_STATE_DIR": str(tmp_path / "state"),
            "FLYWHEEL_POSTGRES_HOST": postgres_server.host,
            "FLYWHEEL_POSTGRES_PORT": str(postgres_server.port),
            "FLYWHEEL_POSTGRES_USER": postgres_server.user,
            "FLYWHEEL_POSTGRES_PASSWORD": postgres_server.password,
            "FLYWHEEL_LAKEFS_PORT": str(lakefs_port),
            "FLYWHEEL_LAKEFS_ENDPOINT": f"http://127.0.0.1:{lakefs_port}",
            "FLYWHEEL_MLFLOW_PORT": str(mlflow_port),
            "FLYWHEEL_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "FLYWHEEL_DAGSTER_PORT": str(free_port()),
            **{f"FLYWHEEL_POSTGRES_{kind.upper()}_DB": name for kind, name in names.items()},
            **env,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("FLYWHEEL_MLFLOW_BACKEND_STORE_URI", raising=False)
        get_settings.cache_clear()
        settings = get_settings()
        # What every Dagster process flywheel starts gets; the test's own instance reads it too.
        for name, value in dagster_instance_env(settings).items():
            monkeypatch.setenv(name, value)
        return settings

    yield make
    get_settings.cache_clear()  # the session's settings again, from the restored environment


def _query(server, database: str, sql: str, args=()) -> list[tuple]:
    con = psycopg2.connect(server.url(database))
    try:
        with con.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        con.close()


def _service(settings: Settings, name: str):
    return next(s for s in services(settings) if s.name == name)


def _cmdlines_and_logs(settings: Settings) -> str:
    """Every command line on this machine and the profile's logs: where a password must not be."""
    texts = []
    for proc in Path("/proc").iterdir():
        try:
            texts.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    texts += [p.read_text(errors="replace") for p in settings.logs_dir.glob("*.log")]
    return "\n".join(texts)


def _last_tick(cron_hour: int = 2) -> datetime:
    """The latest 02:00 UTC (the default nightly cron) before now."""
    now = datetime.now(UTC)
    tick = now.replace(hour=cron_hour, minute=0, second=0, microsecond=0)
    return tick if tick < now else tick - timedelta(days=1)


def test_runs_are_stored_in_postgres_and_the_daemon_launches_the_nightly_tick(production, postgres_server):
    """The production dagster.yaml puts the instance on PostgreSQL; dagster-daemon, started as
    `flywheel up` starts it, evaluates the nightly schedule and submits its run. The queue
    launches nothing here (max_concurrent_runs 0), so the run stays QUEUED, where it is read
    back through psycopg2."""
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        ScheduleInstigatorData,
    )
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_postgres import PostgresRunStorage, PostgresScheduleStorage

    settings = production("schedule", FLYWHEEL_DAGSTER_MAX_CONCURRENT_RUNS="0", FLYWHEEL_NIGHTLY_CRON="0 2 * * *")
    assert settings.postgres_password_env.reveal() not in (settings.dagster_home / "dagster.yaml").read_text()
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        # The schedule as the daemon will see it (same workspace file, same origin), started
        # as of just before the last 02:00 so that the daemon's first pass owes one tick.
        tick = _last_tick()
        with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as workspace:
            location = next(iter(workspace.create_request_context().get_code_location_entries().values()))
            assert location.code_location is not None, location.load_error
            repository = next(iter(location.code_location.get_repositories().values()))
            schedule = repository.get_schedule("nightly_retrain")
            assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING  # production: the daemon runs it
            instance.add_instigator_state(InstigatorState(
                schedule.get_remote_origin(), InstigatorType.SCHEDULE, InstigatorStatus.RUNNING,
                ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=tick.timestamp() - 60),
            ))
    finally:
        instance.dispose()

    daemon = _service(settings, "dagster-daemon")
    started = time.time()
    try:
        start_service(settings, daemon)  # returns once scheduler, sensors and queue heartbeat
        assert daemons_alive_since(settings, started)
        day = (tick - timedelta(days=1)).strftime("%Y-%m-%d")
        deadline, rows = time.monotonic() + 90, []
        # the scheduler creates the run (NOT_STARTED), then submits it to the queue (QUEUED)
        while time.monotonic() < deadline and [row[2] for row in rows] != ["QUEUED"]:
            rows = _query(postgres_server, settings.postgres_dagster_db, """
                select r.run_id, r.pipeline_name, r.status, r.partition from runs r
                join run_tags t on t.run_id = r.run_id
                where t.key = 'dagster/schedule_name' and t.value = 'nightly_retrain'""")
            time.sleep(1)
    finally:
        stop_service(settings, daemon)
    assert len(rows) == 1, f"no scheduled run in PostgreSQL; daemon log: {settings.logs_dir / 'dagster-daemon.log'}"
    run_id, job, status, partition = rows[0]
    assert (job, status, partition) == ("nightly_retrain_job", "QUEUED", day)
    tags = dict(_query(postgres_server, settings.postgres_dagster_db,
                       "select key, value from run_tags where run_id = %s", [run_id]))
    assert tags["dagster/partition"] == day and tags["dagster/run_key"] == f"nightly-{day}"
    assert tags.items() >= TRAINING_RUN_TAGS.items()  # the queue will hold it to one training run
    assert settings.postgres_password_env.reveal() not in _cmdlines_and_logs(settings)


def test_the_run_queue_holds_a_second_training_run_while_one_is_in_progress(production, postgres_server, tmp_path):
    """Two runs tagged as training and one other, submitted to the production instance's
    QueuedRunCoordinator; one pass of dagster-daemon's queue launches the first training run
    and the other run, and holds the second training run until the first has finished."""
    from dagster._core.storage.dagster_run import DagsterRunStatus
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
    from dagster._serdes import deserialize_value

    settings = production("queue")
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    release = {name: tmp_path / f"release-{name}" for name in ("first", "second")}
    release["second"].touch()  # the second training run may finish as soon as it starts
    target = PythonFileTarget(python_file=str(PROBE_JOBS), attribute=None, working_directory=str(PROJECT_ROOT),
                              location_name="probe")
    try:
        with WorkspaceProcessContext(instance, target) as workspace, \
                QueuedRunCoordinatorDaemon(interval_seconds=1) as queue:
            request = workspace.create_request_context()
            repository = next(iter(request.get_code_location("probe").get_repositories().values()))

            def submit(job_name: str, run_config: dict | None = None) -> str:
                remote_job = repository.get_full_job(job_name)
                run = instance.create_run_for_job(
                    _job(job_name),
                    run_config=run_config, tags=remote_job.run_tags,
                    remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
                )
                instance.submit_run(run.run_id, request)
                return run.run_id

            def hold(name: str) -> dict:
                return {"ops": {"hold": {"config": {"release_file": str(release[name])}}}}

            first = submit("training_probe", hold("first"))
            second = submit("training_probe", hold("second"))
            other = submit("other_probe")

            def status(run_id: str) -> DagsterRunStatus:
                return instance.get_run_by_id(run_id).status

            def wait_for(run_id: str, wanted: DagsterRunStatus, timeout: float = 60) -> None:
                deadline = time.monotonic() + timeout
                while status(run_id) != wanted and time.monotonic() < deadline:
                    time.sleep(0.3)
                assert status(run_id) == wanted, (run_id, status(run_id))

            assert {status(r) for r in (first, second, other)} == {DagsterRunStatus.QUEUED}
            list(queue.run_iteration(workspace))
            in_progress = {DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.SUCCESS}
            assert status(first) in in_progress
            assert status(other) in in_progress  # the limit is on training runs only
            assert status(second) == DagsterRunStatus.QUEUED
            wait_for(first, DagsterRunStatus.STARTED)
            list(queue.run_iteration(workspace))  # again, with the first surely running
            assert status(second) == DagsterRunStatus.QUEUED
            queued = _query(postgres_server, settings.postgres_dagster_db,
                            "select status from runs where run_id = %s", [second])
            assert queued == [("QUEUED",)]  # as PostgreSQL has it

            release["first"].touch()
            wait_for(first, DagsterRunStatus.SUCCESS)
            list(queue.run_iteration(workspace))
            wait_for(second, DagsterRunStatus.SUCCESS)
            wait_for(other, DagsterRunStatus.SUCCESS)
            # The code server forgets a run once it sees its process gone (it reads the run
            # from PostgreSQL then): wait for that, so it shuts down now, not after the server.
            server = request.get_code_location("probe").client
            deadline = time.monotonic() + 30
            while deserialize_value(server.get_current_runs()).current_runs and time.monotonic() < deadline:
                time.sleep(0.3)
    finally:
        release["first"].touch()  # never leave a run worker waiting
        instance.dispose()


def _job(name: str) -> dg.JobDefinition:
    sys.path.insert(0, str(PROBE_JOBS.parent))
    try:
        import production_probe_jobs
    finally:
        sys.path.remove(str(PROBE_JOBS.parent))
    return getattr(production_probe_jobs, name)


def test_flywheel_run_records_its_runs_in_the_production_instance(production, postgres_server):
    """`flywheel run` executes in its own process, on the profile's instance: in production the
    runs land in PostgreSQL (stand-ins for the jobs, as in tests/unit/test_cli.py)."""
    from pipeline.orchestration.in_process import run_main_job

    settings = production("inprocess")
    day = "2026-11-16"

    @dg.asset(name="raw_agent_logs", partitions_def=dg.StaticPartitionsDefinition([day]))
    def raw() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"records_ingested": 2, "records_quarantined": 0})

    @dg.asset(name="fine_tuned_model", deps=[raw])
    def model() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"model_version": 1, "initial_loss": 2.0, "final_loss": 1.0})

    defs = dg.Definitions(assets=[raw, model], jobs=[
        dg.define_asset_job("ingest_job", selection=[raw]),
        dg.define_asset_job("curate_release_train_job", selection=[model], tags=TRAINING_RUN_TAGS),
    ])
    lines: list[str] = []
    run_main_job(defs, [day], echo=lines.append)
    rows = _query(postgres_server, settings.postgres_dagster_db,
                  "select pipeline_name, status, partition from runs order by create_timestamp")
    assert rows == [("ingest_job", "SUCCESS", day), ("curate_release_train_job", "SUCCESS", None)]
    assert (settings.logs_dir / "flywheel-run.log").is_file()  # under $STATE/production/logs
    assert settings.postgres_password_env.reveal() not in _cmdlines_and_logs(settings)


def test_mlflow_keeps_runs_in_postgres(production, postgres_server):
    """The tracking server as `flywheel up --profile production` starts it: backend store on
    PostgreSQL through the environment (not its command line), artifacts on local disk."""
    from mlflow import MlflowClient

    from pipeline.orchestration.resources import MlflowResource

    settings = production("tracking")
    mlflow_service = _service(settings, "mlflow")
    start_service(settings, mlflow_service)
    try:
        resource = MlflowResource(tracking_uri=settings.mlflow_tracking_uri, experiment_name="production-profile")
        with resource.start_run("train", dagster_run_id="dagster-run-7", tags={"lakefs.commit": "c0ffee"}) as run:
            mlflow = resource.configure()
            mlflow.log_param("lora_rank", 8)
            mlflow.log_metric("loss", 0.5, step=1)
            mlflow.log_text("card", "notes/card.txt")
        stored = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(run.info.run_id)
        assert stored.data.params == {"lora_rank": "8"} and stored.data.metrics["loss"] == 0.5
        assert stored.data.tags["lakefs.commit"] == "c0ffee"
        assert list((settings.mlflow_dir / "artifacts").rglob("card.txt")), "artifacts stay on local disk"
        rows = _query(postgres_server, settings.postgres_mlflow_db,
                      "select name, status from runs where run_uuid = %s", [run.info.run_id])
        assert rows == [("train", "FINISHED")]
        assert settings.postgres_password_env.reveal() not in _cmdlines_and_logs(settings)
    finally:
        stop_service(settings, mlflow_service)


def test_lakefs_keeps_repositories_in_postgres_across_a_restart(production, postgres_server):
    """lakeFS with `database.type: postgres`: a repository and a commit outlive the server."""
    import lakefs

    from pipeline.orchestration.resources import LakeFSResource

    settings = production("versioning")
    lakefs_service = _service(settings, "lakefs")
    start_service(settings, lakefs_service)  # also creates the admin user (the setup API)
    try:
        resource = LakeFSResource(endpoint=settings.lakefs_endpoint)
        repo = resource.ensure_repository("kv-on-postgres")
        branch = repo.branch("main")
        branch.object("day/records.jsonl").upload(b'{"id": 1}\n')
        commit = branch.commit("one record", metadata={"source": "test"}).get_commit()
    finally:
        stop_service(settings, lakefs_service)
    kv_rows = _query(postgres_server, settings.postgres_lakefs_db, "select count(*) from kv")[0][0]
    assert kv_rows > 0

    start_service(settings, lakefs_service)
    try:
        again = lakefs.Repository("kv-on-postgres", client=LakeFSResource(endpoint=settings.lakefs_endpoint).client())
        head = again.branch("main").get_commit()
        assert head.id == commit.id and head.message == "one record"
        assert again.ref(commit.id).object("day/records.jsonl").reader().read() == b'{"id": 1}\n'
        assert settings.postgres_password_env.reveal() not in _cmdlines_and_logs(settings)
    finally:
        stop_service(settings, lakefs_service)


def test_flywheel_up_status_down_with_a_postgres_of_its_own(tmp_path):
    """`flywheel up --profile production` on a fresh state directory starts a PostgreSQL
    (initdb, a free port recorded, a generated password, mode 0600), its databases and here
    lakeFS on it; `status` names the profile and endpoints, never the password; `down` stops
    both."""
    state = tmp_path / "state"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_POSTGRES_", "FLYWHEEL_PROFILE"))},
        "FLYWHEEL_STATE_DIR": str(state),
        "FLYWHEEL_LAKEFS_PORT": str(free_port()), "FLYWHEEL_MLFLOW_PORT": str(free_port()),
        "FLYWHEEL_DAGSTER_PORT": str(free_port()),
    }
    env.pop("FLYWHEEL_LAKEFS_ENDPOINT", None)
    flywheel = str(Path(sys.executable).with_name("flywheel"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([flywheel, *args], env=env, capture_output=True, text=True, timeout=180)

    try:
        up = run("up", "--profile", "production", "--only", "lakefs")
        assert up.returncode == 0, up.stderr
        password_file = state / "secrets" / "postgres.password"
        assert oct(password_file.stat().st_mode & 0o777) == "0o600"
        password = password_file.read_text().strip()
        port = int((state / "production" / "postgres" / "port").read_text())
        assert up.stdout.splitlines()[0] == "profile: production"
        assert f"postgres: started at postgresql://flywheel@127.0.0.1:{port}" in up.stdout
        assert "databases dagster, mlflow, lakefs ready" in up.stdout
        assert "lakefs: started" in up.stdout and "repositories raw-agent-logs, agent-datasets ready" in up.stdout

        status = run("status", "--profile", "production")
        assert status.returncode == 1  # mlflow and dagster were not asked for
        assert status.stdout.splitlines()[0] == "profile: production"
        assert f"postgres: up at postgresql://flywheel@127.0.0.1:{port}" in status.stdout
        assert f"lakefs: up at http://127.0.0.1:{env['FLYWHEEL_LAKEFS_PORT']}" in status.stdout
        assert f"KV store postgresql://flywheel@127.0.0.1:{port}/lakefs" in status.stdout
        assert f"backend store postgresql://flywheel@127.0.0.1:{port}/mlflow" in status.stdout
        assert f"instance postgresql://flywheel@127.0.0.1:{port}/dagster" in status.stdout
        assert "dagster-daemon: not running" in status.stdout
        assert "keeps dbt on DuckDB for now" in status.stdout
        for text in (up.stdout, up.stderr, status.stdout, status.stderr,
                     (state / "production" / "dagster_home" / "dagster.yaml").read_text() if
                     (state / "production" / "dagster_home" / "dagster.yaml").exists() else ""):
            assert password not in text

        again = run("up", "--profile", "production", "--only", "lakefs")
        assert f"postgres: already running at postgresql://flywheel@127.0.0.1:{port}" in again.stdout
        assert "lakefs: already running" in again.stdout
    finally:
        down = run("down", "--profile", "production")
    assert down.returncode == 0, down.stderr
    assert "lakefs: stopped" in down.stdout and "postgres: stopped" in down.stdout
    after = run("status", "--profile", "production")
    assert "postgres: not running" in after.stdout and "lakefs: not running" in after.stdout
