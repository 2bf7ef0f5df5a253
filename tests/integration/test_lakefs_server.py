"""The real lakeFS server: repository, branch, upload, commit with metadata, merge, read
back by commit id."""

import lakefs
import pytest


def test_branch_commit_merge_and_read_at_commit(lakefs_server, unique_name):
    client = lakefs_server.client()
    repo = lakefs.Repository(unique_name, client=client).create(
        storage_namespace=f"local://{unique_name}", default_branch="main"
    )
    branch = repo.branch("ingest").create("main")
    branch.object("dt=2026-11-20/a.jsonl").upload(data=b'{"v": 1}\n', mode="wb")
    commit = branch.commit("first", metadata={"dagster_run_id": "run-1", "partition": "2026-11-20"})
    assert commit.get_commit().metadata == {"dagster_run_id": "run-1", "partition": "2026-11-20"}

    branch.merge_into(repo.branch("main"), message="merge ingest")
    # Overwrite on main after the merge: the earlier commit must still read the old bytes.
    main = repo.branch("main")
    main.object("dt=2026-11-20/a.jsonl").upload(data=b'{"v": 2}\n', mode="wb")
    main.commit("second")

    old = repo.ref(commit.id).object("dt=2026-11-20/a.jsonl").reader(mode="rb").read()
    new = repo.ref("main").object("dt=2026-11-20/a.jsonl").reader(mode="rb").read()
    assert old == b'{"v": 1}\n'
    assert new == b'{"v": 2}\n'


def test_wrong_credentials_are_refused(lakefs_server):
    client = lakefs.Client(host=lakefs_server.endpoint, username="nobody", password="wrong")
    with pytest.raises(lakefs.exceptions.NotAuthorizedException):
        list(lakefs.repositories(client=client))


def _committed(lakefs_server, unique_name, files):
    from pipeline.shell.lakefs_store import commit_partition_files

    repo = lakefs.Repository(unique_name, client=lakefs_server.client()).create(
        storage_namespace=f"local://{unique_name}", default_branch="main"
    )
    return repo, commit_partition_files(repo, "2026-11-20", files, run_id="run-verify")


def _digests(files):
    from pipeline.shell.lakefs_store import FileDigest

    return {name: FileDigest.of(data) for name, data in files.items()}


def test_verify_commit_accepts_exactly_the_uploaded_bytes(lakefs_server, unique_name):
    """Ingestion parses the bytes it uploaded, not a download of the commit: this check is
    what ties the two together (lakeFS's MD5 of each stored object against the bytes here)."""
    from pipeline.shell.lakefs_store import CommitMismatch, verify_commit

    files = {"a.jsonl": b'{"v": 1}\n', "b.txt": b"Thought: x\n" * 1000}
    repo, raw = _committed(lakefs_server, unique_name, files)
    verify_commit(repo, raw, _digests(files))

    with pytest.raises(CommitMismatch, match=r"a\.jsonl: checksum"):
        verify_commit(repo, raw, _digests({**files, "a.jsonl": b'{"v": 2}\n'}))  # same size, other bytes
    with pytest.raises(CommitMismatch, match=r"a\.jsonl: 9 bytes in the commit, 10 uploaded"):
        verify_commit(repo, raw, _digests({**files, "a.jsonl": b'{"v": 10}\n'}))
    with pytest.raises(CommitMismatch, match=r"b\.txt: not uploaded"):
        verify_commit(repo, raw, _digests({"a.jsonl": files["a.jsonl"]}))
    raw_with_c = type(raw)(**{**raw.__dict__, "paths": {**raw.paths, "c.jsonl": raw.prefix + "c.jsonl"}})
    with pytest.raises(CommitMismatch, match=r"c\.jsonl: not in the commit"):
        verify_commit(repo, raw_with_c, _digests({**files, "c.jsonl": b"{}\n"}))


def test_verify_commit_reads_back_what_has_no_md5(lakefs_server, unique_name, monkeypatch):
    """Blockstores that report another checksum form (S3 multipart ETags, Azure, GCS) cannot be
    had here: the listing is wrapped to report one, and the bytes are then compared after a
    real read from the commit."""
    from pipeline.shell import lakefs_store

    files = {"a.jsonl": b'{"v": 1}\n'}
    repo, raw = _committed(lakefs_server, unique_name, files)
    real_ref = repo.ref

    class Listed:
        def __init__(self, obj):
            self.path, self.size_bytes, self.checksum = obj.path, obj.size_bytes, obj.checksum + "-1"

    class Ref:
        def __init__(self, ref):
            self._ref = ref

        def objects(self, **kwargs):
            return [Listed(o) for o in self._ref.objects(**kwargs)]

        def __getattr__(self, name):
            return getattr(self._ref, name)

    monkeypatch.setattr(repo, "ref", lambda commit_id: Ref(real_ref(commit_id)))
    lakefs_store.verify_commit(repo, raw, _digests(files))
    with pytest.raises(lakefs_store.CommitMismatch, match="bytes in the commit differ"):
        lakefs_store.verify_commit(repo, raw, _digests({"a.jsonl": b'{"v": 2}\n'}))
