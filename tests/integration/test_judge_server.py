"""The judge behind a real OpenAI-compatible server: `transformers serve` serving the
embedded SmolLM2 on a loopback port (as a team would run vLLM or TGI with a larger model)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline.core.judge import RUBRIC_VERSION, parse_verdict
from pipeline.learning.base_model import convert_embedded_model
from pipeline.shell.judge import JudgeClient, JudgeUnavailable
from pipeline.shell.local_stack import free_port, stop_process_group

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
