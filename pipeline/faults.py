"""Failpoints: named places where a test can kill the process for real.

`FLYWHEEL_FAILPOINT=<name>` makes `failpoint(name)` SIGKILL the current process, which is
how the fault tests reproduce "the run died between commit and merge" deterministically,
with no mock: the process really dies and a later run has to recover. Unset in
production, a failpoint is one environment lookup.
"""

import os
import signal


def failpoint(name: str) -> None:
    if os.environ.get("FLYWHEEL_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
