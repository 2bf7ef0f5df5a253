"""Building blocks of the corpus: pieces (bytes plus the records they hold, with their
expected outcome) and one valid record per landing format."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from pipeline.benchmarks.hostile_corpus.manifest import INGESTED, QUARANTINED

# --- pieces: bytes plus the records they hold ---------------------------------------------------


@dataclass
class _Piece:
    data: bytes
    # (line offset within the piece, outcome, case, reasons, injection)
    records: list[tuple[int, str, str, tuple[str, ...], str | None]] = field(default_factory=list)


def _ok(data: bytes, case: str, injection: str | None = None) -> _Piece:
    return _Piece(data, [(0, INGESTED, case, (), injection)])


def _bad(data: bytes, case: str, *reasons: str) -> _Piece:
    return _Piece(data, [(0, QUARANTINED, case, tuple(reasons), None)])


def _line(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode()


def _nest(depth: int, kind: str = "list") -> str:
    """JSON text nested `depth` levels deep (built as text: never recursion in here)."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _nest_value(depth: int) -> Any:
    value: Any = {"leaf": True}
    for i in range(depth):
        value = {"level": i, "next": value} if i % 2 else [value]
    return value


_INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80")
_BAD = "@@BAD@@"


def _deepen(line: bytes, nested: str) -> bytes:
    """`line` with its "@@DEEP@@" string replaced by the JSON text `nested`."""
    return line.replace(b'"@@DEEP@@"', nested.encode(), 1)


def _with_invalid_utf8(line: bytes, rng: Random) -> bytes:
    return line.replace(_BAD.encode(), rng.choice(_INVALID_UTF8), 1)


def _truncate(line: bytes, rng: Random) -> bytes:
    """A proper prefix of a JSON line, cut at a character boundary (so it is invalid JSON, not
    invalid UTF-8), without its newline: what a writer killed mid-line leaves."""
    text = line.decode().rstrip("\n")
    return text[: rng.randrange(1, len(text) - 1)].rstrip().encode()


# --- valid records, per format ----------------------------------------------------------------

_TASKS = ("order_status", "refund", "address_change", "subscription_pause")


def _conversation(rng: Random, user_text: str, tool_result: str | None = None) -> list[dict[str, Any]]:
    """A plain conversation as (role, content, tool call) dicts, format-neutral."""
    order = f"O-{rng.randrange(1000, 9999)}"
    return [
        {"role": "system", "content": "You are Acme's support agent."},
        {"role": "user", "content": user_text},
        {"role": "assistant", "reasoning": "Look the order up first.",
         "call": {"id": "call_1", "name": "lookup_order", "arguments": {"order_id": order}}},
        {"role": "tool", "content": tool_result if tool_result is not None else
         json.dumps({"order_id": order, "status": rng.choice(("shipped", "delayed", "delivered"))}),
         "tool_call_id": "call_1"},
        {"role": "assistant", "content": f"Your order {order} is on its way."},
    ]


def _canonical(tid: str, rng: Random, user_text: str = "Where is my order?",
               tool_result: str | None = None, **overrides: Any) -> dict[str, Any]:
    steps = []
    for i, turn in enumerate(_conversation(rng, user_text, tool_result)):
        step: dict[str, Any] = {"index": i, "role": turn["role"], "content": turn.get("content"),
                                "tool_calls": []}
        if "reasoning" in turn:
            step["reasoning"] = turn["reasoning"]
        if "call" in turn:
            step["tool_calls"] = [turn["call"]]
        if "tool_call_id" in turn:
            step["tool_call_id"] = turn["tool_call_id"]
        steps.append(step)
    record = {
        "schema_version": "1.0",
        "trajectory_id": tid,
        "session_id": f"s-{tid}",
        "user_id": f"u-{rng.randrange(10**6):06d}",
        "tenant": "acme",
        "agent_name": "support-bot",
        "agent_version": "1.4.2",
        "model": "gpt-4o-mini",
        "task_type": rng.choice(_TASKS),
        "started_at": "2026-11-21T10:00:00Z",
        "ended_at": "2026-11-21T10:01:30Z",
        "steps": steps,
        "outcome": {"success": True, "reward": 1.0, "verified_by": "environment",
                    "termination": "completed"},
        "consent": {"may_train": True, "scope": "training"},
    }
    record.update(overrides)
    return record


