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
