"""`flywheel up/status/down` with real processes: a busy port and a dead service each give
one clear line, not a traceback."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pipeline.shell.ports import free_port

FLYWHEEL = str(Path(sys.executable).with_name("flywheel"))


def _env(tmp_path: Path, **ports: int) -> dict[str, str]:
    env = {**os.environ, "FLYWHEEL_STATE_DIR": str(tmp_path / "state")}
    env.update({f"FLYWHEEL_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    return env


def _flywheel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FLYWHEEL, *args], env=env, capture_output=True, text=True, timeout=300)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_busy_port_is_one_clear_line(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _flywheel(_env(tmp_path, lakefs=port), "up", "--only", "lakefs")
    line = _one_error_line(result)
    assert f"port {port} is in use" in line and "FLYWHEEL_LAKEFS_PORT" in line


def test_up_status_dead_service_and_down(tmp_path):
    env = _env(tmp_path, lakefs=free_port(), mlflow=free_port(), dagster=free_port())
    try:
        started = _flywheel(env, "up", "--only", "lakefs")
        assert started.returncode == 0, started.stderr
        assert "lakefs: started" in started.stdout
        config = tmp_path / "state" / "lakectl.yaml"
        assert oct(config.stat().st_mode & 0o777) == "0o600"
        # Credentials are written for the SDK, never printed.
        secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLOCALDEMO"
        assert secret in config.read_text() and secret not in started.stdout + started.stderr

        again = _flywheel(env, "up", "--only", "lakefs")
        assert "lakefs: already running" in again.stdout

        status = _flywheel(env, "status")
        assert "lakefs: up at" in status.stdout
        assert "mlflow: not running" in status.stdout
        assert status.returncode == 1  # not everything is up

        pid = int((tmp_path / "state" / "run" / "lakefs.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        dead = _flywheel(env, "status")
        assert "lakefs: DEAD" in dead.stdout or "lakefs: UNHEALTHY" in dead.stdout
        assert "Traceback" not in dead.stdout + dead.stderr
    finally:
        stopped = _flywheel(env, "down")
        assert stopped.returncode == 0


def test_dagster_definitions_validate_passes(tmp_path):
    """What `dagster dev` loads: the workspace's code location validates."""
    from pipeline.settings import PROJECT_ROOT

    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "dagster"), "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "All code locations passed validation" in output
