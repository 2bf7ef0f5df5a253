"""pipeline.core.formats: round trips, detection, every quarantine reason, and the accounting rule
(one Parsed or Quarantined per input record, never an exception)."""

from __future__ import annotations

import codecs
import dataclasses
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.core.formats import (
    FORMATS,
    REASONS,
    OpenAIMapping,
    Parsed,
    Quarantined,
    detect_format,
    export,
    parse_file,
)
from pipeline.core.record import (
    SCHEMA_VERSION,
    SOURCE_FORMATS,
    Consent,
    Feedback,
    Outcome,
    Provenance,
    Step,
    ToolCall,
    Trajectory,
)

URI = "lakefs://raw/c0ffee/landing/2025-11-21/agent.log"
COMMIT = "c0ffee"
_BUILDER = Provenance(source_format="builder", source_uri="builder", line=0)


# --- builders ---------------------------------------------------------------------------------


def full_trajectory(trajectory_id: str = "t-1") -> Trajectory:
    """Every field set: nested tool args, parallel calls, a tool error, feedback, consent, extra."""
    steps = [
        Step(0, "system", "You are Acme's support agent."),
        Step(1, "user", "Where is order O-1?\nIt was due Monday.", latency_ms=5000.0),
        Step(
            2,
            "assistant",
            None,
            "Look the order up first.",
            [
                ToolCall(
                    "call_a",
                    "lookup_order",
                    {"order_id": "O-1", "include": {"items": True, "history": [1, 2]}},
                )
            ],
            latency_ms=812.5,
            prompt_tokens=120,
            completion_tokens=18,
        ),
        Step(3, "tool", '{"status": "delayed"}', tool_call_id="call_a", latency_ms=40.0),
        Step(
            4,
            "assistant",
            None,
            None,
            [
                ToolCall("call_b", "notify_carrier", {"order_id": "O-1"}),
                ToolCall("call_c", "get_eta", {"order_id": "O-1", "units": "days"}),
            ],
            latency_ms=650.0,
            prompt_tokens=160,
            completion_tokens=25,
        ),
        Step(5, "tool", None, tool_call_id="call_b", error="timeout after 30s", latency_ms=30000.0),
        Step(6, "tool", '{"eta_days": 2}', tool_call_id="call_c", latency_ms=55.0),
        Step(
            7,
            "assistant",
            "It is delayed; expect it in 2 days.",
            latency_ms=420.0,
            prompt_tokens=210,
            completion_tokens=12,
        ),
    ]
    return Trajectory(
        trajectory_id=trajectory_id,
        session_id="s-9",
        user_id="u-3f2a",
        tenant="acme",
        agent_name="support",
        agent_version="2.4.1",
        model="gpt-4o-2024-08-06",
        task_type="order_status",
        goal="find out where O-1 is",
        started_at="2025-11-21T10:00:00Z",
        ended_at="2025-11-21T10:00:41.5Z",
        system_prompt="You are Acme's support agent.",
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Find an order",
                    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
                },
            }
        ],
        request_params={"temperature": 0.2, "max_tokens": 512},
        steps=steps,
        outcome=Outcome(success=True, reward=1.0, verified_by="environment", termination="completed"),
        feedback=[
            Feedback("rating", 4, "human", comment="slow but right", at="2025-11-21T10:01:00Z"),
            Feedback("correction", None, "judge", corrected_output="It ships in 2 days."),
        ],
        consent=Consent(may_train=True, scope="training"),
        provenance=_BUILDER,
        task_spec={"task": "order_status", "order": {"id": "O-1", "delay_days": 2}},
        extra={"ab_bucket": "B", "client": {"os": "ios", "build": 412}},
    )


def minimal_trajectory(trajectory_id: str = "t-2") -> Trajectory:
    """Only what is required: every optional field at its default."""
    return Trajectory(
        trajectory_id=trajectory_id,
        session_id=None,
        user_id=None,
        tenant=None,
        agent_name=None,
        agent_version=None,
        model=None,
        task_type=None,
        goal=None,
        started_at=None,
        ended_at=None,
        system_prompt=None,
        tools=[],
        request_params={},
        steps=[Step(0, "user", "hi"), Step(1, "assistant", "hello")],
        outcome=Outcome(),
        feedback=[],
        consent=Consent(),
        provenance=_BUILDER,
    )


def without_provenance(t: Trajectory) -> Trajectory:
    return dataclasses.replace(t, provenance=_BUILDER)


def parse(data: bytes, fmt: str, **kwargs: Any) -> list[Parsed | Quarantined]:
    return list(parse_file(data, fmt=fmt, source_uri=URI, raw_commit=COMMIT, **kwargs))


def parsed(records: list[Parsed | Quarantined]) -> list[Trajectory]:
    return [r.trajectory for r in records if isinstance(r, Parsed)]


def quarantined(records: list[Parsed | Quarantined]) -> list[Quarantined]:
    return [r for r in records if isinstance(r, Quarantined)]


def only_quarantine(data: bytes, fmt: str, **kwargs: Any) -> Quarantined:
    records = parse(data, fmt, **kwargs)
    assert len(records) == 1 and isinstance(records[0], Quarantined), records
    return records[0]


