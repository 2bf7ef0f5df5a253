"""The judge behind an OpenAI-compatible chat completions endpoint (any server the team runs:
vLLM, TGI, `transformers serve`, a hosted API). One request per trajectory, greedy."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.core.judge import CRITERIA, RUBRIC_VERSION, Verdict, judge_request, parse_verdict

RETRIES = 3


class JudgeUnavailable(RuntimeError):
    """The endpoint did not answer after retries; the message names it (never the key)."""


@dataclass(frozen=True)
class JudgeLabel:
    verdict: Verdict | None  # None: the reply could not be read as a verdict
    reply: str
    model: str  # as the server names the model that answered
    rubric_version: str = RUBRIC_VERSION


class JudgeClient:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 max_tokens: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def label(self, messages: Sequence[Mapping[str, Any]]) -> JudgeLabel:
        body = {"model": self.model, "messages": judge_request(messages), "temperature": 0,
                "max_tokens": self.max_tokens}
        reply = self._post(body)
        text = reply["choices"][0]["message"].get("content") or ""
        return JudgeLabel(parse_verdict(text), text, str(reply.get("model") or self.model))

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        error: Exception | None = None
        for attempt in range(RETRIES):
            try:
                response = self._http.post(url, json=body)
                if response.status_code < 500:
                    response.raise_for_status()
                    return dict(response.json())
                error = httpx.HTTPStatusError(f"{response.status_code}", request=response.request, response=response)
            except (httpx.TransportError, httpx.HTTPStatusError) as err:
                if isinstance(err, httpx.HTTPStatusError) and err.response.status_code < 500:
                    raise JudgeUnavailable(f"judge at {url} refused the request: {err.response.status_code} "
                                           f"{err.response.text[:200]}") from None
                error = err
            time.sleep(2**attempt)
        raise JudgeUnavailable(f"judge at {url} did not answer after {RETRIES} tries: {error}")

    def close(self) -> None:
        self._http.close()


# --- which records a judge scores, read from the redacted warehouse ---------------------------

_TARGETS = """
with human as (
    select distinct record_key from redacted.feedback where partition_date = $partition and source = 'human'
),
records as (
    select t.record_key, t.success is not null and t.verified_by is not null as verified
    from redacted.trajectories t
    where t.partition_date = $partition and t.record_key not in (select record_key from human)
)
select record_key, verified from records where not verified
union all
-- a sample of verified records too, for the judge's agreement with verified outcomes
(select record_key, verified from records where verified order by hash(record_key), record_key limit $sample)
"""


def judge_targets(con: Any, partition: str, agreement_sample: int) -> list[tuple[str, bool]]:
    """(record_key, verified) of the day's records a judge scores: every record with neither a
    verified outcome nor human feedback (the judge labels those), and up to
    `agreement_sample` verified ones (their labels stay verified; the judge's agreement with
    them is measured), in a fixed order."""
    rows = con.execute(_TARGETS, {"partition": partition, "sample": agreement_sample}).fetchall()
    return sorted((key, bool(verified)) for key, verified in rows)


def conversations(con: Any, partition: str, record_keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The records' steps as OpenAI-shaped messages (tool calls with their arguments)."""
    if not record_keys:
        return {}
    steps = con.execute(
        "select record_key, step_index, role, content, tool_call_id from redacted.steps "
        "where partition_date = ? and record_key in (select unnest(?)) order by record_key, step_index",
        [partition, list(record_keys)]).fetchall()
    calls = con.execute(
        "select record_key, step_index, call_id, name, arguments from redacted.tool_calls "
        "where partition_date = ? and record_key in (select unnest(?)) order by record_key, step_index, call_index",
        [partition, list(record_keys)]).fetchall()
    calls_of: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for key, index, call_id, name, arguments in calls:
        calls_of.setdefault((key, index), []).append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
    messages: dict[str, list[dict[str, Any]]] = {key: [] for key in record_keys}
    for key, index, role, content, tool_call_id in steps:
        message: dict[str, Any] = {"role": role, "content": content}
        if (key, index) in calls_of:
            message["tool_calls"] = calls_of[(key, index)]
        if tool_call_id:
            message["tool_call_id"] = tool_call_id
        messages[key].append(message)
    return messages


def label_rows(partition: str, labels: Mapping[str, JudgeLabel]) -> list[dict[str, Any]]:
    """labels.judge_labels rows (the reply's start kept, for whoever audits a verdict)."""
    rows = []
    for key, label in sorted(labels.items()):
        verdict = label.verdict.as_dict() if label.verdict else dict.fromkeys(CRITERIA)
        rows.append({"partition_date": partition, "record_key": key, "judge_model": label.model,
                     "rubric_version": label.rubric_version, **verdict,
                     "passed": label.verdict.passed if label.verdict else None, "reply": label.reply[:500]})
    return rows
