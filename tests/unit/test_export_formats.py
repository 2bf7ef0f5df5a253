"""Released mart rows → TRL and OpenAI fine-tuning records (pipeline/core/export_formats.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core import export_formats as ef

TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_customer", "description": "Find a customer by email.",
        "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}}},
    {"type": "function", "function": {
        "name": "issue_refund", "description": "Refund part of an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                       "required": ["order_id", "amount"]}}},
]


def _msg(role, content=None, tool_calls=None, tool_call_id=None):
    """A message as int_messages writes it: every key, NULL where it does not apply."""
    return {"role": role, "content": content, "tool_calls": tool_calls, "tool_call_id": tool_call_id}


def _call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATION = [
    _msg("system", "You are Brewline's support assistant."),
    _msg("user", "I'm zoë@example.net; order ORD-1 arrived broken, refund €12.50 please."),
    _msg("assistant", None, [_call("call_1", "lookup_customer", {"email": "zoë@example.net"})]),
    _msg("tool", '{"customer_id": "C-1", "order_ids": ["ORD-1"]}', tool_call_id="call_1"),
    _msg("assistant", "Found you. Refunding now.", [
        _call("call_2", "issue_refund", {"order_id": "ORD-1", "amount": 12.5}),
        _call("call_3", "lookup_customer", {"email": "zoë@example.net"})]),
    _msg("tool", '{"refund_id": "R-1", "status": "ok"}', tool_call_id="call_2"),
    _msg("tool", None, tool_call_id="call_3"),  # a tool that returned nothing
    _msg("assistant", "Done: €12.50 is on its way back to your card."),
]
PROMPT, COMPLETION = CONVERSATION[:2], CONVERSATION[2:]
# Parquet hands the JSON columns over as strings
SFT_ROW = {"record_key": "f.jsonl:1", "messages": json.dumps(CONVERSATION), "tools": json.dumps(TOOLS), "weight": 1.65}
PAIR = {"pair_id": "p1", "prompt": json.dumps(PROMPT), "chosen": json.dumps(COMPLETION),
        "rejected": json.dumps([_msg("assistant", "Sorry, I can't refund orders.")]), "tools": json.dumps(TOOLS)}
KTO_ROW = {"record_key": "f.jsonl:2", "prompt": json.dumps(PROMPT), "completion": json.dumps(COMPLETION),
           "label": np.bool_(False), "tools": json.dumps(TOOLS)}
REFUND = {"name": "issue_refund", "arguments": {"order_id": "ORD-1", "amount": 12.5}}
CALL_CASE = {"case_id": "f.jsonl:1@4", "prompt": json.dumps(CONVERSATION[:4]), "expected_kind": "tool_call",
             "expected_tool_call": json.dumps(REFUND), "expected_answer": None, "tools": json.dumps(TOOLS)}
ANSWER_CASE = {**CALL_CASE, "case_id": "f.jsonl:1@7", "prompt": json.dumps(CONVERSATION[:7]),
               "expected_kind": "final_answer", "expected_tool_call": None,
               "expected_answer": "Done: €12.50 is on its way back to your card."}


def _without_nulls(messages):
    return [{k: v for k, v in m.items() if v is not None} for m in messages]


def _nulls(value) -> list:
    if isinstance(value, dict):
        return [k for k, v in value.items() if v is None] + [n for v in value.values() for n in _nulls(v)]
    return [n for v in value for n in _nulls(v)] if isinstance(value, list) else []


def test_trl_sft_is_the_conversation_without_null_keys_and_with_argument_objects():
    record = ef.trl_sft(SFT_ROW)
    assert set(record) == {"messages", "tools"}
    assert record["messages"] == _without_nulls(CONVERSATION)
    assert record["tools"] == TOOLS
    assert record["messages"][2] == {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup_customer",
                                                          "arguments": {"email": "zoë@example.net"}}}]}
    assert record["messages"][3] == {"role": "tool", "content": '{"customer_id": "C-1", "order_ids": ["ORD-1"]}',
                                     "tool_call_id": "call_1"}
    assert not _nulls(record)
    assert ef.trl_sft({**SFT_ROW, "messages": CONVERSATION, "tools": TOOLS}) == record, "decoded columns too"


def test_openai_sft_has_string_arguments_and_answers_every_call_by_id():
    record = ef.openai_sft(SFT_ROW)
    assert set(record) == {"messages", "tools"}
    messages = record["messages"]
    assert [m["role"] for m in messages] == [m["role"] for m in CONVERSATION]
    assert messages[4] == {"role": "assistant", "content": "Found you. Refunding now.", "tool_calls": [
        {"id": "call_2", "type": "function", "function": {"name": "issue_refund",
                                                          "arguments": '{"order_id": "ORD-1", "amount": 12.5}'}},
        {"id": "call_3", "type": "function", "function": {"name": "lookup_customer",
                                                          "arguments": '{"email": "zoë@example.net"}'}}]}
    calls = [c for m in messages for c in m.get("tool_calls", [])]
    assert all(isinstance(c["function"]["arguments"], str) for c in calls)
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        c["function"]["arguments"] for m in CONVERSATION for c in m["tool_calls"] or []]
    results = [m for m in messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in results] == [c["id"] for c in calls]
    assert all(isinstance(m["content"], str) for m in results), "a tool result is always a string"
    assert not _nulls(record) and not any("weight" in m for m in messages)
    assert record["tools"] == TOOLS


def test_tools_are_wrapped_as_function_tools_with_only_the_openai_keys():
    bare = {"name": "ping", "parameters": {"type": "object", "properties": {}}, "x-internal": True}
    assert ef.normalise_tools(json.dumps([bare])) == [
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}]
    assert ef.normalise_tools(None) == []


def test_dpo_and_kto_records():
    pair = ef.trl_dpo(PAIR)
    assert pair == {"prompt": _without_nulls(PROMPT), "chosen": _without_nulls(COMPLETION),
                    "rejected": [{"role": "assistant", "content": "Sorry, I can't refund orders."}], "tools": TOOLS}
    kto = ef.trl_kto(KTO_ROW)
    assert kto == {"prompt": _without_nulls(PROMPT), "completion": _without_nulls(COMPLETION), "label": False,
                   "tools": TOOLS}
    assert type(kto["label"]) is bool, "numpy booleans are not JSON"


def test_eval_cases_become_prompt_and_the_reference_turn():
    call = ef.trl_sft_eval(CALL_CASE)
    assert call["prompt"] == _without_nulls(CONVERSATION[:4])
    assert call["completion"] == [{"role": "assistant", "tool_calls": [
        {"id": ef.EXPECTED_CALL_ID, "type": "function",
         "function": {"name": "issue_refund", "arguments": {"order_id": "ORD-1", "amount": 12.5}}}]}]
    answer = ef.trl_sft_eval(ANSWER_CASE)
    assert answer["completion"] == [{"role": "assistant", "content": "Done: €12.50 is on its way back to your card."}]


def test_openai_validation_example_trains_only_on_the_decision_point():
    messages = ef.openai_eval(ANSWER_CASE)["messages"]
    assert messages[:-1] == [{**m, "weight": 0} if m["role"] == "assistant" else m
                             for m in ef.openai_messages(CONVERSATION[:7])]
    assert messages[-1] == {"role": "assistant", "content": ANSWER_CASE["expected_answer"], "weight": 1}
    assert [m.get("weight") for m in messages if m["role"] == "assistant"] == [0, 0, 1]
    assert all("weight" not in m for m in messages if m["role"] != "assistant")
    last = ef.openai_eval(CALL_CASE)["messages"][-1]
    assert last["tool_calls"][0]["function"]["arguments"] == '{"order_id": "ORD-1", "amount": 12.5}'


def test_every_format_names_its_files_and_an_unknown_one_lists_the_known():
    assert {fmt: [suffix for suffix, _, _ in files] for fmt, files in ef.FORMATS.items()} == {
        "trl-sft": ["train", "eval"], "trl-dpo": ["train"], "trl-kto": ["train"], "openai": ["train", "validation"]}
    with pytest.raises(ValueError, match="trl-sft, trl-dpo, trl-kto, openai"):
        ef.check_format("alpaca")


def test_jsonl_is_one_utf8_object_per_line_and_deterministic():
    records = [ef.trl_sft(SFT_ROW), ef.trl_kto(KTO_ROW)]
    data = ef.jsonl(records)
    lines = data.decode().splitlines()
    assert len(lines) == 2 and data.endswith(b"\n")
    assert [json.loads(line) for line in lines] == records
    assert "zoë" in lines[0], "non-ASCII is written as is"
    assert ef.jsonl(records) == data
    assert ef.jsonl([]) == b""