def canonical_line(**changes: Any) -> bytes:
    """A canonical JSONL line from the full trajectory, with top-level keys replaced (None: removed)."""
    record = json.loads(export("canonical", [full_trajectory()]))
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not None}).encode() + b"\n"


def openai_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(export("openai_chat", [full_trajectory()]))
    record.update(changes)
    return record


def jsonl(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


# --- round trips --------------------------------------------------------------------------------


def _react_losses(t: Trajectory) -> Trajectory:
    """react_text: call ids re-synthesised in order; no latency/tokens; error wins over content."""
    calls = (c for s in t.steps for c in s.tool_calls)
    ids = {c.id: f"call_{n}" for n, c in enumerate(calls, start=1)}
    steps = [
        dataclasses.replace(
            s,
            tool_calls=[dataclasses.replace(c, id=ids[c.id]) for c in s.tool_calls],
            tool_call_id=ids.get(s.tool_call_id or ""),
            latency_ms=None,
            prompt_tokens=None,
            completion_tokens=None,
            content=None if s.error is not None else s.content,
        )
        for s in t.steps
    ]
    return dataclasses.replace(t, steps=steps)


def _otel_losses(t: Trajectory) -> Trajectory:
    """otel_genai: system/user steps have no span (no latency, no tokens); tool spans carry no tokens."""
    steps = [
        s
        if s.role == "assistant"
        else dataclasses.replace(
            s,
            prompt_tokens=None,
            completion_tokens=None,
            latency_ms=s.latency_ms if s.role == "tool" else None,
        )
        for s in t.steps
    ]
    return dataclasses.replace(t, steps=steps)


def _lossless(t: Trajectory) -> Trajectory:
    return t


ROUND_TRIPS: list[tuple[str, OpenAIMapping | None, Callable[[Trajectory], Trajectory]]] = [
    ("canonical", None, _lossless),
    ("openai_chat", None, _lossless),
    ("openai_chat", OpenAIMapping.preset("wrapped"), _lossless),
    ("otel_genai", None, _otel_losses),
    ("react_text", None, _react_losses),
]


def test_to_dict_equals_asdict_and_copies_every_container() -> None:
    t = full_trajectory()
    body = t.to_dict()
    assert body == dataclasses.asdict(t)
    body["steps"][2]["tool_calls"][0]["arguments"]["include"]["history"].append(3)
    body["extra"].clear()
    assert t.to_dict() == dataclasses.asdict(t) != body


def test_formats_are_the_record_source_formats() -> None:
    assert FORMATS == SOURCE_FORMATS


@pytest.mark.parametrize(("fmt", "mapping", "losses"), ROUND_TRIPS)
def test_round_trip(
    fmt: str, mapping: OpenAIMapping | None, losses: Callable[[Trajectory], Trajectory]
) -> None:
    originals = [full_trajectory("t-1"), minimal_trajectory("t-2")]
    records = parse(export(fmt, originals, mapping), fmt, mapping=mapping)
    assert quarantined(records) == []
    assert [without_provenance(t) for t in parsed(records)] == [losses(t) for t in originals]


@pytest.mark.parametrize(("fmt", "mapping"), [(fmt, mapping) for fmt, mapping, _ in ROUND_TRIPS])
def test_parse_sets_provenance(fmt: str, mapping: OpenAIMapping | None) -> None:
    data = export(fmt, [full_trajectory("t-1"), minimal_trajectory("t-2")], mapping)
    first, second = parsed(parse(data, fmt, mapping=mapping))
    lines = data.decode().split("\n")
    expected_second_line = next(i for i, line in enumerate(lines, start=1) if "t-2" in line)
    assert first.provenance == Provenance(fmt, URI, 1, COMMIT, SCHEMA_VERSION)
    assert second.provenance.line == expected_second_line > 1


def test_wrapped_records_are_read_without_a_configured_mapping() -> None:
    data = export("openai_chat", [full_trajectory()], OpenAIMapping.preset("wrapped"))
    assert set(json.loads(data)) == {"meta", "conversation", "result", "ab_bucket", "client"}
    [t] = parsed(parse(data, "openai_chat"))
    assert without_provenance(t) == full_trajectory()


def test_react_round_trip_really_loses_ids_and_latency() -> None:
    [t] = parsed(parse(export("react_text", [full_trajectory()]), "react_text"))
    assert [c.id for s in t.steps for c in s.tool_calls] == ["call_1", "call_2", "call_3"]
    assert [s.tool_call_id for s in t.steps if s.role == "tool"] == ["call_1", "call_2", "call_3"]
    assert all(s.latency_ms is None and s.prompt_tokens is None for s in t.steps)


def test_otel_timestamps_are_utc_z_with_nanoseconds() -> None:
    source = dataclasses.replace(
        minimal_trajectory(),
        started_at="2025-11-21T11:00:00.123456789+01:00",
        ended_at="2025-11-21T10:00:01",
    )
    [t] = parsed(parse(export("otel_genai", [source]), "otel_genai"))
    assert (t.started_at, t.ended_at) == ("2025-11-21T10:00:00.123456789Z", "2025-11-21T10:00:01Z")


def test_openai_export_then_parse_keeps_unknown_fields_where_they_were() -> None:
    raw = {
        "id": "r-1",
        "created": 1763700000,
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "hi", "name": "alice"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": [1, {"b": 2}]}'},
                    }
                ],
            },
            {"role": "tool", "content": "ok", "tool_call_id": "c1"},
        ],
        "metadata": {
            "session_id": "s-1",
            "region": "eu",
            "consent": {"may_train": True, "scope": "training", "signed": "v2"},
        },
        "temperature": 0.0,
    }
    [t] = parsed(parse(jsonl(raw), "openai_chat"))
    assert t.extra == {
        "messages[0].name": "alice",
        "metadata.consent.signed": "v2",
        "created": 1763700000,
        "metadata.region": "eu",
    }
    assert t.steps[1].tool_calls == [ToolCall("c1", "f", {"a": [1, {"b": 2}]})]
    assert (t.session_id, t.consent, t.request_params) == (
        "s-1",
        Consent(True, "training"),
        {"temperature": 0.0},
    )
    assert json.loads(export("openai_chat", [t])) == raw


