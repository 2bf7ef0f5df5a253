"""The judge behind a real OpenAI-compatible server: `transformers serve` serving the
embedded SmolLM2 on a loopback port (as a team would run vLLM or TGI with a larger model)."""

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from pipeline.core.judge import RUBRIC_VERSION, parse_verdict
from pipeline.learning.base_model import convert_embedded_model
from pipeline.shell.judge import JudgeClient, JudgeUnavailable
from pipeline.shell.local_stack import stop_process_group
from pipeline.shell.ports import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONVERSATION = [
    {"role": "user", "content": "Where is my order O-1?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "O-1"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
    {"role": "assistant", "content": "Your order O-1 has shipped."},
]


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    model = convert_embedded_model(PROJECT_ROOT / ".state" / "models")
    port = free_port()
    log = tmp_path_factory.mktemp("judge") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "transformers"), "serve", "--port", str(port), "--device", "cpu",
             str(model)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail(f"transformers serve did not come up: {log.read_text()[-500:]}")
        yield f"http://127.0.0.1:{port}/v1", str(model)
    finally:
        stop_process_group(proc.pid)


def test_a_label_is_the_servers_greedy_reply_read_by_the_rubric(judge_server):
    url, model = judge_server
    client = JudgeClient(url, model)
    first, again = client.label(CONVERSATION), client.label(CONVERSATION)
    assert first.reply and first.reply == again.reply  # greedy: the same reply twice
    assert first.verdict == parse_verdict(first.reply)  # None when a small judge cannot answer in JSON
    assert first.rubric_version == RUBRIC_VERSION and model in first.model
    client.close()


def test_a_judge_that_is_not_there_is_a_clear_error():
    client = JudgeClient(f"http://127.0.0.1:{free_port()}/v1", "any", timeout=2)
    with pytest.raises(JudgeUnavailable, match="did not answer after 3 tries"):
        client.label(CONVERSATION)


def test_the_judge_labels_asset_scores_what_nothing_verified_and_a_verified_sample(
        judge_server, lakefs_server, tmp_path, monkeypatch):
    import dagster as dg
    import duckdb
    from dagster_duckdb import DuckDBResource

    from assets.ingestion import raw_agent_logs
    from assets.labelling import judge_labels
    from assets.redaction import redacted_trajectories
    from pipeline.orchestration.resources import LakeFSResource
    from pipeline.settings import get_settings
    from pipeline.simulator import simulate

    url, model = judge_server
    day = "2026-11-20"
    simulate(days=1, per_day=12, out_dir=tmp_path, seed=3, start_date=date(2026, 11, 20))
    db = tmp_path / "warehouse.duckdb"
    for key, value in {"FLYWHEEL_LANDING_DIR": str(tmp_path / "landing"), "FLYWHEEL_DUCKDB_PATH": str(db),
                       "FLYWHEEL_RAW_REPO": "raw-judge-test", "FLYWHEEL_JUDGE_URL": url,
                       "FLYWHEEL_JUDGE_MODEL": model, "FLYWHEEL_JUDGE_AGREEMENT_SAMPLE": "3"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        result = dg.materialize([raw_agent_logs, redacted_trajectories, judge_labels], partition_key=day,
                                resources={"lakefs": LakeFSResource(endpoint=lakefs_server.endpoint),
                                           "duckdb": DuckDBResource(database=str(db))})
    finally:
        get_settings.cache_clear()
    assert result.success
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select record_key, judge_model, rubric_version, passed, reply from labels.judge_labels"
                           ).fetchall()
        [(unlabelled, verified)] = con.execute(
            "select count(*) filter (where not verified), count(*) filter (where verified) from ("
            "  select success is not null and verified_by is not null as verified from redacted.trajectories"
            "  where record_key not in (select record_key from redacted.feedback where source = 'human'))").fetchall()
    assert len(rows) == unlabelled + min(3, verified)
    assert all(model in judge and rubric == RUBRIC_VERSION and reply for _, judge, rubric, _, reply in rows)
    # each verdict is the rubric's reading of its reply (None where a small judge gave no JSON)
    for *_, passed, reply in rows:
        verdict = parse_verdict(reply)
        assert passed == (verdict.passed if verdict else None)
