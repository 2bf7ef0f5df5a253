"""The one place that decides paths, endpoints and credentials.

Every value comes from a `FLYWHEEL_*` environment variable with a local default, so the
same code runs the embedded demo (everything under the project's `.state/` directory) and a
deployment (remote lakeFS, MLflow server, warehouse). Secrets are held as `Secret`, whose
repr and str are masked, so that printing or logging a Settings object never leaks them.

`FLYWHEEL_PROFILE` picks the profile: `local` (default: sqlite for Dagster and MLflow, a
local KV for lakeFS) or `production` (all three on PostgreSQL: a managed server named by
FLYWHEEL_POSTGRES_HOST, else one `flywheel up` starts under the state directory). The
production profile keeps its services' data under `$STATE/production/`, so a trial beside
the demo shares neither pid files nor stores with it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Parts of the repository the code reads: the dbt project and the GX suites.
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

# Pinned lakeFS server release: the Python SDK pins (lakefs 0.16 / lakefs-sdk 1.88) speak
# its API, and v1.84.0 is verified to build with Go 1.26 from the module proxy.
LAKEFS_VERSION = "v1.84.0"
REDACTION_MODES = ("surrogates", "placeholders")
PROFILES = ("local", "production")
# The superuser of the PostgreSQL server `flywheel up --profile production` starts itself
# (pipeline/shell/postgres.py creates the cluster with it); a managed server's user is
# FLYWHEEL_POSTGRES_USER.
LOCAL_POSTGRES_USER = "flywheel"


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


@dataclass(frozen=True)
class PostgresConnection:
    """Where the production profile's PostgreSQL is, and as whom; `str`/`repr` and
    `display()` never show the password."""

    host: str
    port: int
    user: str
    password: Secret
    sslmode: str = ""  # libpq's sslmode (require, verify-full, ...); "" = libpq's default
    managed: bool = False  # a server someone else runs (FLYWHEEL_POSTGRES_HOST), not ours

    def url(self, database: str, scheme: str = "postgresql+psycopg2") -> Secret:
        """A SQLAlchemy URL (psycopg2: SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3,
        which is not installed) or, with scheme "postgresql" or "postgres", a libpq one; the
        password is in it, hence a Secret."""
        query = f"?sslmode={quote(self.sslmode)}" if self.sslmode else ""
        return Secret(f"{scheme}://{quote(self.user, safe='')}:{quote(self.password.reveal(), safe='')}"
                      f"@{self.host}:{self.port}/{quote(database, safe='')}{query}")

    def display(self, database: str = "") -> str:
        """The URL without the password, for status lines and logs."""
        query = f"?sslmode={self.sslmode}" if self.sslmode else ""
        path = f"/{database}" if database or query else ""
        return f"postgresql://{self.user}@{self.host}:{self.port}{path}{query}"

    def __repr__(self) -> str:
        return f"PostgresConnection({self.display()})"

    __str__ = __repr__


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
    # What the tracking server stores runs in, when set explicitly (it may hold a password:
    # kept out of repr); "" in the production profile = the `mlflow` database on PostgreSQL.
    # Use mlflow_backend_store().
    mlflow_backend_store_uri: str = field(default="", repr=False)
    # Dagster
    dagster_port: int = 3000
    # Runs the production instance's queue launches at once (the QueuedRunCoordinator's
    # max_concurrent_runs); training runs are held to one at a time whatever this says.
    dagster_max_concurrent_runs: int = 10
    # dbt stays on DuckDB in both profiles for now. The curation SQL is portable (the same
    # marts on the PostgreSQL `warehouse` target: tests/integration/test_portable_warehouse.py),
    # but ingestion, redaction and the release still read and write DuckDB only.
    dbt_target: str = "duckdb"
    ingest_workers: int = 1  # processes that parse one partition's files in parallel
    partition_start: str = "2026-11-01"  # first day of the daily partitions
    nightly_cron: str = "0 2 * * *"  # when nightly_retrain runs (UTC)
    # What replaces personal data at the redaction boundary: realistic surrogates (default;
    # agents trained on placeholders learn to write them) or placeholders such as <EMAIL_1>.
    redaction: str = "surrogates"
    surrogate_key_env: Secret | None = None  # FLYWHEEL_SURROGATE_KEY; else a key file in the state dir
    # A judge model behind an OpenAI-compatible endpoint labels what nothing verified
    # (pipeline/core/judge.py). No URL: the judge_labels asset writes nothing.
    judge_url: str = ""  # FLYWHEEL_JUDGE_URL, e.g. http://127.0.0.1:8000/v1
    judge_model: str = ""  # FLYWHEEL_JUDGE_MODEL, as the server names it
    judge_api_key: Secret | None = None  # FLYWHEEL_JUDGE_API_KEY, when the server wants one
    judge_agreement_sample: int = 50  # verified records per day it also scores, to measure agreement
    profile: str = "local"  # FLYWHEEL_PROFILE: local | production
    # PostgreSQL, production profile only. No host: the server `flywheel up` starts under the
    # state directory (loopback, a free port recorded at first start, a generated password).
    postgres_host: str | None = None
    postgres_port_env: int | None = None  # FLYWHEEL_POSTGRES_PORT; managed default 5432
    postgres_user: str = LOCAL_POSTGRES_USER
    postgres_password_env: Secret | None = None  # FLYWHEEL_POSTGRES_PASSWORD; else the generated one
    postgres_sslmode: str = ""
    postgres_dagster_db: str = "dagster"
    postgres_mlflow_db: str = "mlflow"
    postgres_lakefs_db: str = "lakefs"

    def __post_init__(self) -> None:
        if self.redaction not in REDACTION_MODES:
            raise ValueError(f"FLYWHEEL_REDACTION must be one of {', '.join(REDACTION_MODES)}, "
                             f"got {self.redaction!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"FLYWHEEL_PROFILE must be one of {', '.join(PROFILES)}, got {self.profile!r}")

    @property
    def production(self) -> bool:
        return self.profile == "production"

    @property
    def profile_dir(self) -> Path:
        """Where this profile's services keep their data, pid files and logs."""
        return self.state_dir / "production" if self.production else self.state_dir

    @property
    def lakefs_dir(self) -> Path:
        return self.profile_dir / "lakefs"

    @property
    def mlflow_dir(self) -> Path:
        return self.profile_dir / "mlflow"

    @property
    def dagster_home(self) -> Path:
        return self.profile_dir / "dagster_home"

    @property
    def postgres_dir(self) -> Path:
        """The local trial server: its cluster in `data/`, its port in `port`."""
        return self.profile_dir / "postgres"

    @property
    def postgres_password_file(self) -> Path:
        return self.state_dir / "secrets" / "postgres.password"

    @property
    def postgres_managed(self) -> bool:
        return self.postgres_host is not None

    def postgres_password(self) -> Secret:
        """FLYWHEEL_POSTGRES_PASSWORD, else a random password made once for this state
        directory (mode 0600), the local trial server's."""
        if self.postgres_password_env is not None:
            return self.postgres_password_env
        return _secret_file(self.postgres_password_file, lambda: secrets.token_urlsafe(24))

    def postgres_port(self) -> int | None:
        """FLYWHEEL_POSTGRES_PORT; else 5432 for a managed server, or the port the local trial
        server was given at its first start (None before that)."""
        if self.postgres_port_env is not None:
            return self.postgres_port_env
        if self.postgres_managed:
            return 5432
        try:
            return int((self.postgres_dir / "port").read_text())
        except (OSError, ValueError):
            return None

    def postgres(self) -> PostgresConnection | None:
        """The production profile's PostgreSQL; None while the local trial server has no port yet."""
        port = self.postgres_port()
        if port is None:
            return None
        managed = self.postgres_managed
        return PostgresConnection(
            host=self.postgres_host if managed else "127.0.0.1", port=port,
            user=self.postgres_user if managed else LOCAL_POSTGRES_USER,
            password=self.postgres_password(), sslmode=self.postgres_sslmode, managed=managed,
        )

    def mlflow_backend_store(self) -> Secret | None:
        """What the tracking server stores runs in: FLYWHEEL_MLFLOW_BACKEND_STORE_URI, else
        sqlite under the state directory (local) or the `mlflow` database on PostgreSQL
        (production; None while its server has not been started)."""
        if self.mlflow_backend_store_uri:
            return Secret(self.mlflow_backend_store_uri)
        connection = self.postgres()
        return connection.url(self.postgres_mlflow_db) if connection else None

    @property
    def gx_dir(self) -> Path:
        """GX file context whose Data Docs site the validation checks link to."""
        return self.state_dir / "gx"

    @property
    def logs_dir(self) -> Path:
        return self.profile_dir / "logs"

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
        return _secret_file(self.surrogate_key_file, lambda: secrets.token_hex(32))

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


