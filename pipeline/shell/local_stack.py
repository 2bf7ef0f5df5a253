"""The local stack: lakeFS, MLflow tracking and Dagster as background processes.

`flywheel up/down/status` call these. Each service is a process group started with its
log under `.state/logs/` and a pid file under `.state/run/`; health is an HTTP probe. Every
failure a user can cause (busy port, missing binary, a service that died) raises
`StackError` with one line saying what to do: the CLI prints it without a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import LAKEFS_VERSION, PROJECT_ROOT, Settings


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


def lakefs_env(settings: Settings, *, database: str, data_dir: Path, port: int) -> dict[str, str]:
    """Environment for `lakefs run` on loopback with the local blockstore.

    `database` is `local` (persistent KV under data_dir) or `mem` (tests). The admin user
    is created from LAKEFS_INSTALLATION_* at first start, without prompts.
    """
    return {
        **os.environ,
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


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_healthy(
    name: str, url: str, proc: subprocess.Popen, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode}: {last_line(log_path)}")
        time.sleep(0.3)
    raise StackError(f"{name} did not answer {url} within {timeout:.0f}s (log: {log_path})")


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
    port: int
    health_url: str
    ui_url: str
    start_timeout: float
    command: Callable[[], tuple[list[str], dict[str, str]]]


def services(settings: Settings) -> list[Service]:
    """The three services of the local stack, in start order."""

    def lakefs_cmd() -> tuple[list[str], dict[str, str]]:
        binary = ensure_lakefs_binary(settings)
        env = lakefs_env(
            settings, database="local", data_dir=settings.lakefs_dir, port=settings.lakefs_port
        )
        return [str(binary), "run"], env

    def mlflow_cmd() -> tuple[list[str], dict[str, str]]:
        artifacts = settings.mlflow_dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow = Path(sys.executable).with_name("mlflow")
        return [
            str(mlflow), "server",
            "--backend-store-uri", settings.mlflow_backend_store_uri,
            "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(settings.mlflow_port),
            "--workers", "1",
        # Telemetry off unless the user says otherwise: a local stack should not phone home
        # (and on these machines nothing beyond the package indexes is reachable).
        ], {"MLFLOW_DISABLE_TELEMETRY": "true", **os.environ}

    def dagster_cmd() -> tuple[list[str], dict[str, str]]:
        prepare_dagster_home(settings)
        dagster = Path(sys.executable).with_name("dagster")
        return [
            str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
            "-h", "127.0.0.1", "-p", str(settings.dagster_port),
        ], {
            **os.environ,
            "DAGSTER_HOME": str(settings.dagster_home),
            # dagster-dbt resolves `dbt` from PATH (DbtProject.prepare_if_dev): use ours.
            "PATH": f"{dagster.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    base = "http://127.0.0.1"
    return [
        Service("lakefs", settings.lakefs_port, f"{base}:{settings.lakefs_port}/_health",
                f"{base}:{settings.lakefs_port}", 60, lakefs_cmd),
        Service("mlflow", settings.mlflow_port, f"{base}:{settings.mlflow_port}/health",
                f"{base}:{settings.mlflow_port}", 120, mlflow_cmd),
        Service("dagster", settings.dagster_port, f"{base}:{settings.dagster_port}/server_info",
                f"{base}:{settings.dagster_port}", 180, dagster_cmd),
    ]


DAGSTER_INSTANCE_YAML = """\
# Written by flywheel: the local Dagster instance `flywheel up`, `flywheel run` and the
# benches share (sqlite run, event and schedule storage in this folder, the default).
telemetry:
  enabled: false  # nothing beyond the package indexes is reachable from these machines
"""


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME with an explicit dagster.yaml (without one Dagster warns on every load)."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_INSTANCE_YAML)
    return settings.dagster_home


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.state_dir / "run" / f"{name}.pid"


def running_pid(settings: Settings, name: str) -> int | None:
    pid_file = _pid_file(settings, name)
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_service(settings: Settings, service: Service) -> str:
    """Start one service unless ours is already healthy; return a status line."""
    if running_pid(settings, service.name) and http_ok(service.health_url):
        return f"{service.name}: already running at {service.ui_url}"
    if not port_is_free(service.port):
        env_name = f"FLYWHEEL_{service.name.upper()}_PORT"
        raise StackError(
            f"{service.name}: port {service.port} is in use by another process; "
            f"stop it or choose another port with {env_name}"
        )
    argv, env = service.command()
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
        wait_until_healthy(service.name, service.health_url, proc, log_path, service.start_timeout)
    except StackError:
        stop_process_group(proc.pid)
        pid_file.unlink(missing_ok=True)
        raise
    return f"{service.name}: started at {service.ui_url} (log {log_path})"


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
    if not http_ok(service.health_url):
        return False, f"{service.name}: UNHEALTHY (pid {pid} does not answer {service.health_url})"
    return True, f"{service.name}: up at {service.ui_url} (pid {pid})"


if __name__ == "__main__":  # `make setup` builds lakeFS with the system Python while uv installs
    from pipeline.settings import get_settings

    try:
        print(f"lakeFS server: {ensure_lakefs_binary(get_settings())}")
    except StackError as error:
        sys.exit(f"flywheel: {error}")
