"""The local stack: lakeFS, MLflow tracking and Dagster as background processes.

`flywheel up/down/status` call these. Each service is a process group started with its
log under `.state/logs/` and a pid file under `.state/run/` (the production profile's under
`.state/production/`); health is an HTTP probe (dagster-daemon's: its heartbeats). Every
failure a user can cause (busy port, missing binary, a service that died) raises
`StackError` with one line saying what to do: the CLI prints it without a traceback.

The local profile stores in sqlite (Dagster, MLflow) and a local KV (lakeFS) and runs
`dagster dev`; the production profile (`production.py`) puts all three on PostgreSQL and
runs `dagster-webserver` beside `dagster-daemon`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import LAKEFS_VERSION, PROJECT_ROOT, Settings, masked_url
from pipeline.shell import production
from pipeline.shell.ports import port_is_free


class StackError(RuntimeError):
    """A problem the operator can fix; its message is one actionable line."""


# ---------------------------------------------------------------- lakeFS binary

LAKEFS_BUILD_MODULE = PROJECT_ROOT / "tools" / "lakefs-build"
LAKEFS_ELSEWHERE = (
    f"download the lakeFS {LAKEFS_VERSION} release binary from "
    "https://github.com/treeverse/lakeFS/releases and set FLYWHEEL_LAKEFS_BIN to it "
    f"(or run the treeverse/lakefs:{LAKEFS_VERSION.lstrip('v')} container and point "
    "FLYWHEEL_LAKEFS_ENDPOINT at it)"
)


def find_lakefs_binary(settings: Settings) -> Path | None:
    """An explicit FLYWHEEL_LAKEFS_BIN wins, then `lakefs` on PATH, then our cached build."""
    if settings.lakefs_bin:
        path = Path(settings.lakefs_bin)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise StackError(f"FLYWHEEL_LAKEFS_BIN={path} is not an executable file")
        return path
    on_path = shutil.which("lakefs")
    if on_path:
        return Path(on_path)
    built = settings.built_lakefs_bin
    return built if built.is_file() else None


def ensure_lakefs_binary(settings: Settings, log: Callable[[str], None] = print) -> Path:
    """Return a lakeFS server binary, building it with Go at the pinned tag if needed.

    `go install .../cmd/lakefs@vX` refuses lakeFS because its go.mod has a `replace`
    directive, so we build from a small wrapper module (tools/lakefs-build) that requires
    lakeFS at the pinned tag and repeats the replace.
    """
    found = find_lakefs_binary(settings)
    if found:
        return found
    go = shutil.which("go")
    if not go:
        raise StackError(
            "no lakeFS server binary: put `lakefs` on PATH or set FLYWHEEL_LAKEFS_BIN, "
            f"or install Go >= 1.26.4 so setup can build it; elsewhere: {LAKEFS_ELSEWHERE}"
        )
    target = settings.built_lakefs_bin
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"building lakeFS {LAKEFS_VERSION} with {go} (first time only, a few minutes)...")
    build_log = settings.logs_dir / "lakefs-build.log"
    build_log.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    with build_log.open("w") as out:
        result = subprocess.run(
            [go, "build", "-mod=mod", "-o", str(tmp), "github.com/treeverse/lakefs/cmd/lakefs"],
            cwd=LAKEFS_BUILD_MODULE,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CGO_ENABLED": os.environ.get("CGO_ENABLED", "0")},
        )
    if result.returncode != 0:
        raise StackError(
            f"building lakeFS failed (see {build_log}); put a `lakefs` binary on PATH or set "
            f"FLYWHEEL_LAKEFS_BIN instead; elsewhere: {LAKEFS_ELSEWHERE}"
        )
    tmp.rename(target)  # atomic: a half-written binary is never mistaken for a build
    return target


def lakefs_env(settings: Settings, *, database: str, data_dir: Path, port: int,
               connection_string: str | None = None) -> dict[str, str]:
    """Environment for `lakefs run` on loopback with the local blockstore.

    `database` is `local` (persistent KV under data_dir), `mem` (tests) or `postgres` (the
    production profile: KV in the PostgreSQL database `connection_string` names, a libpq URL
    with the password, so it goes in the environment, never on the command line). The admin
    user is created from LAKEFS_INSTALLATION_* at first start, without prompts.
    """
    if (database == "postgres") != (connection_string is not None):
        raise ValueError("a connection string goes with database='postgres', and only with it")
    postgres_kv = {"LAKEFS_DATABASE_POSTGRES_CONNECTION_STRING": connection_string} if connection_string else {}
    return {
        **os.environ,
        **postgres_kv,
        "LAKEFS_DATABASE_TYPE": database,
        "LAKEFS_DATABASE_LOCAL_PATH": str(data_dir / "metadata"),
        "LAKEFS_BLOCKSTORE_TYPE": "local",
        "LAKEFS_BLOCKSTORE_LOCAL_PATH": str(data_dir / "data"),
        "LAKEFS_AUTH_ENCRYPT_SECRET_KEY": settings.lakefs_encrypt_secret.reveal(),
        "LAKEFS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "LAKEFS_STATS_ENABLED": "false",
        "LAKEFS_LOGGING_LEVEL": "WARN",
        "LAKEFS_INSTALLATION_USER_NAME": "flywheel-admin",
        "LAKEFS_INSTALLATION_ACCESS_KEY_ID": settings.lakefs_access_key_id,
        "LAKEFS_INSTALLATION_SECRET_ACCESS_KEY": settings.lakefs_secret_access_key.reveal(),
    }


def setup_lakefs(settings: Settings, endpoint: str, timeout: float = 30.0) -> None:
    """Create the admin user with our credentials on a lakeFS that has none yet. lakeFS does
    this itself from LAKEFS_INSTALLATION_* only on a local or in-memory KV; on PostgreSQL it
    takes the setup API (its answer, which repeats the secret, is read and dropped)."""
    import json

    api = f"{endpoint}/api/v1/setup_lakefs"
    with urllib.request.urlopen(api, timeout=timeout) as response:
        if json.load(response).get("state") == "initialized":
            return
    body = json.dumps({"username": "flywheel-admin", "key": {
        "access_key_id": settings.lakefs_access_key_id,
        "secret_access_key": settings.lakefs_secret_access_key.reveal(),
    }}).encode()
    request = urllib.request.Request(api, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        if error.code != 409:  # 409: another `flywheel up` set it up meanwhile
            raise StackError(f"lakefs: initial setup failed ({error.code} {error.reason})") from None


def write_lakectl_config(settings: Settings) -> Path:
    """Store the credentials where lakectl and the lakefs SDK look (LAKECTL_CONFIG_FILE /
    ~/.lakectl.yaml format), owner-readable only."""
    path = settings.lakectl_config
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(
            "credentials:\n"
            f"  access_key_id: {settings.lakefs_access_key_id}\n"
            f"  secret_access_key: {settings.lakefs_secret_access_key.reveal()}\n"
            "server:\n"
            f"  endpoint_url: {settings.lakefs_endpoint}\n"
        )
    return path


# ---------------------------------------------------------------- processes


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_healthy(
    name: str, url: str | Callable[[], bool], proc: subprocess.Popen, log_path: Path, timeout: float
) -> None:
    """Until `url` answers (or the check `url` is says so), the process dies or time is up."""
    healthy = url if callable(url) else (lambda: http_ok(url))
    what = "report healthy" if callable(url) else f"answer {url}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy():
            return
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode}: {last_line(log_path)}")
        time.sleep(0.3)
    raise StackError(f"{name} did not {what} within {timeout:.0f}s (log: {log_path})")


def last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"no log at {path}"
    return lines[-1][:300] if lines else f"empty log {path}"


def pid_alive(pid: int) -> bool:
    try:
        # A service this very process started and that died is our zombie until reaped.
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:  # not our child: started by an earlier `flywheel up`
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_group(pid: int, grace: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
        try:  # reap if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class Service:
    name: str
    port: int | None  # None: listens nowhere (dagster-daemon)
    health_url: str | None
    ui_url: str | None
    start_timeout: float
    command: Callable[[], tuple[list[str], dict[str, str]]]
    backend: str = ""  # where it keeps its state, for status lines (never a password)
    # Health without an HTTP endpoint: whether it reported alive since the given time.
    probe: Callable[[float], bool] | None = None
    after_start: Callable[[], None] | None = None  # once healthy (also when found running)


def _postgres_display(settings: Settings, database: str) -> str:
    found = settings.postgres()
    return found.display(database) if found else f"PostgreSQL database {database} (server not started)"


def services(settings: Settings) -> list[Service]:
    """The services of the profile's stack, in start order. The production profile's need
    its PostgreSQL up (`production.start_local_postgres`) before their commands are built."""
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    bin_dir = Path(sys.executable).parent
    # dagster-dbt resolves `dbt` from PATH (DbtProject.prepare_if_dev): use ours.
    path = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def lakefs_cmd() -> tuple[list[str], dict[str, str]]:
        binary = ensure_lakefs_binary(settings)
        if settings.production:
            url = production.connection(settings).url(settings.postgres_lakefs_db, scheme="postgres")  # pgx
            env = lakefs_env(settings, database="postgres", data_dir=settings.lakefs_dir,
                             port=settings.lakefs_port, connection_string=url.reveal())
        else:
            env = lakefs_env(settings, database="local", data_dir=settings.lakefs_dir, port=settings.lakefs_port)
        return [str(binary), "run"], env

    def mlflow_cmd() -> tuple[list[str], dict[str, str]]:
        artifacts = settings.mlflow_dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        backend_store = settings.mlflow_backend_store()
        if backend_store is None:
            raise StackError(str(production.ProductionError.not_started()))
        return [
            str(bin_dir / "mlflow"), "server",
            "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(settings.mlflow_port),
            "--workers", "1",
        # Telemetry off unless the user says otherwise: a local stack should not phone home
        # (and on these machines nothing beyond the package indexes is reachable). The backend
        # store (a PostgreSQL URL holds the password) goes by the environment, which `ps`
        # does not show, instead of --backend-store-uri.
        ], {"MLFLOW_DISABLE_TELEMETRY": "true", **os.environ,
            "MLFLOW_BACKEND_STORE_URI": backend_store.reveal()}

    def dagster_cmd() -> tuple[list[str], dict[str, str]]:
        env = {**os.environ, **dagster_instance_env(settings), **path}
        if settings.production:
            return [str(bin_dir / "dagster-webserver"), "-w", workspace,
                    "-h", "127.0.0.1", "-p", str(settings.dagster_port)], env
        return [str(bin_dir / "dagster"), "dev", "-w", workspace,
                "-h", "127.0.0.1", "-p", str(settings.dagster_port)], env

    def daemon_cmd() -> tuple[list[str], dict[str, str]]:
        return [str(bin_dir / "dagster-daemon"), "run", "-w", workspace], {
            **os.environ, **dagster_instance_env(settings), **path}

    base = "http://127.0.0.1"
    # lakeFS makes its admin user itself only on a local KV: on PostgreSQL, through its API.
    lakefs_setup = (lambda: setup_lakefs(settings, settings.lakefs_endpoint)) if settings.production else None
    if settings.production:
        lakefs_store = f"KV store {_postgres_display(settings, settings.postgres_lakefs_db)}"
        mlflow_store = masked_url(settings.mlflow_backend_store_uri) if settings.mlflow_backend_store_uri \
            else _postgres_display(settings, settings.postgres_mlflow_db)
        tag, value = next(iter(production.TRAINING_RUN_TAGS.items()))
        dagster_store = (f"instance {_postgres_display(settings, settings.postgres_dagster_db)}; run queue: "
                         f"{settings.dagster_max_concurrent_runs} runs, {production.MAX_TRAINING_RUNS} "
                         f"with {tag}={value}")
    else:
        lakefs_store = f"KV store local, {settings.lakefs_dir / 'metadata'}"
        mlflow_store = masked_url(settings.mlflow_backend_store_uri)
        dagster_store = f"instance sqlite, {settings.dagster_home}"
    found = [
        Service("lakefs", settings.lakefs_port, f"{base}:{settings.lakefs_port}/_health",
                f"{base}:{settings.lakefs_port}", 60, lakefs_cmd,
                f"{lakefs_store}; blockstore {settings.lakefs_dir / 'data'}",
                after_start=lakefs_setup),
        Service("mlflow", settings.mlflow_port, f"{base}:{settings.mlflow_port}/health",
                f"{base}:{settings.mlflow_port}", 120, mlflow_cmd,
                f"backend store {mlflow_store}; artifacts {settings.mlflow_dir / 'artifacts'}"),
        Service("dagster", settings.dagster_port, f"{base}:{settings.dagster_port}/server_info",
                f"{base}:{settings.dagster_port}", 180, dagster_cmd, dagster_store),
    ]
    if settings.production:
        found.append(Service(
            "dagster-daemon", None, None, None, 180, daemon_cmd,
            "schedules, sensors and the run queue", probe=lambda since: production.daemons_alive_since(settings, since),
        ))
    return found


DAGSTER_INSTANCE_YAML = """\
# Written by flywheel: the local Dagster instance `flywheel up`, `flywheel run` and the
# benches share (sqlite run, event and schedule storage in this folder, the default).
telemetry:
  enabled: false  # nothing beyond the package indexes is reachable from these machines