def test_canonical_keeps_unknown_fields_in_extra() -> None:
    record = json.loads(canonical_line())
    record["region"] = "eu"
    record["steps"][0]["mood"] = "calm"
    [t] = parsed(parse(jsonl(record), "canonical"))
    assert t.extra == {
        "ab_bucket": "B",
        "client": {"os": "ios", "build": 412},
        "region": "eu",
        "steps[0].mood": "calm",
    }



@pytest.mark.parametrize(("fmt", "mapping"), [(fmt, mapping) for fmt, mapping, _ in ROUND_TRIPS])
def test_a_utf8_byte_order_mark_belongs_to_the_file_not_to_record_one(
    fmt: str, mapping: OpenAIMapping | None
) -> None:
    """Windows tools start files with a BOM; line 1 must still parse, and lines keep their numbers."""
    data = export(fmt, [full_trajectory("t-1"), minimal_trajectory("t-2")], mapping)
    with_bom = codecs.BOM_UTF8 + data.replace(b"\n", b"\r\n")
    assert detect_format("no_suffix", with_bom[:4096]) == fmt
    records = list(parse(with_bom, fmt, mapping=mapping))
    assert quarantined(records) == []
    without_bom = parsed(parse(data, fmt, mapping=mapping))
    assert [t.provenance.line for t in parsed(records)] == [t.provenance.line for t in without_bom]
    assert [without_provenance(t) for t in parsed(records)] == [
        without_provenance(t) for t in parsed(parse(data, fmt, mapping=mapping))]


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mapping", "name"),
    [
        ("canonical", None, "day.jsonl"),
        ("openai_chat", None, "chat.jsonl"),
        ("openai_chat", OpenAIMapping.preset("wrapped"), "wrapped.jsonl"),
        ("otel_genai", None, "traces.json"),
        ("react_text", None, "transcripts.txt"),
    ],
)
def test_detects_each_format(fmt: str, mapping: OpenAIMapping | None, name: str) -> None:
    head = export(fmt, [full_trajectory()], mapping)[:4096]
    assert detect_format(name, head) == fmt
    assert detect_format("no_suffix", head) == fmt


def test_detection_survives_a_head_that_cuts_the_first_line() -> None:
    for fmt in ("otel_genai", "canonical"):
        head = export(fmt, [full_trajectory()])[:300]
        with pytest.raises(json.JSONDecodeError):
            json.loads(head)
        assert detect_format("x.jsonl", head) == fmt


def test_detection_skips_a_corrupt_first_line() -> None:
    head = b'{"id": "r1", "mess\n' + export("openai_chat", [full_trajectory()])
    assert detect_format("x.jsonl", head) == "openai_chat"


def test_detects_react_without_a_header_line() -> None:
    assert (
        detect_format("notes.txt", b"User: hi\nThought: greet back\nFinal Answer: hello\n")
        == "react_text"
    )


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("app.log", b"2025-11-21 10:00:00 INFO started\n2025-11-21 10:00:01 INFO ready\n"),
        ("x.jsonl", b'{"event": "click", "at": 3}\n'),
        ("x.jsonl", b"[1, 2, 3]\n"),
        ("x.jsonl", b""),
        ("transcripts.txt", export("canonical", [full_trajectory()])),
        ("traces.jsonl", export("react_text", [full_trajectory()])),
    ],
)
def test_unknown_format_is_none(name: str, head: bytes) -> None:
    """The caller (pipeline.shell.ingest) quarantines such files' lines as `unknown_format`."""
    assert detect_format(name, head) is None
    assert "unknown_format" in REASONS


# --- quarantine reasons ---------------------------------------------------------------------------


def _otel_line(*spans: dict[str, Any]) -> bytes:
    return (
        json.dumps(
            {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": list(spans)}]}]}
        ).encode()
        + b"\n"
    )


def _kv(key: str, value: Any) -> dict[str, Any]:
    kind = {bool: "boolValue", int: "intValue", float: "doubleValue", str: "stringValue"}[type(value)]
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def _span(
    trace: str, span: str, parent: str | None, times: tuple[int, int | None], attrs: dict[str, Any]
) -> dict[str, Any]:
    start, end = times
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span,
        "name": "x",
        "startTimeUnixNano": str(start),
        "attributes": [_kv(k, v) for k, v in attrs.items()],
    }
    if parent:
        out["parentSpanId"] = parent
    if end is not None:
        out["endTimeUnixNano"] = str(end)
    return out