def _secret_file(path: Path, make: Callable[[], str]) -> Secret:
    """The secret in `path`, made by `make()` the first time (mode 0600, never replaced)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(make())
    return Secret(path.read_text().strip())


def masked_url(url: str) -> str:
    """`url` with any password replaced by ***, for status lines."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        return parts._replace(netloc=f"{parts.username or ''}:***@{netloc[-1]}").geturl()
    except ValueError:
        return "<unparseable URL>"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    state_dir = _path("STATE_DIR", PROJECT_ROOT / ".state")
    profile = _env("PROFILE", "local")
    profile_dir = state_dir / "production" if profile == "production" else state_dir
    lakefs_port = int(_env("LAKEFS_PORT", "8000"))
    mlflow_port = int(_env("MLFLOW_PORT", "5000"))
    mlflow_dir = profile_dir / "mlflow"
    postgres_port = os.environ.get("FLYWHEEL_POSTGRES_PORT")
    return Settings(
        state_dir=state_dir,
        landing_dir=_path("LANDING_DIR", state_dir / "landing"),
        tools_dir=_path("TOOLS_DIR", state_dir / "tools"),
        duckdb_path=_path("DUCKDB_PATH", profile_dir / "warehouse.duckdb"),
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
        # keeps runs in sqlite (local) or PostgreSQL (production) and artifacts on local disk
        # under the state directory.
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{mlflow_port}"),
        mlflow_backend_store_uri=_env(
            "MLFLOW_BACKEND_STORE_URI", "" if profile == "production" else f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        ),
        dagster_port=int(_env("DAGSTER_PORT", "3000")),
        dagster_max_concurrent_runs=int(_env("DAGSTER_MAX_CONCURRENT_RUNS", "10")),
        dbt_target=_env("DBT_TARGET", "duckdb"),
        # The CPUs this process may run on (affinity, cpusets), not every CPU of the host.
        ingest_workers=int(_env("INGEST_WORKERS", str(len(os.sched_getaffinity(0))))),
        partition_start=_env("PARTITION_START", "2026-11-01"),
        nightly_cron=_env("NIGHTLY_CRON", "0 2 * * *"),
        redaction=_env("REDACTION", "surrogates"),
        surrogate_key_env=Secret(os.environ["FLYWHEEL_SURROGATE_KEY"]) if os.environ.get("FLYWHEEL_SURROGATE_KEY")
        else None,
        judge_url=_env("JUDGE_URL", ""),
        judge_model=_env("JUDGE_MODEL", ""),
        judge_api_key=Secret(os.environ["FLYWHEEL_JUDGE_API_KEY"]) if os.environ.get("FLYWHEEL_JUDGE_API_KEY")
        else None,
        judge_agreement_sample=int(_env("JUDGE_AGREEMENT_SAMPLE", "50")),
        profile=profile,
        postgres_host=os.environ.get("FLYWHEEL_POSTGRES_HOST") or None,
        postgres_port_env=int(postgres_port) if postgres_port else None,
        postgres_user=_env("POSTGRES_USER", LOCAL_POSTGRES_USER),
        postgres_password_env=Secret(os.environ["FLYWHEEL_POSTGRES_PASSWORD"])
        if os.environ.get("FLYWHEEL_POSTGRES_PASSWORD") else None,
        postgres_sslmode=_env("POSTGRES_SSLMODE", ""),
        postgres_dagster_db=_env("POSTGRES_DAGSTER_DB", "dagster"),
        postgres_mlflow_db=_env("POSTGRES_MLFLOW_DB", "mlflow"),
        postgres_lakefs_db=_env("POSTGRES_LAKEFS_DB", "lakefs"),
    )
