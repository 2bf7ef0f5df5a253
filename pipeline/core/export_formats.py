"""Released mart rows as the JSONL records other trainers read: TRL (SFT, DPO, KTO) and
OpenAI chat fine-tuning. Pure: rows in (JSON columns as strings or decoded), dicts out.

The marts hold messages as {role, content, tool_calls, tool_call_id} with every key on every
message (NULL where it does not apply) and tool-call `arguments` as a JSON object. Both
targets get the same conversation without the NULL keys; they differ in one place:

- TRL (transformers chat templates): `arguments` stays an object, `tools` a list of
  {type: "function", function: {name, description, parameters}}.
- OpenAI: `arguments` is a JSON *string*; tool results carry `tool_call_id`; `weight` (0 or 1)
  on an assistant message says whether it is trained on.

Records, one JSON object per line:

    trl-sft  train  {"messages": [...], "tools": [...]}                  (conversational LM)
             eval   {"prompt": [...], "completion": [assistant], "tools": [...]}
    trl-dpo  train  {"prompt": [...], "chosen": [...], "rejected": [...], "tools": [...]}
    trl-kto  train  {"prompt": [...], "completion": [...], "label": true|false, "tools": [...]}
    openai   train  {"messages": [...], "tools": [...]}
             eval   {"messages": [... earlier assistant turns weight 0, expected turn weight 1],
                     "tools": [...]}

An eval record is one eval case: the conversation up to a decision point and the reference
agent's action there (its first tool call, or its final answer) as the assistant turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Row = Mapping[str, Any]
EXPECTED_CALL_ID = "call_expected"  # eval cases record the call, not its id


def _json(value: Any) -> Any:
    """A JSON column as read from Parquet (a string) or already decoded."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _present(message: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if value is not None}


def normalise_tools(tools: Any) -> list[dict[str, Any]]:
    """Tool schemas as {type: "function", function: {name, description, parameters}} (a bare
    function schema is wrapped)."""
    wrapped = []
    for tool in _json(tools) or []:
        function = tool.get("function", tool)
        wrapped.append({"type": "function", "function": {
            key: function[key] for key in ("name", "description", "parameters") if key in function}})
    return wrapped


def trl_messages(messages: Any) -> list[dict[str, Any]]:
    """Mart messages for transformers chat templates: NULL keys dropped, arguments objects."""
    out = []
    for message in _json(messages) or []:
        clean = _present(message)
        if "tool_calls" in clean:
            clean["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": _json(call["function"].get("arguments")) or {}}}
                for call in clean["tool_calls"]
            ]
        out.append(clean)
    return out


def openai_messages(messages: Any) -> list[dict[str, Any]]:
    """Mart messages for OpenAI fine-tuning: arguments as JSON strings, no NULL keys, a tool
    result always a string."""
    out = []
    for message in trl_messages(messages):
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {"id": call["id"], "type": "function", "function": {
                    "name": call["function"]["name"],
                    "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False)}}
                for call in message["tool_calls"]
            ]
        if message["role"] == "tool":
            message.setdefault("content", "")
        out.append(message)
    return out


def expected_turn(case: Row) -> dict[str, Any]:
    """The reference assistant turn of an eval case: its tool call, or its final answer."""
    if case["expected_kind"] == "tool_call":
        call = _json(case["expected_tool_call"])
        return {"role": "assistant", "tool_calls": [
            {"id": EXPECTED_CALL_ID, "type": "function",
             "function": {"name": call["name"], "arguments": _json(call.get("arguments")) or {}}}]}
    return {"role": "assistant", "content": case["expected_answer"]}


# --- one converter per (format, file) ------------------------------------------------------


def trl_sft(row: Row) -> dict[str, Any]:
    return {"messages": trl_messages(row["messages"]), "tools": normalise_tools(row["tools"])}


def trl_sft_eval(case: Row) -> dict[str, Any]:
    return {"prompt": trl_messages(case["prompt"]), "completion": [expected_turn(case)],
            "tools": normalise_tools(case["tools"])}


def trl_dpo(pair: Row) -> dict[str, Any]:
    return {"prompt": trl_messages(pair["prompt"]), "chosen": trl_messages(pair["chosen"]),
            "rejected": trl_messages(pair["rejected"]), "tools": normalise_tools(pair["tools"])}


def trl_kto(row: Row) -> dict[str, Any]:
    return {"prompt": trl_messages(row["prompt"]), "completion": trl_messages(row["completion"]),
            "label": bool(row["label"]), "tools": normalise_tools(row["tools"])}


def openai_sft(row: Row) -> dict[str, Any]:
    return {"messages": openai_messages(row["messages"]), "tools": normalise_tools(row["tools"])}


def openai_eval(case: Row) -> dict[str, Any]:
    """Validation example: only the decision point counts (earlier assistant turns weight 0)."""
    prompt = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in openai_messages(case["prompt"])]
    [expected] = openai_messages([expected_turn(case)])
    return {"messages": [*prompt, {**expected, "weight": 1}], "tools": normalise_tools(case["tools"])}


Converter = Callable[[Row], dict[str, Any]]
# format -> (exported file suffix, released mart, converter) for each file it writes
FORMATS: dict[str, tuple[tuple[str, str, Converter], ...]] = {
    "trl-sft": (("train", "sft_examples", trl_sft), ("eval", "eval_cases", trl_sft_eval)),
    "trl-dpo": (("train", "preference_pairs", trl_dpo),),
    "trl-kto": (("train", "kto_examples", trl_kto),),
    "openai": (("train", "sft_examples", openai_sft), ("validation", "eval_cases", openai_eval)),
}


def check_format(fmt: str) -> tuple[tuple[str, str, Converter], ...]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return FORMATS[fmt]


def jsonl(records: Iterable[Mapping[str, Any]]) -> bytes:
    """One compact JSON object per line, UTF-8, keys in a stable order."""
    return b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in records)