ROOT = {"gen_ai.operation.name": "invoke_agent"}


def _openai_with_arguments(arguments: Any) -> bytes:
    record = openai_record()
    record["messages"][2]["tool_calls"][0]["function"]["arguments"] = arguments
    return jsonl(record)


REACT_OK = export("react_text", [full_trajectory()])
REACT_BAD_UTF8 = REACT_OK.replace(b"Thought: Look", b"Thought: Lo\xc3ok")
REACT_BAD_LINE = REACT_OK.split(b"\n").index(b"Thought: Look the order up first.") + 1

REASON_CASES: list[tuple[str, str, bytes, str]] = [
    # (reason, format, input, expected detail: exact, or pieces it must contain, split by "…")
    (
        "invalid_utf8",
        "canonical",
        b'{"trajectory_id": "t\xff\xfe"}\n',
        "line: invalid UTF-8 at byte 20 (b'\\xff\\xfe\"}')",
    ),
    (
        "invalid_utf8",
        "react_text",
        REACT_BAD_UTF8,
        f"line {REACT_BAD_LINE}: invalid UTF-8 at byte 11 (b'\\xc3ok ')",
    ),
    (
        "invalid_json",
        "canonical",
        canonical_line()[:80],
        "line is not valid JSON: …at column 81 (truncated?)",
    ),
    (
        "invalid_json",
        "openai_chat",
        b'{"id": "r1",, "messages": []}\n',
        "line is not valid JSON: Expecting property name enclosed in double quotes at column 13",
    ),
    ("not_an_object", "canonical", b"[1, 2]\n", "expected a JSON object per line, got array"),
    (
        "record_too_large",
        "openai_chat",
        jsonl(openai_record()),
        "record is …bytes, over the limit of 1000…",
    ),
    (
        "missing_required_field",
        "canonical",
        canonical_line(trajectory_id=None),
        "trajectory_id: trajectory id is missing",
    ),
    (
        "missing_required_field",
        "openai_chat",
        jsonl(openai_record(id=None)),
        "id: trajectory id is missing",
    ),
    (
        "missing_required_field",
        "openai_chat",
        jsonl({"id": "r1", "turns": []}),
        "no conversation list at messages or conversation.turns (configure a mapping?)",
    ),
    (
        "missing_required_field",
        "react_text",
        REACT_OK[: REACT_OK.index(b"Reward:")],
        "transcript has no Reward line (truncated?)",
    ),
    (
        "missing_required_field",
        "otel_genai",
        _otel_line(_span("ab" * 16, "s1", None, (1, None), {"gen_ai.operation.name": "chat"})),
        "trace abababababababababababababababab: no root invoke_agent span"
        " (gen_ai.operation.name=invoke_agent without parentSpanId)",
    ),
    (
        "missing_required_field",
        "canonical",
        canonical_line(feedback=[{"name": "thumbs", "value": 1}]),
        "feedback[0].source: required field is missing",
    ),
    ("wrong_type", "canonical", canonical_line(goal=5), "goal: expected string or null, got integer"),
    (
        "wrong_type",
        "canonical",
        canonical_line(outcome={"success": "yes"}),
        "outcome.success: expected boolean or null, got string",
    ),
    (
        "wrong_type",
        "openai_chat",
        jsonl(openai_record(metadata={"reward": True})),
        "metadata.reward: expected number or null, got boolean",
    ),
    (
        "wrong_type",
        "openai_chat",
        jsonl(openai_record(messages=[{"role": "user", "content": 7}])),
        "messages[0].content: expected array, got integer",
    ),
    ("invalid_json", "canonical", canonical_line(extra=None)[:-2] + b', "extra": {"x": NaN}}\n',
     "line is not valid JSON: NaN is not a JSON number"),
    ("invalid_json", "canonical", canonical_line(extra=None)[:-2] + b', "extra": {"x": -Infinity}}\n',
     "line is not valid JSON: -Infinity is not a JSON number"),
    ("invalid_json", "canonical", canonical_line(extra=None)[:-2] + b', "extra": {"x": 1e400}}\n',
     "line is not valid JSON: 1e400 is beyond the range of a number"),
    (  # token counts and step indices are stored in 32-bit columns: beyond them is wrong_type
        "wrong_type",  # (it used to stop the whole partition's write with a DuckDB conversion error)
        "canonical",
        canonical_line(steps=[{"index": 0, "role": "user", "content": "x", "prompt_tokens": 2**40}]),
        "steps[0].prompt_tokens: 1099511627776 is outside the 32-bit integer range",
    ),
    (
        "wrong_type",
        "openai_chat",
        jsonl(openai_record(messages=[{"role": "user", "content": "x", "completion_tokens": -(2**31) - 1}])),
        "messages[0].completion_tokens: -2147483649 is outside the 32-bit integer range",
    ),
    (
        "wrong_type",
        "otel_genai",
        _otel_line(_span("ab" * 16, "s1", None, (1, None), {**ROOT, "flywheel.trajectory_id": 7})),
        "span s1 flywheel.trajectory_id: expected string, got integer",
    ),
    (
        "wrong_type",
        "react_text",
        b"=== TRAJECTORY t-1 ===\nno colon here\nUser: hi\nReward: 1\n",
        "line 2: expected a 'key: value' header or a turn (User:, Thought:, ...), got 'no colon here'",
    ),
    (
        "invalid_tool_arguments",
        "openai_chat",
        _openai_with_arguments('{"order_id": "O-1"'),
        "messages[2].tool_calls[0].function.arguments:"
        " not valid JSON (Expecting ',' delimiter at column 19)",
    ),
    (
        "invalid_tool_arguments",
        "openai_chat",
        _openai_with_arguments("[1, 2]"),
        "messages[2].tool_calls[0].function.arguments: JSON array is not an object",
    ),
    (
        "invalid_tool_arguments",
        "react_text",
        b"=== TRAJECTORY t-1 ===\nAction: lookup_order\nReward: 0\n",
        "line 2: Action must be tool_name[{json arguments}], got 'lookup_order'",
    ),
    (
        "unsupported_schema_version",
        "canonical",
        canonical_line(schema_version="2.0"),
        "schema_version '2.0' is not supported (this reader reads 1.1)",
    ),
    ("empty_trajectory", "canonical", canonical_line(steps=[]), "trajectory has no steps"),
    (
        "empty_trajectory",
        "react_text",
        b"=== TRAJECTORY t-1 ===\nReward: 0\n",
        "trajectory has no steps",
    ),
    (
        "invalid_step_order",
        "openai_chat",
        jsonl(openai_record(messages=[{"role": "robot", "content": "x"}])),
        "messages[0].role: unknown role 'robot' (expected one of system, user, assistant, tool)",
    ),
    (
        "invalid_step_order",
        "canonical",
        canonical_line(steps=[{"index": 1, "role": "user", "content": "x"}]),
        "steps[0].index: expected 0, got 1",
    ),
    (
        "parse_error",
        "canonical",
        b"[" * 100_000 + b"\n",
        "RecursionError: maximum recursion depth exceeded…",
    ),
]


