"""Write-audit-publish of a dataset release on lakeFS.

1. write: on a fresh branch of the datasets repository, the marts as Parquet and the data
   card go under `datasets/`; the validation verdict, listing the checksum of every object
   it vouches for, goes to `_validation/verdict.json`; one commit carries the audit
   metadata.
2. audit: the caller validated the exact bytes written (see assets/release.py); the verdict
   says whether they passed.
3. publish: only a passing verdict is merged into `main` and tagged `dataset-<day>-<n>`.
   The lakeFS pre-merge hook (pipeline/shell/lakefs_hooks/) re-checks the verdict on the server,
   so a merge without one is refused whoever attempts it.

Re-running is safe: a release is identified by the digest of its content, so a run that
crashed after the merge (or after the tag) finds its release instead of making another.
A failed audit leaves its branch in place for inspection and raises `ReleaseRejected`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.shell.failpoints import failpoint
from pipeline.shell.lakefs_store import MAIN, branch_name, read_objects

DATA_PREFIX = "datasets/"
VERDICT_PATH = "_validation/verdict.json"
ACTIONS_PREFIX = "_lakefs_actions/"
HOOKS_DIR = Path(__file__).resolve().parent / "lakefs_hooks"
TAG_PREFIX = "dataset-"
# How far back on main to look for a merged-but-untagged release of the same content.
MAIN_LOOKBACK = 50


class ReleaseRejected(RuntimeError):
    """The audit failed: main is unchanged and `branch` holds the evidence."""

    def __init__(self, branch: str, reasons: list[str]) -> None:
        self.branch = branch
        self.reasons = reasons
        super().__init__(
            f"release rejected, main unchanged; inspect lakeFS branch '{branch}': "
            + "; ".join(reasons)
        )


@dataclass(frozen=True)
class Release:
    repo: str
    branch: str
    commit_id: str  # the release commit on the branch (what was validated)
    merge_commit_id: str  # the merge into main (what the tag points at)
    tag: str
    content_digest: str
    paths: dict[str, str] = field(default_factory=dict)  # file name -> object path
    reused: bool = False  # True when this content was already released

    def uri(self, name: str) -> str:
        """Immutable address of one released file: by commit id, never a branch."""
        return f"lakefs://{self.repo}/{self.merge_commit_id}/{self.paths[name]}"


def read_release_file(repo: Any, commit_id: str, name: str) -> bytes:
    """One released file (`sft_examples.parquet`, ...) at the release's exact commit id."""
    [(_, data)] = read_objects(repo, commit_id, [DATA_PREFIX + name])
    return data


def content_digest(files: Mapping[str, bytes]) -> str:
    """Digest of the release content (names and bytes), independent of upload order."""
    outer = hashlib.sha256()
    for name in sorted(files):
        outer.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return outer.hexdigest()


def install_hooks(repo: Any) -> str | None:
    """Make main carry our lakeFS actions; commit only when they changed. Returns the commit."""
    main = repo.branch(MAIN)
    changed = False
    for hook in sorted(HOOKS_DIR.glob("*.yaml")):
        path = ACTIONS_PREFIX + hook.name
        wanted = hook.read_bytes()
        try:
            current = main.object(path).reader(mode="rb").read()
        except Exception:  # noqa: BLE001 - the lakefs SDK raises NotFoundException subclasses
            current = None
        if current != wanted:
            main.object(path).upload(data=wanted, mode="wb")
            changed = True
    if not changed:
        return None
    return main.commit("install Flywheel lakeFS actions (pre-merge validation rule)").id


def _find_existing(repo: Any, digest: str) -> tuple[str | None, str | None]:
    """(tag, merge commit) of a release with this content digest, if one exists."""
    for tag in repo.tags(prefix=TAG_PREFIX):
        commit = tag.get_commit()
        if (commit.metadata or {}).get("content_digest") == digest:
            return tag.id, commit.id
    for commit in repo.ref(MAIN).log(max_amount=MAIN_LOOKBACK):
        if (commit.metadata or {}).get("content_digest") == digest:
            return None, commit.id
    return None, None


def _next_tag(repo: Any, day: str) -> str:
    prefix = f"{TAG_PREFIX}{day}-"
    taken = {t.id for t in repo.tags(prefix=prefix)}
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def write_candidate(
    repo: Any,
    files: Mapping[str, bytes],
    *,
    run_id: str,
    day: str,
) -> tuple[Any, dict[str, str], dict[str, str]]:
    """WRITE: a fresh branch from main holding exactly `files` under datasets/.

    Returns (branch, name -> path, path -> lakeFS checksum of what was written).
    """
    branch = repo.branch(branch_name("release", day, run_id))
    for leftover in list(repo.branches(prefix=branch.id)):
        leftover.delete()  # a crashed attempt of this very run: redo it from scratch
    branch.create(MAIN)
    paths = {name: DATA_PREFIX + name for name in files}
    stale = [o.path for o in branch.objects(prefix=DATA_PREFIX) if o.path not in paths.values()]
    if stale:
        branch.delete_objects(stale)
    for name in sorted(files):
        branch.object(paths[name]).upload(data=files[name], mode="wb")
    checksums = {o.path: o.checksum for o in branch.objects(prefix=DATA_PREFIX)}
    return branch, paths, checksums


def publish(
    repo: Any,
    files: Mapping[str, bytes],
    *,
    run_id: str,
    day: str,
    verdict: Mapping[str, Any],
    metadata: Mapping[str, str],
    audit: Any = None,
) -> Release:
    """Write, record the verdict, and publish when it passed.

    `audit(branch) -> list[str]` may re-validate what was written and returns failure
    reasons; `verdict["verdict"]` is "passed" or "failed", with `reasons`.
    """
    digest = content_digest(files)
    existing_tag, existing_merge = _find_existing(repo, digest)
    if existing_merge and verdict["verdict"] == "passed":
        tag = existing_tag or repo.tag(_next_tag(repo, day)).create(existing_merge).id
        return Release(repo.id, "", existing_merge, existing_merge, tag, digest,
                       {n: DATA_PREFIX + n for n in files}, reused=True)

    branch, paths, checksums = write_candidate(repo, files, run_id=run_id, day=day)
    reasons = list(verdict.get("reasons", []))
    if audit is not None:
        reasons += audit(branch)
    passed = verdict["verdict"] == "passed" and not reasons
    record = {**verdict, "verdict": "passed" if passed else "failed", "reasons": reasons,
              "content_digest": digest, "objects": checksums}
    branch.object(VERDICT_PATH).upload(
        data=json.dumps(record, indent=2, sort_keys=True).encode(), mode="wb"
    )
    failpoint("release.before_commit")
    commit = branch.commit(
        f"dataset release candidate ({'passed' if passed else 'FAILED'} validation)",
        metadata={**metadata, "dagster_run_id": run_id, "content_digest": digest,
                  "validation_verdict": record["verdict"]},
    )
    if not passed:
        raise ReleaseRejected(branch.id, reasons or ["validation failed"])
    failpoint("release.after_commit")
    merge_commit = branch.merge_into(
        repo.branch(MAIN),
        message=f"publish dataset release {digest[:12]}",
        metadata={**metadata, "dagster_run_id": run_id, "content_digest": digest,
                  "release_commit": commit.id, "validation_verdict": "passed"},
    )
    failpoint("release.after_merge")
    tag = repo.tag(_next_tag(repo, day)).create(merge_commit).id
    branch.delete()  # the release commit stays reachable from main and the tag
    return Release(repo.id, branch.id, commit.id, merge_commit, tag, digest, paths)
