"""Logs in other teams' shapes, declared once in a source registry, through the whole
pipeline on a real lakeFS server: ingested (a JSON array, gzip JSONL of ShareGPT ReAct turns,
a zstd JSON object keyed by id) → redacted → curated → validated → released. Counts are
asserted against what the files hold (tests/external_logs.py writes them with their truth)."""

import json
from collections import Counter
from datetime import date

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource
from external_logs import write_external_logs
from settings_env import settings_env

from assets.curation import CURATION_ASSETS
from assets.ingestion import raw_agent_logs
from assets.redaction import redacted_trajectories
from assets.release import dataset_release
from pipeline.orchestration.resources import LakeFSResource, dbt_project, venv_tool
from pipeline.simulator import simulate

DAY = "2026-11-20"
SOURCES = ("tau_retail", "agent_instruct", "ops_agent")


@pytest.fixture(scope="module")
def external(lakefs_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    # A team's own agent's logs (the simulator's) and the imported sources, on the same day,
    # as a deployment would hold them.
    simulate(days=1, per_day=120, out_dir=root, seed=5, start_date=date.fromisoformat(DAY))
    logs = write_external_logs(root / "landing" / DAY)
    env = {
        "FLYWHEEL_LANDING_DIR": str(root / "landing"),
        "FLYWHEEL_DUCKDB_PATH": str(root / "warehouse.duckdb"),
        "FLYWHEEL_RAW_REPO": "raw-external-test",
        "FLYWHEEL_DATASETS_REPO": "datasets-external-test",
        # The registry sits beside the files it describes (its catalogs are relative to it);
        # landing_files skips nothing but hidden files, so the registry and catalogs are
        # moved out of the landing day first.
        "FLYWHEEL_SOURCES": str(root / "sources.yaml"),
    }
    (logs.root / "sources.yaml").rename(root / "sources.yaml")
    (logs.root / "catalogs").rename(root / "catalogs")
    with settings_env(env):
        lakefs = LakeFSResource(endpoint=lakefs_server.endpoint)
        duck = DuckDBResource(database=env["FLYWHEEL_DUCKDB_PATH"])
        ingest = dg.materialize([raw_agent_logs, redacted_trajectories], partition_key=DAY,
                                resources={"lakefs": lakefs, "duckdb": duck})
        assert ingest.success
        dbt = DbtCliResource(project_dir=dbt_project, dbt_executable=venv_tool("dbt"))
        release = dg.materialize([*CURATION_ASSETS, dataset_release],
                                 resources={"lakefs": lakefs, "dbt": dbt, "duckdb": duck}, raise_on_error=False)
        yield {"logs": logs, "db": env["FLYWHEEL_DUCKDB_PATH"], "ingest": ingest, "release": release,
               "server": lakefs_server}


def _rows(db, sql, *params):
    with duckdb.connect(db, read_only=True) as con:
        cursor = con.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _source_of(uri: str) -> str:
    return next((s for s in SOURCES if f"/{s}/" in uri), "simulator")


def test_every_record_is_ingested_or_quarantined_as_the_files_hold(external):
    db, expected = external["db"], external["logs"].expected
    trajectories = _rows(external["db"], "select * from raw.trajectories")
    by_source = Counter(_source_of(r["source_uri"]) for r in trajectories)
    quarantine = _rows(db, "select source_uri, reason from raw.quarantine")
    for source in SOURCES:
        truth = expected[source]
        assert by_source[source] == truth.trajectories, source
        reasons = Counter(q["reason"] for q in quarantine if _source_of(q["source_uri"]) == source)
        assert reasons == Counter(truth.quarantined), source
        assert by_source[source] + sum(reasons.values()) == truth.records, source
        ids = [r["trajectory_id"] for r in trajectories if _source_of(r["source_uri"]) == source]
        assert sorted(ids) == sorted(truth.ids), source


def test_outcomes_tool_calls_and_react_structure_match_the_files(external):
    db, expected = external["db"], external["logs"].expected
    trajectories = {r["trajectory_id"]: r for r in _rows(db, "select * from raw.trajectories")}
    calls = Counter(r["trajectory_id"] for r in _rows(db, "select trajectory_id from raw.tool_calls"))
    results = Counter(r["trajectory_id"] for r in _rows(db, "select trajectory_id from raw.steps where role = 'tool'"))
    flagged = Counter(r["trajectory_id"] for r in _rows(db, "select trajectory_id from raw.steps "
                                                            "where flag = 'unparsed_action'"))
    for source in SOURCES:
        for tid, truth in expected[source].by_id.items():
            row = trajectories[tid]
            assert row["success"] == truth.success, tid
            assert row["reward"] == truth.reward, tid
            assert calls[tid] == truth.tool_calls and results[tid] == truth.tool_results, tid
            assert flagged[tid] == truth.unparsed_actions, tid
            # a verified outcome only where the logs gave one
            assert (row["verified_by"] is not None) == (truth.success is not None), tid
    assert sum(calls[tid] for e in expected.values() for tid in e.by_id) == sum(e.tool_calls for e in expected.values())
    # ReAct turns keep their raw text; structured tool results are linked to a call
    react = _rows(db, "select s.raw_text, s.tool_call_id from raw.steps s join raw.trajectories t "
                      "using (record_key) where t.agent_name = 'webshop-react' and s.role = 'tool'")
    assert react and all(r["raw_text"].lstrip().startswith("Observation:") and r["tool_call_id"] for r in react)


def test_tool_sets_are_stored_once_and_every_trajectory_gets_its_own_back(external):
    db, expected = external["db"], external["logs"].expected
    sets = _rows(db, "select tool_set_id, tools from redacted.tool_sets")
    assert len(sets) == len({s["tool_set_id"] for s in sets})
    external_sets = {r["tool_set_id"] for r in _rows(db, "select tool_set_id, source_uri from raw.trajectories")
                     if _source_of(r["source_uri"]) != "simulator"}
    assert len(external_sets) == sum(e.tool_sets for e in expected.values())
    assert external_sets <= {s["tool_set_id"] for s in sets}
    staged = [r for r in _rows(db, "select trajectory_id, tools, source_uri from staging.stg_trajectories")
              if _source_of(r["source_uri"]) != "simulator"]
    assert len(staged) == sum(e.trajectories for e in expected.values())
    for row in staged:
        truth = next(e.by_id[row["trajectory_id"]] for e in expected.values() if row["trajectory_id"] in e.by_id)
        offered = tuple(t["function"]["name"] for t in json.loads(row["tools"]))
        assert sorted(offered) == sorted(truth.tools), row["trajectory_id"]


def _failures(result) -> str:
    return " ".join(event.event_specific_data.error.message for event in result.all_events
                    if event.is_step_failure)


def test_curation_uses_successes_for_sft_and_keeps_failures_out(external):
    assert external["release"].success, _failures(external["release"])
    db, expected = external["db"], external["logs"].expected
    truth = {tid: t for e in expected.values() for tid, t in e.by_id.items()}
    decisions = [d for d in _rows(db, "select * from marts.curation_decisions") if d["trajectory_id"] in truth]
    assert len(decisions) == len(truth)  # one decision per external record
    sft = [d for d in decisions if d["in_sft"]]
    assert sft, "no SFT example from the external sources"
    for d in sft:
        t = truth[d["trajectory_id"]]
        assert t.success is True and t.tool_calls > 0, d["trajectory_id"]
    # no consent declared for ops_agent: "unknown", so none of it is trained on
    ops = [d for d in decisions if d["trajectory_id"] in expected["ops_agent"].by_id]
    assert all(d["consent_scope"] == "unknown" and not d["in_sft"] for d in ops)
    assert all("R03_no_consent" in d["rule_ids"] for d in ops)
    # failed trajectories are never SFT, and are used where the marts use failures
    failures = [d for d in decisions if truth[d["trajectory_id"]].success is False
                and d["trajectory_id"] not in expected["ops_agent"].by_id]
    assert failures and not any(d["in_sft"] for d in failures)
    assert any(d["in_kto"] or d["n_preference_pairs"] for d in failures)
    # every successful, consented, non-duplicate train record with tool calls is in SFT or
    # has the rule that kept it out
    for d in decisions:
        t = truth[d["trajectory_id"]]
        if t.success and t.tool_calls and d["destination"] == "train" and not d["in_sft"]:
            assert d["rule_ids"], d["trajectory_id"]
