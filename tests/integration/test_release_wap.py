"""Write-audit-publish on a real lakeFS server, with the pre-merge hook installed."""

import json

import lakefs
import pytest

from pipeline.shell.release import (
    VERDICT_PATH,
    ReleaseRejected,
    install_hooks,
    publish,
    write_candidate,
)

FILES = {"sft_examples.parquet": b"PAR1 fake sft", "DATA_CARD.md": b"# card\n"}
PASSED = {"verdict": "passed", "reasons": []}


@pytest.fixture()
def repo(lakefs_server, unique_name):
    repo = lakefs_server.repository(unique_name).create(
        storage_namespace=f"local://{unique_name}", default_branch="main"
    )
    assert install_hooks(repo) is not None
    assert install_hooks(repo) is None, "installing twice changes nothing"
    return repo


def _read(repo, ref, path):
    return repo.ref(ref).object(path).reader(mode="rb").read()


def _release_tags(repo):
    return [t.id for t in repo.tags(prefix="dataset-")]


def test_passing_release_is_merged_tagged_and_readable_by_commit(repo):
    release = publish(repo, FILES, run_id="run-pass-1", day="2026-11-21", verdict=PASSED,
                      metadata={"code_version": "abc"})
    assert release.tag == "dataset-2026-11-21-1"
    assert _release_tags(repo) == ["dataset-2026-11-21-1"]
    assert repo.tag(release.tag).get_commit().id == release.merge_commit_id
    for name, data in FILES.items():
        assert _read(repo, release.tag, f"datasets/{name}") == data
        assert release.uri(name) == f"lakefs://{repo.id}/{release.merge_commit_id}/datasets/{name}"
    meta = repo.commit(release.commit_id).get_commit().metadata
    assert meta["validation_verdict"] == "passed" and meta["dagster_run_id"] == "run-pass-1"
    assert meta["code_version"] == "abc"

    again = publish(repo, FILES, run_id="run-pass-2", day="2026-11-21", verdict=PASSED, metadata={})
    assert again.reused and again.tag == release.tag, "same content is not released twice"


def test_failed_verdict_leaves_main_unchanged_and_the_branch_as_evidence(repo):
    main_before = repo.branch("main").get_commit().id
    with pytest.raises(ReleaseRejected) as rejected:
        publish(repo, FILES, run_id="run-fail-1", day="2026-11-21",
                verdict={"verdict": "failed", "reasons": ["no_pii: 1 email left"]}, metadata={})
    branch = rejected.value.branch
    assert branch in str(rejected.value)
    assert repo.branch("main").get_commit().id == main_before
    assert _release_tags(repo) == []
    evidence = json.loads(_read(repo, branch, VERDICT_PATH))
    assert evidence["verdict"] == "failed" and evidence["reasons"] == ["no_pii: 1 email left"]
    assert _read(repo, branch, "datasets/sft_examples.parquet") == FILES["sft_examples.parquet"]


def test_hook_refuses_a_direct_merge_without_a_verdict(repo):
    rogue = repo.branch("rogue").create("main")
    rogue.object("datasets/sft_examples.parquet").upload(data=b"unvalidated", mode="wb")
    rogue.commit("sneak it in")
    with pytest.raises(lakefs.exceptions.LakeFSException) as refused:
        rogue.merge_into(repo.branch("main"))
    assert "has no validation verdict" in str(refused.value)


def test_hook_refuses_data_changed_after_validation(repo):
    branch, _, checksums = write_candidate(repo, FILES, run_id="run-tamper", day="2026-11-21")
    verdict = {**PASSED, "objects": checksums}
    branch.object(VERDICT_PATH).upload(data=json.dumps(verdict).encode(), mode="wb")
    branch.object("datasets/sft_examples.parquet").upload(data=b"tampered", mode="wb")
    branch.commit("tamper after validation")
    with pytest.raises(lakefs.exceptions.LakeFSException) as refused:
        branch.merge_into(repo.branch("main"))
    assert "changed after validation" in str(refused.value)
