"""The judge's rubric as plain functions: what it is asked, and how its answer is read."""

from pipeline.core.judge import CRITERIA, MAX_TRANSCRIPT_CHARS, RUBRIC_VERSION, Verdict, judge_request, parse_verdict

CONVERSATION = [
    {"role": "system", "content": "You are a support agent. Never refund more than 100 EUR."},
    {"role": "user", "content": "Please refund order O-7, it arrived broken."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "refund_order", "arguments": '{"order_id": "O-7"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"refunded": 42.0}'},
    {"role": "assistant", "content": "Refunded 42 EUR for O-7."},
]


def test_the_request_states_the_rubric_and_the_whole_conversation():
    system, user = judge_request(CONVERSATION)
    assert system["role"] == "system" and RUBRIC_VERSION in system["content"]
    assert all(name in system["content"] for name in CRITERIA)
    assert '-> refund_order({"order_id": "O-7"})' in user["content"]
    assert "[tool] {\"refunded\": 42.0}" in user["content"] and "Refunded 42 EUR" in user["content"]


def test_a_long_transcript_keeps_its_start_and_its_end():
    long = [CONVERSATION[1]] + [{"role": "user", "content": f"turn {i} " * 50} for i in range(100)] + [CONVERSATION[-1]]
    _, user = judge_request(long)
    assert len(user["content"]) < MAX_TRANSCRIPT_CHARS + 100
    assert "refund order O-7" in user["content"] and "Refunded 42 EUR" in user["content"]
    assert "characters cut" in user["content"]


def test_verdicts_are_read_from_json_or_yes_no_and_nothing_else_counts():
    assert parse_verdict('{"goal_achieved": true, "policy_followed": true, "tool_use_correct": true}').passed
    fenced = 'Sure.\n```json\n{"goal_achieved": "yes", "policy_followed": "no", "tool_use_correct": "yes"}\n```'
    assert parse_verdict(fenced) == Verdict(True, False, True)
    assert not Verdict(True, False, True).passed
    # a reply that does not answer all three questions is no label, never a guess
    assert parse_verdict('{"goal_achieved": true}') is None
    assert parse_verdict("The agent did well.") is None
    assert parse_verdict('{"goal_achieved": "maybe", "policy_followed": true, "tool_use_correct": true}') is None
    assert parse_verdict('{broken {"goal_achieved": false, "policy_followed": true, "tool_use_correct": true}') \
        == Verdict(False, True, True)
