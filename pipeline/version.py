"""The code version recorded on every commit, run and model: the git commit of this
checkout, marked `-dirty` when it has uncommitted changes (so an auditor knows the exact
code cannot be recovered from git alone). `FLYWHEEL_CODE_VERSION` overrides it where the
deployment has no git checkout (a container image tag, say)."""

import os
import subprocess
from functools import lru_cache

from pipeline.settings import PROJECT_ROOT


@lru_cache(maxsize=1)
def code_version() -> str:
    if os.environ.get("FLYWHEEL_CODE_VERSION"):
        return os.environ["FLYWHEEL_CODE_VERSION"]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha
