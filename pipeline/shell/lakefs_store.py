"""Immutable capture of raw files in lakeFS.

A partition's landing files are written on a short-lived branch, committed with metadata
that says what they are (partition, checksums, Dagster run id), and merged into `main`.
The commit on that branch is the immutable id everything downstream records; reads always
go through a commit id, never a branch head. `verify_commit` checks that a commit holds
exactly the bytes a caller still has in memory (ingestion parses those instead of
downloading the commit again).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MAIN = "main"
# Object reads and writes in flight at once. One at a time, each request waits on its own
# round trip (~15 ms per file against a local server). The SDK's connection pool is
# thread-safe and holds 5 connections per CPU: no more threads than that.
IO_THREADS = min(8, 5 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class RawCommit:
    repo: str
    commit_id: str  # commit on the ingest branch holding exactly this partition's files
    prefix: str  # the partition's folder in the repository
    merge_commit_id: str  # the merge of that commit into main
    paths: dict[str, str]  # file name -> object path in the repository
    checksums: dict[str, str]  # file name -> sha256 hex

    def uri(self, name: str) -> str:
        return f"lakefs://{self.repo}/{self.commit_id}/{self.paths[name]}"


def lakefs_client(endpoint: str) -> Any:
    """A `lakefs` SDK client for `endpoint`, with the credentials of the settings (read at
    call time, so they never become resource config)."""
    import lakefs

    from pipeline.settings import get_settings

    settings = get_settings()
    return lakefs.Client(
        host=endpoint,
        username=settings.lakefs_access_key_id,
        password=settings.lakefs_secret_access_key.reveal(),
    )


@dataclass(frozen=True)
class FileDigest:
    """A file's size and MD5, as lakeFS's local and S3 blockstores report an object's."""

    size: int
    md5: str

    @classmethod
    def of(cls, data: bytes) -> FileDigest:
        return cls(len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())


def _stream_digest(stream: IO[bytes], *hashes: Any) -> None:
    """Feed a stream to `hashes` a chunk at a time (hashlib releases the GIL meanwhile)."""
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        for h in hashes:
            h.update(chunk)


_CHUNK = 1 << 20


def partition_prefix(partition: str) -> str:
    return f"dt={partition}/"


def branch_name(prefix: str, partition: str, run_id: str) -> str:
    """lakeFS branch ids allow letters, digits, '-' and '_' only."""
    return re.sub(r"[^\w-]", "-", f"{prefix}-{partition}-{run_id[:8]}")


def _list_paths(ref: Any, prefix: str) -> list[str]:
    return [obj.path for obj in ref.objects(prefix=prefix)]


def commit_partition_files(
    repo: Any,
    partition: str,
    files: Mapping[str, bytes | Path],
    *,
    run_id: str,
    extra_metadata: Mapping[str, str] | None = None,
) -> RawCommit:
    """Make `dt=<partition>/` in the repository hold exactly `files` (each its bytes, or a
    local file streamed from disk), as one commit.

    Re-running with the same files yields a new (empty) commit with the new run id, so each
    ingestion run has its own auditable commit; a crashed earlier attempt's branch is
    discarded and redone.
    """
    prefix = partition_prefix(partition)
    paths = {name: prefix + name for name in files}
    # Branches left by crashed attempts at this partition hold nothing that main needs:
    # discard them so a re-run starts from main's current state.
    for leftover in list(repo.branches(prefix=branch_name("ingest", partition, ""))):
        leftover.delete()
    branch = repo.branch(branch_name("ingest", partition, run_id)).create(MAIN)
    stale = [p for p in _list_paths(branch, prefix) if p not in set(paths.values())]
    if stale:
        branch.delete_objects(stale)

    def upload(name: str) -> str:
        content, checksum = files[name], hashlib.sha256()
        with (content.open("rb") if isinstance(content, Path) else io.BytesIO(content)) as source, \
                branch.object(paths[name]).writer(mode="wb") as target:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                checksum.update(chunk)  # hashlib releases the GIL: hashing overlaps the uploads
                target.write(chunk)
        return checksum.hexdigest()

    with ThreadPoolExecutor(IO_THREADS) as pool:
        checksums = dict(zip(sorted(files), pool.map(upload, sorted(files))))
    metadata = {
        "partition": partition,
        "dagster_run_id": run_id,
        "files_sha256": json.dumps(checksums, sort_keys=True),
        **(extra_metadata or {}),
    }
    commit = branch.commit(
        f"raw agent logs for {partition} ({len(files)} files)", metadata=metadata, allow_empty=True
    )
    merge_commit = branch.merge_into(
        repo.branch(MAIN),
        message=f"merge raw agent logs for {partition}",
        metadata={"partition": partition, "dagster_run_id": run_id, "source_commit": commit.id},
        allow_empty=True,
    )
    branch.delete()
    return RawCommit(repo.id, commit.id, prefix, merge_commit, paths, checksums)


class CommitMismatch(RuntimeError):
    """A commit does not hold the bytes that were uploaded to it."""


def verify_commit(repo: Any, raw: RawCommit, digests: Mapping[str, FileDigest]) -> None:
    """Raise CommitMismatch unless `raw.commit_id` holds exactly the files of `digests` (the
    size and MD5 of the bytes that were parsed) under `raw.prefix`.

    One listing of the commit gives each object's size and the checksum lakeFS computed from
    the bytes it stored: the MD5 hex digest on the local and S3 (single-part) blockstores.
    An object whose checksum has another form is read back (streamed) and hashed here."""
    listed = {obj.path: obj for obj in repo.ref(raw.commit_id).objects(prefix=raw.prefix)}
    expected = {raw.paths[name]: digest for name, digest in digests.items()}
    problems = [f"{path}: not in the commit" for path in sorted(expected.keys() - listed.keys())]
    problems += [f"{path}: not uploaded" for path in sorted(listed.keys() - expected.keys())]
    unverified = []
    for path in sorted(expected.keys() & listed.keys()):
        digest, stats = expected[path], listed[path]
        if stats.size_bytes != digest.size:
            problems.append(f"{path}: {stats.size_bytes} bytes in the commit, {digest.size} uploaded")
        elif not _MD5_HEX.fullmatch(stats.checksum or ""):
            unverified.append(path)
        elif stats.checksum != digest.md5:
            problems.append(f"{path}: checksum {stats.checksum} differs from the uploaded bytes'")
    ref = repo.ref(raw.commit_id)
    for path in unverified:
        md5 = hashlib.md5(usedforsecurity=False)
        with ref.object(path).reader(mode="rb") as handle:
            _stream_digest(handle, md5)
        if md5.hexdigest() != expected[path].md5:
            problems.append(f"{path}: its bytes in the commit differ from the uploaded ones")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CommitMismatch(f"commit {raw.commit_id} of {raw.repo} does not hold the uploaded files: "
                             + "; ".join(problems[:5]) + more)


_MD5_HEX = re.compile(r"[0-9a-f]{32}")


def read_objects(repo: Any, commit_id: str, paths: Iterable[str]) -> list[tuple[str, bytes]]:
    """Read objects at an exact commit id (never a branch head), several at a time."""
    ref = repo.ref(commit_id)

    def read(path: str) -> tuple[str, bytes]:
        with ref.object(path).reader(mode="rb") as handle:
            return path, handle.read()

    with ThreadPoolExecutor(IO_THREADS) as pool:
        return list(pool.map(read, paths))
