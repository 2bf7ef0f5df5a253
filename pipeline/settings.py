"""The one place that decides paths, endpoints and credentials.

Every value comes from a `FLYWHEEL_*` environment variable with a local default, so the
same code runs the embedded demo (everything under the project's `.state/` directory) and a
deployment (remote lakeFS, MLflow server, warehouse). Secrets are held as `Secret`, whose
repr and str are masked, so that printing or logging a Settings object never leaks them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Parts of the repository the code reads: the dbt project and the GX suites.
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

# Pinned lakeFS server release: the Python SDK pins (lakefs 0.16 / lakefs-sdk 1.88) speak
# its API, and v1.84.0 is verified to build with Go 1.26 from the module proxy.
LAKEFS_VERSION = "v1.84.0"
REDACTION_MODES = ("surrogates", "placeholders")


class Secret:
    """A credential that never shows itself in repr/str/logs; `.reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FLYWHEEL_{name}", default)


def _path(name: str, default: Path) -> Path:
    return Path(_env(name, str(default))).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    landing_dir: Path
    tools_dir: Path
    duckdb_path: Path
    sources_file: Path  # the source registry: which landing files are whose logs, read how
    # lakeFS
    lakefs_port: int
    lakefs_endpoint: str
    lakefs_access_key_id: str
    lakefs_secret_access_key: Secret = field(repr=True)
    lakefs_encrypt_secret: Secret = field(repr=True)
    lakefs_bin: str | None = None  # explicit binary; else PATH; else the built one
    raw_repo: str = "raw-agent-logs"
    datasets_repo: str = "agent-datasets"
    # MLflow
    mlflow_port: int = 5000
    mlflow_tracking_uri: str = ""  # what clients (assets, CLI) talk to
    mlflow_backend_store_uri: str = ""  # what the tracking server stores runs in
    # Dagster
    dagster_port: int = 3000
    dbt_target: str = "duckdb"
    ingest_workers: int = 1  # processes that parse one partition's files in parallel
    partition_start: str = "2026-11-01"  # first day of the daily partitions
    nightly_cron: str = "0 2 * * *"  # when nightly_retrain runs (UTC)
    # What replaces personal data at the redaction boundary: realistic surrogates (default;
    # agents trained on placeholders learn to write them) or placeholders such as <EMAIL_1>.
    redaction: str = "surrogates"
    surrogate_key_env: Secret | None = None  # FLYWHEEL_SURROGATE_KEY; else a key file in the state dir

    def __post_init__(self) -> None:
        if self.redaction not in REDACTION_MODES:
            raise ValueError(f"FLYWHEEL_REDACTION must be one of {', '.join(REDACTION_MODES)}, "
                             f"got {self.redaction!r}")

    @property
    def lakefs_dir(self) -> Path:
        return self.state_dir / "lakefs"

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster_home"

    @property
    def gx_dir(self) -> Path:
        """GX file context whose Data Docs site the validation checks link to."""
        return self.state_dir / "gx"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def built_lakefs_bin(self) -> Path:
        return self.tools_dir / f"lakefs-{LAKEFS_VERSION}" / "lakefs"

    @property
    def surrogate_key_file(self) -> Path:
        return self.state_dir / "secrets" / "surrogate.key"

    def surrogate_key(self) -> Secret:
        """The key that seeds surrogates (hex). From FLYWHEEL_SURROGATE_KEY, else a random key
        made once for this state directory (mode 0600): anyone holding it could test a guess
        of an original value against its surrogate, so it is never a shared default."""
        if self.surrogate_key_env is not None:
            return self.surrogate_key_env
        path = self.surrogate_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                pass
            else:
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_hex(32))
        return Secret(path.read_text().strip())

    def surrogate_key_bytes(self) -> bytes | None:
        """The surrogate key for redaction (32 bytes derived from the key text, whatever its
        form), or None when placeholders are configured."""
        if self.redaction != "surrogates":
            return None
        return hashlib.sha256(self.surrogate_key().reveal().encode()).digest()

    @property
    def lakectl_config(self) -> Path:
        """The demo credentials in lakectl's format, kept out of $HOME. The pipeline passes
        credentials explicitly; `LAKECTL_CONFIG_FILE=<this>` lets lakectl and the SDK find them."""
        return self.state_dir / "lakectl.yaml"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    state_dir = _path("STATE_DIR", PROJECT_ROOT / ".state")
    lakefs_port = int(_env("LAKEFS_PORT", "8000"))
    mlflow_port = int(_env("MLFLOW_PORT", "5000"))
    mlflow_dir = state_dir / "mlflow"
    return Settings(
        state_dir=state_dir,
        landing_dir=_path("LANDING_DIR", state_dir / "landing"),
        tools_dir=_path("TOOLS_DIR", state_dir / "tools"),
        duckdb_path=_path("DUCKDB_PATH", state_dir / "warehouse.duckdb"),
        sources_file=_path("SOURCES", PROJECT_ROOT / "sources.yaml"),
        lakefs_port=lakefs_port,
        lakefs_endpoint=_env("LAKEFS_ENDPOINT", f"http://127.0.0.1:{lakefs_port}"),
        # Local-demo credentials: only ever used against the loopback server that
        # `flywheel up` starts. A deployment sets its own through the environment.
        lakefs_access_key_id=_env("LAKEFS_ACCESS_KEY_ID", "AKIAIOSFOLQUICKSTART"),
        lakefs_secret_access_key=Secret(
            _env("LAKEFS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLOCALDEMO")
        ),
        lakefs_encrypt_secret=Secret(_env("LAKEFS_ENCRYPT_SECRET", "flywheel-local-demo-only")),
        lakefs_bin=os.environ.get("FLYWHEEL_LAKEFS_BIN") or None,
        raw_repo=_env("RAW_REPO", "raw-agent-logs"),
        datasets_repo=_env("DATASETS_REPO", "agent-datasets"),
        mlflow_port=mlflow_port,
        # Clients go through the tracking server, as they would in production; the server
        # keeps runs in sqlite and artifacts on local disk under the state directory.
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{mlflow_port}"),
        mlflow_backend_store_uri=_env(
            "MLFLOW_BACKEND_STORE_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        ),
        dagster_port=int(_env("DAGSTER_PORT", "3000")),
        dbt_target=_env("DBT_TARGET", "duckdb"),
        # The CPUs this process may run on (affinity, cpusets), not every CPU of the host.
        ingest_workers=int(_env("INGEST_WORKERS", str(len(os.sched_getaffinity(0))))),
        partition_start=_env("PARTITION_START", "2026-11-01"),
        nightly_cron=_env("NIGHTLY_CRON", "0 2 * * *"),
        redaction=_env("REDACTION", "surrogates"),
        surrogate_key_env=Secret(os.environ["FLYWHEEL_SURROGATE_KEY"]) if os.environ.get("FLYWHEEL_SURROGATE_KEY")
        else None,
    )
