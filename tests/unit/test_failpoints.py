"""pipeline.shell.failpoints with real processes: a failpoint kills its own process or a
process group it is given, and records each kill it delivers, so a harness counts the faults
that fired instead of inferring them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.shell.failpoints import fired_failpoints, without_failpoints

ROOT = Path(__file__).resolve().parents[2]
_PASS_THROUGH = ("from pipeline.shell.failpoints import failpoint\n"
                 "failpoint('release.after_commit')\n"
                 "print('carried on')\n")


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", _PASS_THROUGH], env={**without_failpoints(dict(os.environ)),
                          "PYTHONPATH": path, **env}, capture_output=True, text=True, timeout=60)


def test_a_failpoint_kills_its_process_and_records_that_it_fired(tmp_path: Path) -> None:
    record = tmp_path / "fired"
    run = _run({"FLYWHEEL_FAILPOINT": "release.after_commit", "FLYWHEEL_FAILPOINT_RECORD": str(record)})
    assert run.returncode == -signal.SIGKILL and "carried on" not in run.stdout
    assert fired_failpoints(record) == ["release.after_commit"]


def test_another_failpoints_name_neither_kills_nor_records(tmp_path: Path) -> None:
    record = tmp_path / "fired"
    run = _run({"FLYWHEEL_FAILPOINT": "release.after_merge", "FLYWHEEL_FAILPOINT_RECORD": str(record)})
    assert run.returncode == 0 and "carried on" in run.stdout
    assert fired_failpoints(record) == [] and not record.exists()


@pytest.mark.parametrize("delay_ms", ["0", "30"])
def test_a_kill_of_another_process_group_is_recorded_once_delivered(tmp_path: Path, delay_ms: str) -> None:
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    record = tmp_path / "fired"
    try:
        run = _run({"FLYWHEEL_FAILPOINT": "release.after_commit", "FLYWHEEL_FAILPOINT_KILL_PGID": str(victim.pid),
                    "FLYWHEEL_FAILPOINT_DELAY_MS": delay_ms, "FLYWHEEL_FAILPOINT_RECORD": str(record)})
        assert run.returncode == 0 and "carried on" in run.stdout  # the run itself goes on
        assert victim.wait(timeout=10) == -signal.SIGKILL
        assert fired_failpoints(record) == ["release.after_commit"]
    finally:
        if victim.poll() is None:
            victim.kill()


def test_a_kill_that_finds_its_target_gone_did_not_fire(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    record = tmp_path / "fired"
    run = _run({"FLYWHEEL_FAILPOINT": "release.after_commit", "FLYWHEEL_FAILPOINT_KILL_PGID": str(gone.pid),
                "FLYWHEEL_FAILPOINT_RECORD": str(record)})
    assert run.returncode == 0
    assert fired_failpoints(record) == []