"""


def dagster_instance_yaml(settings: Settings) -> str:
    return production.dagster_instance_yaml(settings) if settings.production else DAGSTER_INSTANCE_YAML


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME with an explicit dagster.yaml (without one Dagster warns on every load).
    A file flywheel wrote (its first line says so) follows the settings; one a user wrote
    stays theirs."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    wanted = dagster_instance_yaml(settings)
    if not config.exists() or (config.read_text().startswith(production.MARKER) and config.read_text() != wanted):
        tmp = config.with_suffix(".yaml.partial")
        tmp.write_text(wanted)
        tmp.replace(config)
    return settings.dagster_home


def dagster_instance_env(settings: Settings) -> dict[str, str]:
    """What a process needs to open the profile's Dagster instance: DAGSTER_HOME and, in the
    production profile, the PostgreSQL connection its dagster.yaml refers to (password
    included: for process environments only)."""
    env = {"DAGSTER_HOME": str(prepare_dagster_home(settings))}
    if settings.production:
        try:
            env.update(production.postgres_env(settings))
        except production.ProductionError as error:
            raise StackError(str(error)) from None
    return env


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.profile_dir / "run" / f"{name}.pid"


def running_pid(settings: Settings, name: str) -> int | None:
    pid_file = _pid_file(settings, name)
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _healthy(service: Service, since: float) -> bool:
    if service.probe is not None:
        return service.probe(since)
    return service.health_url is not None and http_ok(service.health_url)


def _where(service: Service) -> str:
    return f" at {service.ui_url}" if service.ui_url else ""


# A heartbeat within this long (dagster-daemon sends one every 30 s) counts as alive.
HEARTBEAT_TOLERANCE = 120.0


def start_service(settings: Settings, service: Service) -> str:
    """Start one service unless ours is already healthy; return a status line."""
    if running_pid(settings, service.name) and _healthy(service, time.time() - HEARTBEAT_TOLERANCE):
        if service.after_start:
            service.after_start()
        return f"{service.name}: already running{_where(service)}"
    if service.port is not None and not port_is_free(service.port):
        env_name = f"FLYWHEEL_{service.name.upper()}_PORT"
        raise StackError(
            f"{service.name}: port {service.port} is in use by another process; "
            f"stop it or choose another port with {env_name}"
        )
    argv, env = service.command()
    spawned = time.time()
    log_path = settings.logs_dir / f"{service.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    pid_file = _pid_file(settings, service.name)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(proc.pid))
    try:
        probe = service.probe
        check = service.health_url if probe is None else (lambda: probe(spawned))
        wait_until_healthy(service.name, check, proc, log_path, service.start_timeout)
        if service.after_start:
            service.after_start()
    except StackError:
        stop_process_group(proc.pid)
        pid_file.unlink(missing_ok=True)
        raise
    return f"{service.name}: started{_where(service)} (log {log_path})"


def stop_service(settings: Settings, service: Service) -> str:
    pid = running_pid(settings, service.name)
    _pid_file(settings, service.name).unlink(missing_ok=True)
    if pid is None:
        return f"{service.name}: not running"
    stop_process_group(pid)
    return f"{service.name}: stopped"


def service_status(settings: Settings, service: Service) -> tuple[bool, str]:
    pid = running_pid(settings, service.name)
    if pid is None:
        had_pid_file = _pid_file(settings, service.name).exists()
        if had_pid_file:
            log_path = settings.logs_dir / f"{service.name}.log"
            return False, f"{service.name}: DEAD (process exited; last log line: {last_line(log_path)})"
        return False, f"{service.name}: not running"
    if not _healthy(service, time.time() - HEARTBEAT_TOLERANCE):
        what = f"does not answer {service.health_url}" if service.health_url else \
            f"sent no heartbeat in {HEARTBEAT_TOLERANCE:.0f}s"
        return False, f"{service.name}: UNHEALTHY (pid {pid} {what})"
    return True, f"{service.name}: up{_where(service)} (pid {pid})"


if __name__ == "__main__":  # `make setup` builds lakeFS with the system Python while uv installs
    from pipeline.settings import get_settings

    try:
        print(f"lakeFS server: {ensure_lakefs_binary(get_settings())}")
    except StackError as error:
        sys.exit(f"flywheel: {error}")
