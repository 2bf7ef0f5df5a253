"""A local PostgreSQL server from Debian's packages, for a single-machine trial of the
production profile and for tests: initdb under a directory of ours, a loopback port, a
generated password, scram-sha-256 authentication.

PostgreSQL refuses to run as root (as CI and these machines do): when we are root, the
cluster belongs to the `postgres` user the Debian package creates and its commands run as
that user (`setpriv`), so the data directory and its parents must be traversable by it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "flywheel"
RUN_AS = "postgres"  # the Debian package's system user, when we are root


class PostgresError(RuntimeError):
    """The local server could not be set up or started; the message says what to do."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str, driver: str = "postgresql") -> str:
        """A SQLAlchemy/libpq URL (`driver` e.g. "postgresql+psycopg2")."""
        return f"{driver}://{quote(self.user)}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"PostgresServer({self.user}@{self.host}:{self.port})"


def bin_dir() -> Path:
    """The newest PostgreSQL of Debian's packages (/usr/lib/postgresql/<version>/bin)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise PostgresError("PostgreSQL is not installed: apt-get install -y postgresql "
                            "(or point FLYWHEEL_POSTGRES_URL at a managed server)")
    return versions[-1].parent


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", "--", *argv]


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")


def _hand_over(path: Path) -> None:
    """Make `path` the server user's (when we are root) and its parents traversable."""
    if os.geteuid() != 0:
        return
    shutil.chown(path, RUN_AS, RUN_AS)
    for parent in path.parents:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)  # search only: listing stays as it was


def init_cluster(data_dir: Path, password: str) -> None:
    """initdb once; a directory that already holds a cluster is kept as it is."""
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    _hand_over(data_dir)
    with tempfile.NamedTemporaryFile("w", dir=data_dir.parent, prefix=".pwfile-", delete=False) as pwfile:
        pwfile.write(password + "\n")
    try:
        _hand_over(Path(pwfile.name))
        _run([str(bin_dir() / "initdb"), "-D", str(data_dir), f"--username={SUPERUSER}",
              f"--pwfile={pwfile.name}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"], "initdb")
    finally:
        os.unlink(pwfile.name)


def start(data_dir: Path, port: int, log_file: Path, password: str) -> PostgresServer:
    """Start the cluster on 127.0.0.1:`port`, TCP only: no Unix socket (never in /run, and
    none in the data directory either, whose path may pass the 107 bytes a socket path may
    have: a state directory a few folders deep does)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.touch()
    _hand_over(log_file)
    # pg_ctl hands these to a shell: '' is an empty unix_socket_directories, i.e. none.
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k ''"
    _run([str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l", str(log_file), "-w", "start"],
         f"starting PostgreSQL (log: {log_file})")
    return PostgresServer("127.0.0.1", port, SUPERUSER, password)


def stop(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        _run([str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], "stopping PostgreSQL")


def create_databases(server: PostgresServer, names: list[str]) -> None:
    """Each database of `names` that does not exist yet."""
    import psycopg2

    con = psycopg2.connect(server.url("postgres"))
    try:
        con.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with con.cursor() as cur:
            for name in names:
                cur.execute("select 1 from pg_database where datname = %s", [name])
                if cur.fetchone() is None:
                    cur.execute(f'create database "{name}"')
    finally:
        con.close()


@contextmanager
def throwaway_postgres(port: int, databases: list[str]) -> Iterator[PostgresServer]:
    """A server in a temporary directory with a random password, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    root.chmod(0o755)  # the server's user must reach its data directory inside
    data_dir = root / "data"
    password = os.urandom(18).hex()
    try:
        init_cluster(data_dir, password)
        server = start(data_dir, port, root / "postgres.log", password)
        try:
            create_databases(server, databases)
            yield server
        finally:
            stop(data_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)
