"""raw_agent_logs through Dagster against a real lakeFS server and a DuckDB file."""

import hashlib
import json
from datetime import date

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from assets.ingestion import raw_agent_logs
from pipeline.orchestration.resources import LakeFSResource
from pipeline.settings import get_settings
from pipeline.simulator import simulate

DAY = "2026-11-20"


@pytest.fixture()
def landing(tmp_path, monkeypatch):
    simulate(days=1, per_day=60, out_dir=tmp_path, seed=11, start_date=date.fromisoformat(DAY))
    monkeypatch.setenv("FLYWHEEL_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("FLYWHEEL_RAW_REPO", "raw-logs-ingest-test")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _materialize(lakefs_server, db_path):
    return dg.materialize(
        [raw_agent_logs],
        partition_key=DAY,
        resources={
            "lakefs": LakeFSResource(endpoint=lakefs_server.endpoint),
            "duckdb": DuckDBResource(database=str(db_path)),
        },
    )


def _metadata(result) -> dict:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def _table_counts(db_path) -> dict:
    with duckdb.connect(str(db_path)) as con:
        return {
            t: con.execute(f"select count(*) from raw.{t} where partition_date = ?", [DAY]).fetchall()[0][0]
            for t in ("trajectories", "steps", "tool_calls", "feedback", "quarantine")
        }


def test_partition_is_committed_parsed_and_accounted_for(lakefs_server, landing, tmp_path):
    db_path = tmp_path / "w.duckdb"
    result = _materialize(lakefs_server, db_path)
    assert result.success
    meta = _metadata(result)
    manifest = json.loads((landing / "ground_truth" / DAY / "manifest.json").read_text())

    # Every record read is ingested or quarantined, and what was read is what was written.
    assert meta["records_read"] == meta["records_ingested"] + meta["records_quarantined"]
    assert meta["records_read"] == sum(f["records"] for f in manifest["files"].values())
    # The simulator knows which defects it planted and what the parser should say.
    assert meta["records_quarantined"] == sum(f["quarantined"] for f in manifest["files"].values())
    assert meta["records_quarantined"] > 0
    counts = _table_counts(db_path)
    assert counts["trajectories"] == meta["records_ingested"]
    assert counts["quarantine"] == meta["records_quarantined"]
    assert set(meta["ingested_by_format"]) == {"canonical", "openai_chat", "otel_genai", "react_text"}

    # The raw files are in lakeFS, unchanged, at the recorded commit, with audit metadata.
    repo = lakefs_server.repository("raw-logs-ingest-test")
    commit = repo.commit(meta["raw_commit"]).get_commit()
    assert commit.metadata["partition"] == DAY
    assert commit.metadata["dagster_run_id"] == result.run_id
    checksums = json.loads(commit.metadata["files_sha256"])
    for path in (landing / "landing" / DAY).iterdir():
        stored = repo.ref(meta["raw_commit"]).object(f"dt={DAY}/{path.name}").reader(mode="rb").read()
        assert stored == path.read_bytes()
        assert checksums[path.name] == hashlib.sha256(stored).hexdigest()

    # Every row, quarantined ones too, points at its raw file at that commit.
    with duckdb.connect(str(db_path)) as con:
        commits = con.execute("select distinct raw_commit from raw.trajectories").fetchall()
        prefixes = con.execute(
            "select (select count(*) from raw.trajectories where source_uri not like $1)"
            " + (select count(*) from raw.quarantine where source_uri not like $1)",
            [f"lakefs://raw-logs-ingest-test/{meta['raw_commit']}/dt={DAY}/%"],
        ).fetchall()[0][0]
        reasons = con.execute(
            "select count(*) from raw.quarantine where reason is null or detail = ''").fetchall()[0][0]
    assert commits == [(meta["raw_commit"],)]
    assert prefixes == 0
    assert reasons == 0


def test_rematerializing_replaces_the_partition(lakefs_server, landing, tmp_path):
    db_path = tmp_path / "w.duckdb"
    first = _metadata(_materialize(lakefs_server, db_path))
    before = _table_counts(db_path)
    second_result = _materialize(lakefs_server, db_path)
    second = _metadata(second_result)
    assert _table_counts(db_path) == before  # no duplicates
    assert second["raw_commit"] != first["raw_commit"]  # each run has its own audit commit
    repo = lakefs_server.repository("raw-logs-ingest-test")
    assert repo.commit(second["raw_commit"]).get_commit().metadata["dagster_run_id"] == second_result.run_id
    assert list(repo.branches(prefix="ingest-")) == [], "ingest branches are cleaned up"