def _openai_messages(rng: Random, user_text: str, tool_result: str | None = None) -> list[dict[str, Any]]:
    out = []
    for turn in _conversation(rng, user_text, tool_result):
        msg: dict[str, Any] = {"role": turn["role"], "content": turn.get("content")}
        if "reasoning" in turn:
            msg["reasoning_content"] = turn["reasoning"]
        if "call" in turn:
            call = turn["call"]
            msg["tool_calls"] = [{"id": call["id"], "type": "function", "function": {
                "name": call["name"], "arguments": json.dumps(call["arguments"])}}]
        if "tool_call_id" in turn:
            msg["tool_call_id"] = turn["tool_call_id"]
        out.append(msg)
    return out


def _openai(tid: str, rng: Random, user_text: str = "Where is my order?",
            tool_result: str | None = None) -> dict[str, Any]:
    return {
        "id": tid,
        "model": "gpt-4o-mini",
        "created": 1763719200,
        "messages": _openai_messages(rng, user_text, tool_result),
        "metadata": {"session_id": f"s-{tid}", "tenant": "acme", "task_type": rng.choice(_TASKS),
                     "started_at": "2026-11-21T10:00:00Z", "success": True, "reward": 1.0,
                     "consent": {"may_train": True, "scope": "training"}},
        "temperature": 0.2,
    }


def _wrapped(tid: str, rng: Random, user_text: str = "Where is my order?") -> dict[str, Any]:
    return {
        "meta": {"request_id": tid, "model": "gpt-4o-mini", "tenant": "acme",
                 "started_at": "2026-11-21T10:00:00Z"},
        "conversation": {"turns": _openai_messages(rng, user_text), "params": {"temperature": 0.1}},
        "result": {"success": True, "reward": 1.0},
    }


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def _otel(tid: str, rng: Random, user_text: str = "Where is my order?",
          extra_attrs: list[dict[str, Any]] | None = None, **span_overrides: Any) -> dict[str, Any]:
    trace_id = hashlib.sha256(tid.encode()).hexdigest()[:32]
    inputs = [{"role": "system", "parts": [{"type": "text", "content": "You are Acme's support agent."}]},
              {"role": "user", "parts": [{"type": "text", "content": user_text}]}]
    outputs = [{"role": "assistant", "parts": [{"type": "text", "content": "It has shipped."}]}]
    attrs = {
        "gen_ai.operation.name": "invoke_agent",
        "flywheel.trajectory_id": tid,
        "gen_ai.agent.name": "support-bot",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.conversation.id": f"s-{tid}",
        "flywheel.task_type": rng.choice(_TASKS),
        "flywheel.outcome.success": True,
        "flywheel.outcome.reward": 1.0,
        "gen_ai.input.messages": json.dumps(inputs, ensure_ascii=False),
        "gen_ai.output.messages": json.dumps(outputs),
    }
    span = {
        "traceId": trace_id,
        "spanId": trace_id[:16],
        "name": "invoke_agent support-bot",
        "kind": 1,
        "startTimeUnixNano": "1763719200000000000",
        "endTimeUnixNano": "1763719290000000000",
        "attributes": [{"key": k, "value": _any_value(v)} for k, v in attrs.items()]
        + (extra_attrs or []),
    }
    span.update(span_overrides)
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "support-bot"}}]},
        "scopeSpans": [{"scope": {"name": "flywheel"}, "spans": [span]}]}]}


def _react_text(text: str) -> str:
    """Turn text as the react_text writer encodes it (documented in pipeline/core/formats/react_text):
    multi-line text, text with outer whitespace or starting with '"' is a JSON string."""
    plain = text == text.strip() and "\n" not in text and "\r" not in text and not text.startswith('"')
    return text if plain else json.dumps(text, ensure_ascii=False)


def _react(tid: str, rng: Random, user_text: str = "Where is my order?", *,
           headers: Iterable[str] = (), observation: str | None = None,
           reward: str = "1.0", action: str | None = None) -> bytes:
    order = f"O-{rng.randrange(1000, 9999)}"
    action = action if action is not None else f"lookup_order[{json.dumps({'order_id': order})}]"
    observation = observation if observation is not None else json.dumps({"status": "shipped"})
    lines = [
        f"=== TRAJECTORY {tid} ===",
        f'session_id: "s-{tid}"',
        "model: gpt-4o-mini",
        f'task_type: "{rng.choice(_TASKS)}"',
        *headers,
        f"User: {_react_text(user_text)}",
        "Thought: I should look the order up.",
        f"Action: {action}",
        f"Observation: {_react_text(observation)}",
        "Final Answer: It has shipped.",
        f"Reward: {reward}",
    ]
    return ("\n".join(lines) + "\n\n").encode()
