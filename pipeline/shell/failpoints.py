"""Failpoints: named places where a test can make a real process die, deterministically.

`FLYWHEEL_FAILPOINT=<name>` makes `failpoint(name)` SIGKILL the current process: "the
run died between commit and merge". With `FLYWHEEL_FAILPOINT_KILL_PGID=<pgid>` it kills
that process group instead (a lakeFS or MLflow server the test started) and carries on,
so the run meets a dead server on its next request; `FLYWHEEL_FAILPOINT_DELAY_MS` delays
that kill so it lands while the next request is in flight. With
`FLYWHEEL_FAILPOINT_RECORD=<file>` each kill that is delivered appends the failpoint's name
to that file first, so a harness counts the faults that really fired instead of guessing
from exit codes (`fired_failpoints`). No mock: the process really dies and a later run has
to recover. Unset in production, a failpoint is one lookup.
"""

import os
import signal
import threading
from pathlib import Path


def without_failpoints(env: dict[str, str]) -> dict[str, str]:
    """`env` minus every FLYWHEEL_FAILPOINT* variable: for the runs that must not crash."""
    return {k: v for k, v in env.items() if not k.startswith("FLYWHEEL_FAILPOINT")}


def fired_failpoints(record: Path) -> list[str]:
    """The failpoints that fired, in order, as recorded in `record` (none if it was never written)."""
    try:
        return record.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _record_firing(name: str) -> None:
    path = os.environ.get("FLYWHEEL_FAILPOINT_RECORD")
    if not path:
        return
    try:  # one O_APPEND write: a line is never interleaved with another process's
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)
    except OSError:  # the kill must still happen; the harness then counts one firing short
        pass


def failpoint(name: str) -> None:
    if os.environ.get("FLYWHEEL_FAILPOINT") != name:
        return
    target = os.environ.get("FLYWHEEL_FAILPOINT_KILL_PGID")
    if not target:
        _record_firing(name)  # before: nothing runs after the SIGKILL
        os.kill(os.getpid(), signal.SIGKILL)
        return
    delay = float(os.environ.get("FLYWHEEL_FAILPOINT_DELAY_MS", "0")) / 1000

    def kill() -> None:
        try:
            os.killpg(int(target), signal.SIGKILL)
        except ProcessLookupError:  # already dead: a retried step passing here again
            return
        _record_firing(name)

    if delay:
        threading.Timer(delay, kill).start()
    else:
        kill()