@pytest.mark.parametrize(("reason", "fmt", "data", "detail"), REASON_CASES)
def test_quarantine_reason(reason: str, fmt: str, data: bytes, detail: str) -> None:
    q = only_quarantine(data, fmt, max_record_bytes=1000 if reason == "record_too_large" else 4_000_000)
    assert q.reason == reason
    if "…" in detail:
        assert all(piece in q.detail for piece in detail.split("…")), q.detail
    else:
        assert q.detail == detail
    assert (q.source_uri, q.line) == (URI, 1)
    first_line = data.split(b"\n")[0][:500].decode("utf-8", errors="replace")
    assert (
        q.raw_excerpt.startswith("=== TRAJECTORY")
        if fmt == "react_text"
        else q.raw_excerpt == first_line
    )


def test_every_reason_is_exercised() -> None:
    """unknown_format and corrupt_compression are the caller's (test_unknown_format_is_none,
    test_sources.py); all others are emitted here."""
    assert {case[0] for case in REASON_CASES} == set(REASONS) - {"unknown_format", "corrupt_compression"}
    assert len(REASONS) == len(set(REASONS)) == 13


def test_quarantine_excerpt_is_capped_and_decoded() -> None:
    line = b'{"a": "\xff' + b"x" * 2000 + b"\n"
    q = only_quarantine(line, "canonical")
    assert q.reason == "invalid_utf8"
    assert len(q.raw_excerpt) == 500 and q.raw_excerpt.startswith('{"a": "\ufffd')


# --- the accounting invariant ---------------------------------------------------------------------


def _mixed_jsonl(
    good: Callable[[str], bytes], wrong_type: bytes
) -> tuple[bytes, list[tuple[int, str | None]]]:
    """A file with every kind of damage; returns it and (line, expected reason or None=parsed)."""
    lines: list[tuple[bytes, str | None]] = [
        (good("g-1"), None),
        (b"", "blank"),
        (good("g-2")[:-40], "invalid_json"),  # truncated
        (b"   \t", "blank"),
        (b'{"id": "\xc3\x28"}', "invalid_utf8"),
        (wrong_type, "wrong_type"),
        (b'"just a string"', "not_an_object"),
        (b'{"x": "' + b"y" * 30_000 + b'"}', "record_too_large"),
        (good("g-3") + b"\r", None),  # a CRLF line ending
        (b"", "blank"),
    ]
    data = b"\n".join(line for line, _ in lines)
    expected = [(n, reason) for n, (_, reason) in enumerate(lines, start=1) if reason != "blank"]
    return data, expected


def _good_canonical(tid: str) -> bytes:
    return export("canonical", [full_trajectory(tid)]).rstrip(b"\n")


def _good_openai(tid: str) -> bytes:
    return export("openai_chat", [full_trajectory(tid)]).rstrip(b"\n")


