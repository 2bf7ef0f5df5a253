"""Failpoints: named places where a test can make a real process die, deterministically.

`FLYWHEEL_FAILPOINT=<name>` makes `failpoint(name)` SIGKILL the current process: "the
run died between commit and merge". With `FLYWHEEL_FAILPOINT_KILL_PGID=<pgid>` it kills
that process group instead (a lakeFS or MLflow server the test started) and carries on,
so the run meets a dead server on its next request; `FLYWHEEL_FAILPOINT_DELAY_MS` delays
that kill so it lands while the next request is in flight. No mock: the process really
dies and a later run has to recover. Unset in production, a failpoint is one lookup.
"""

import os
import signal
import threading


def without_failpoints(env: dict[str, str]) -> dict[str, str]:
    """`env` minus every FLYWHEEL_FAILPOINT* variable: for the runs that must not crash."""
    return {k: v for k, v in env.items() if not k.startswith("FLYWHEEL_FAILPOINT")}


def failpoint(name: str) -> None:
    if os.environ.get("FLYWHEEL_FAILPOINT") != name:
        return
    target = os.environ.get("FLYWHEEL_FAILPOINT_KILL_PGID")
    if not target:
        os.kill(os.getpid(), signal.SIGKILL)
        return
    delay = float(os.environ.get("FLYWHEEL_FAILPOINT_DELAY_MS", "0")) / 1000

    def kill() -> None:
        try:
            os.killpg(int(target), signal.SIGKILL)
        except ProcessLookupError:  # already dead: a retried step passing here again
            pass

    if delay:
        threading.Timer(delay, kill).start()
    else:
        kill()