@pytest.mark.parametrize(
    ("fmt", "good", "wrong_type"),
    [
        ("canonical", _good_canonical, canonical_line(tools={"not": "a list"}).rstrip(b"\n")),
        ("openai_chat", _good_openai, jsonl(openai_record(model=["gpt"])).rstrip(b"\n")),
    ],
)
def test_accounting_on_a_mixed_jsonl_file(
    fmt: str, good: Callable[[str], bytes], wrong_type: bytes
) -> None:
    data, expected = _mixed_jsonl(good, wrong_type)
    records = parse(data, fmt, max_record_bytes=20_000)
    non_blank_lines = sum(1 for line in data.split(b"\n") if line.strip())
    assert len(records) == non_blank_lines == len(expected) == 7
    got = [
        (r.trajectory.provenance.line, None) if isinstance(r, Parsed) else (r.line, r.reason)
        for r in records
    ]
    assert got == expected
    assert [t.trajectory_id for t in parsed(records)] == ["g-1", "g-3"]


def test_accounting_on_a_mixed_otel_file() -> None:
    trace_a, trace_b, trace_c = "a" * 32, "b" * 32, "c" * 32
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": []}]),
    }
    lines = [
        _otel_line(_span(trace_a, "a1", None, (1, None), ROOT)),  # trace a, continued on line 5
        b"\n",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"d" * 32 + b'"',  # truncated
        b'{"resourceSpans": []}\n',  # no spans
        _otel_line(  # trace b has no root
            _span(trace_a, "a2", "a1", (2, None), chat), _span(trace_b, "b1", None, (1, None), chat)
        ),
        b'{"resourceSpans": "x"}\n',
        _otel_line(
            _span(trace_c, "c1", None, (1, None), ROOT),
            _span(trace_c, "c2", "c1", (2, None), {**chat, "pad": "z" * 5000}),
        ),
        # over the limit: its span is lost with it
        _otel_line(_span(trace_c, "c3", "c1", (3, None), {"pad": "z" * 50_000})),
        export("otel_genai", [full_trajectory("t-ok")]),
    ]
    records = parse(
        b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines),
        "otel_genai",
        max_record_bytes=20_000,
    )
    summary = sorted(
        (r.line, r.reason)
        if isinstance(r, Quarantined)
        else (r.trajectory.provenance.line, r.trajectory.trajectory_id)
        for r in records
    )
    assert summary == [
        (1, trace_a),
        (3, "invalid_json"),
        (4, "missing_required_field"),
        (5, "missing_required_field"),
        (6, "wrong_type"),
        (7, trace_c),
        (8, "record_too_large"),
        (9, "t-ok"),
    ]
    a = next(t for t in parsed(records) if t.trajectory_id == trace_a)
    assert [s.role for s in a.steps] == ["assistant"]


def test_accounting_on_a_mixed_react_file() -> None:
    good = export("react_text", [full_trajectory("r-1")])
    truncated = export("react_text", [minimal_trajectory("r-2")]).replace(b"Reward: null\n", b"")
    bad_utf8 = export("react_text", [minimal_trajectory("r-3")]).replace(b"User: hi", b"User: h\xffi")
    huge = export("react_text", [dataclasses.replace(minimal_trajectory("r-4"), goal="g" * 30_000)])
    stray = b"random preamble\nmore of it\n\n"
    data = (
        stray
        + good
        + b"\n"
        + truncated
        + bad_utf8
        + huge
        + b"trailing junk\n"
        + good.replace(b"r-1", b"r-5")[:-12]
    )
    records = parse(data, "react_text", max_record_bytes=20_000)
    summary = [(r.trajectory.trajectory_id if isinstance(r, Parsed) else r.reason) for r in records]
    assert summary == [
        "missing_required_field",
        "r-1",
        "missing_required_field",
        "invalid_utf8",
        "record_too_large",
        "missing_required_field",
        "missing_required_field",
    ]
    separators = data.count(b"=== TRAJECTORY")
    stray_runs = 2
    assert len(records) == separators + stray_runs
    lines = data.split(b"\n")
    assert [r.line if isinstance(r, Quarantined) else r.trajectory.provenance.line for r in records] == [
        1,
        4,
        *(
            i
            for i, line in enumerate(lines, start=1)
            if line.startswith((b"=== TRAJECTORY r-2", b"=== TRAJECTORY r-3", b"=== TRAJECTORY r-4"))
        ),
        next(i for i, line in enumerate(lines, start=1) if line == b"trailing junk"),
        next(i for i, line in enumerate(lines, start=1) if line.startswith(b"=== TRAJECTORY r-5")),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_never_raises_on_cut_or_corrupted_input(fmt: str) -> None:
    """Every prefix and many random byte corruptions of a valid file parse without raising, and
    the JSONL formats still account for every non-blank line."""
    data = export(fmt, [full_trajectory("t-1"), minimal_trajectory("t-2")])
    rng = random.Random(7)
    variants = [data[:cut] for cut in range(0, len(data), 7)]
    for _ in range(300):
        i = rng.randrange(len(data))
        variants.append(data[:i] + bytes([rng.choice(b'{}[]":,\\\n\xff0a ')]) + data[i + 1 :])
    for variant in variants:
        records = parse(variant, fmt)
        assert all(isinstance(r, (Parsed, Quarantined)) for r in records)
        if fmt in ("canonical", "openai_chat"):
            assert len(records) == sum(1 for line in variant.split(b"\n") if line.strip())


# --- format specifics -------------------------------------------------------------------------------


def test_openai_reads_developer_role_and_content_parts() -> None:
    record = {
        "id": "r1",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            },
            {"role": "assistant", "content": "Hello", "reasoning_content": "greet"},
        ],
    }
    [t] = parsed(parse(jsonl(record), "openai_chat"))
    assert [(s.role, s.content, s.reasoning) for s in t.steps] == [
        ("system", "Be brief.", None),
        ("user", "Hi there", None),
        ("assistant", "Hello", "greet"),
    ]
    assert t.system_prompt == "Be brief."
    assert (t.tools, t.request_params, t.consent, t.extra) == ([], {}, Consent(False, None), {})


def test_openai_mixed_presets_in_one_file_and_explicit_mapping_wins() -> None:
    wrapped = export("openai_chat", [full_trajectory("w-1")], OpenAIMapping.preset("wrapped"))
    plain = export("openai_chat", [full_trajectory("p-1")])
    assert [t.trajectory_id for t in parsed(parse(plain + wrapped, "openai_chat"))] == ["p-1", "w-1"]
    q = only_quarantine(plain, "openai_chat", mapping=OpenAIMapping.preset("wrapped"))
    assert (q.reason, q.detail) == (
        "missing_required_field",
        "meta.request_id: trajectory id is missing",
    )


def test_openai_mapping_from_dict() -> None:
    mapping = OpenAIMapping.from_dict(
        {"preset": "wrapped", "id": "req.id", "request_params": ["knobs.temperature"]}
    )
    assert mapping == dataclasses.replace(
        OpenAIMapping.preset("wrapped"), id="req.id", request_params=("knobs.temperature",)
    )
    assert OpenAIMapping.from_dict({}) == OpenAIMapping.default()
    record = {
        "req": {"id": "x-1"},
        "conversation": {"turns": [{"role": "user", "content": "hi"}]},
        "knobs": {"temperature": 0.5},
    }
    [t] = parsed(parse(jsonl(record), "openai_chat", mapping=mapping))
    assert (t.trajectory_id, t.request_params) == ("x-1", {"temperature": 0.5})
    with pytest.raises(ValueError, match="unknown openai_chat mapping keys: identifier"):
        OpenAIMapping.from_dict({"identifier": "x"})
    with pytest.raises(ValueError, match="'request_params': expected a list of dotted paths"):
        OpenAIMapping.from_dict({"request_params": "temperature"})
    with pytest.raises(ValueError, match="unknown openai_chat mapping preset 'nested'"):
        OpenAIMapping.preset("nested")


def test_otel_groups_a_trace_across_lines_and_orders_steps_by_start_time() -> None:
    trace = "f" * 32
    history = [
        {"role": "system", "parts": [{"type": "text", "content": "Be kind."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Where is O-1?"}]},
    ]
    call = {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "call_1",
                "name": "lookup_order",
                "arguments": '{"order_id": "O-1"}',
            }
        ],
    }
    response = {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"status": "shipped"}}],
    }
    s = 1_763_719_200_000_000_000
    chat_1 = _span(
        trace,
        "c1",
        "r",
        (s + 2_000_000_000, s + 2_800_000_000),
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps(history),
            "gen_ai.output.messages": json.dumps([call]),
            "gen_ai.usage.input_tokens": 120,  # written by _kv as the OTLP/JSON string "120"
            "gen_ai.usage.output_tokens": 18,
        },
    )
    tool = _span(
        trace,
        "t1",
        "r",
        (s + 3_000_000_000, s + 3_040_000_000),
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.result": '{"status": "shipped"}',
        },
    )
    tool["status"] = {"code": "STATUS_CODE_ERROR", "message": "retried once"}
    final = [{"role": "assistant", "parts": [{"type": "text", "content": "Shipped."}]}]
    chat_2 = _span(
        trace,
        "c2",
        "r",
        (s + 4_000_000_000, None),
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": json.dumps([*history, call, response]),
            "gen_ai.output.messages": json.dumps(final),
        },
    )
    root = _span(
        trace,
        "r",
        None,
        (s + 123_456_789, s + 5_000_000_000),
        {
            **ROOT,
            "gen_ai.agent.name": "support",
            "gen_ai.conversation.id": "s-1",
            "flywheel.outcome.reward": 1,
            "flywheel.outcome.success": True,
            "deployment.region": "eu",
            "gen_ai.request.temperature": 0.2,
        },
    )
    line_1 = _otel_line(chat_2, tool)  # later spans first, root on the next line
    line_2 = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_kv("service.name", "support-bot")]},
                    "scopeSpans": [{"spans": [root, chat_1]}],
                }
            ]
        }
    ).encode()
    [t] = parsed(parse(line_1 + line_2, "otel_genai"))
    assert t.trajectory_id == trace
    assert t.provenance.line == 1
    assert [(s.role, s.content) for s in t.steps] == [
        ("system", "Be kind."),
        ("user", "Where is O-1?"),
        ("assistant", None),
        ("tool", '{"status": "shipped"}'),
        ("assistant", "Shipped."),
    ]
    assistant, tool_step = t.steps[2], t.steps[3]
    assert assistant.tool_calls == [ToolCall("call_1", "lookup_order", {"order_id": "O-1"})]
    assert (assistant.latency_ms, assistant.prompt_tokens, assistant.completion_tokens) == (
        800.0,
        120,
        18,
    )
    assert (tool_step.tool_call_id, tool_step.error, tool_step.latency_ms) == (
        "call_1",
        "retried once",
        40.0,
    )
    assert t.steps[4].latency_ms is None
    assert (t.model, t.agent_name, t.session_id, t.system_prompt) == ("gpt-4o", "support", "s-1", None)
    assert (t.outcome.reward, t.outcome.success) == (1.0, True)
    assert t.started_at == "2025-11-21T10:00:00.123456789Z" and t.ended_at == "2025-11-21T10:00:05Z"
    assert t.request_params == {"temperature": 0.2}
    assert t.extra == {"deployment.region": "eu", "otel.resource": {"service.name": "support-bot"}}


def test_otel_resent_batch_does_not_duplicate_steps() -> None:
    line = export("otel_genai", [full_trajectory()])
    [once] = parsed(parse(line, "otel_genai"))
    [twice] = parsed(parse(line + b"\n" + line, "otel_genai"))
    assert twice == once


def test_react_reads_a_hand_written_transcript() -> None:
    text = b"""=== TRAJECTORY h-1 ===
model: gpt-4o
success: true
consent: {"may_train": true, "scope": "evaluation_only"}
shift: night
User: Where is my order O-1?
Thought: I should look it up.
Action: lookup_order[{"order_id": "O-1", "opts": {"deep": true}}]
Observation: {"status": "shipped",
  "carrier": "DHL"}
Observation: stray result with no call

Final Answer: It has shipped with DHL.
Reward: 0.5
"""
    [t] = parsed(parse(text, "react_text"))
    assert (t.trajectory_id, t.model, t.outcome.success, t.outcome.reward) == (
        "h-1",
        "gpt-4o",
        True,
        0.5,
    )
    assert t.consent == Consent(True, "evaluation_only")
    assert t.extra == {"shift": "night"}
    assert [(s.role, s.content, s.tool_call_id) for s in t.steps] == [
        ("user", "Where is my order O-1?", None),
        ("assistant", None, None),
        ("tool", '{"status": "shipped",\n  "carrier": "DHL"}', "call_1"),
        ("tool", "stray result with no call", None),
        ("assistant", "It has shipped with DHL.", None),
    ]
    assert t.steps[1].reasoning == "I should look it up."
    assert t.steps[1].tool_calls == [
        ToolCall("call_1", "lookup_order", {"order_id": "O-1", "opts": {"deep": True}})
    ]


def test_react_assistant_text_joins_the_open_step_only_when_it_has_no_text_or_calls() -> None:
    text = b"""=== TRAJECTORY a-1 ===
User: hi
Thought: greet
Assistant: one moment
Final Answer: here it is
Action: f[{}]
Final Answer: done
Reward: 1
"""
    [t] = parsed(parse(text, "react_text"))
    assert [(s.role, s.reasoning, s.content, [c.name for c in s.tool_calls]) for s in t.steps] == [
        ("user", None, "hi", []),
        ("assistant", "greet", "one moment", []),
        ("assistant", None, "here it is", ["f"]),
        ("assistant", None, "done", []),
    ]


def test_canonical_null_defaults_and_json_integers_for_floats() -> None:
    [t] = parsed(
        parse(
            canonical_line(tools=None, feedback=None, consent=None, outcome={"reward": 1}), "canonical"
        )
    )
    assert (t.tools, t.feedback, t.consent, t.outcome) == (
        [],
        [],
        Consent(False, None),
        Outcome(reward=1.0),
    )
    assert isinstance(t.outcome.reward, float)


def test_unknown_format_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        parse_file(b"", fmt="csv", source_uri=URI, raw_commit=None)
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        export("csv", [])


def test_parse_is_lazy() -> None:
    records = parse_file(
        export("canonical", [full_trajectory()]) * 3, fmt="canonical", source_uri=URI, raw_commit=None
    )
    assert isinstance(next(records), Parsed)
    assert Counter(type(r).__name__ for r in records) == {"Parsed": 2}


def test_content_digest_is_the_digest_of_the_record_without_provenance() -> None:
    """Pinned to its definition, so a faster implementation cannot silently change every digest:
    sha256 of the record without provenance as compact JSON, keys sorted, written by orjson,
    or by the stdlib where orjson refuses (an integer beyond 64 bits)."""
    import hashlib

    import orjson

    from pipeline.shell.ingest import content_digest

    def without_provenance(t: Trajectory) -> dict[str, Any]:
        body = dataclasses.asdict(t)
        del body["provenance"]
        return body

    t = dataclasses.replace(full_trajectory(), extra={"logprob": -3.1e-07})
    by_orjson = orjson.dumps(without_provenance(t), option=orjson.OPT_SORT_KEYS)
    assert b'"logprob":-3.1e-7' in by_orjson  # orjson's spelling (the stdlib's is -3.1e-07)
    assert content_digest(t) == hashlib.sha256(by_orjson).hexdigest()
    moved = dataclasses.replace(t, provenance=dataclasses.replace(t.provenance, line=99))
    assert content_digest(moved) == content_digest(t)

    wide = dataclasses.replace(t, extra={"logprob": -3.1e-07, "big": 2**70})
    by_stdlib = json.dumps(without_provenance(wide), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert content_digest(wide) == hashlib.sha256(by_stdlib.encode()).hexdigest()
