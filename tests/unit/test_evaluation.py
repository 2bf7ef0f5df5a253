"""Evaluation: AST-style next-action metrics, final-answer matching, the simulator sandbox
with pass^k, the promotion rule and the HTML report. No model: policies are scripted."""

from __future__ import annotations

import base64
import json
import re
from random import Random

import pytest

from pipeline.evaluation.metrics import (
    FINAL,
    UNKNOWN_TOOL,
    UNPARSEABLE,
    answer_exact,
    answer_f1,
    answer_tokens,
    confusion,
    score_case,
    summarize,
)
from pipeline.evaluation.policy import ModelPolicy, ScriptedPolicy, assistant_message, scripted_factory
from pipeline.evaluation.promotion import decide_promotion, incumbent_for
from pipeline.evaluation.report import combine, model_result, write_report
from pipeline.evaluation.sandbox import evaluate_sandbox, requested_facts, run_trial
from pipeline.simulator.tasks import TASK_TYPES, TaskMix, sample_task

# -- hand-made cases ---------------------------------------------------------------------------

TOOLS = [
    {"type": "function", "function": {"name": "issue_refund", "parameters": {
        "type": "object", "additionalProperties": False, "required": ["order_id", "amount", "reason"],
        "properties": {
            "order_id": {"type": "string", "pattern": r"ORD-\d{6}"},
            "amount": {"type": "number", "exclusiveMinimum": 0},
            "reason": {"type": "string", "enum": ["damaged", "other"]},
            "note": {"type": "string"},
            "notify": {"type": "boolean", "default": True},
        }}}},
    {"type": "function", "function": {"name": "search_kb", "parameters": {
        "type": "object", "additionalProperties": False, "required": ["query"],
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "default": 3}}}}},
    {"type": "function", "function": {"name": "pause_subscription", "parameters": {
        "type": "object", "additionalProperties": False, "required": ["subscription_id", "weeks"],
        "properties": {"subscription_id": {"type": "string"}, "weeks": {"type": "integer", "minimum": 1}}}}},
]
REFUND = {"name": "issue_refund", "arguments": {"order_id": "ORD-123456", "amount": 16.5, "reason": "damaged"}}


def call_case(expected=REFUND, task_type="refund", case_id="c1"):
    return {"case_id": case_id, "task_type": task_type, "expected_kind": "tool_call",
            "expected_tool_call": json.dumps(expected), "expected_answer": None, "tools": json.dumps(TOOLS)}


def answer_case(answer, task_type="order_status", case_id="a1"):
    return {"case_id": case_id, "task_type": task_type, "expected_kind": "final_answer",
            "expected_tool_call": None, "expected_answer": answer, "tools": TOOLS}


def calling(name, arguments):
    return assistant_message(None, [{"name": name, "arguments": arguments}])


def test_exact_call_matches_every_way():
    s = score_case(call_case(), calling("issue_refund", dict(REFUND["arguments"])))
    assert (s.tool_name_match, s.args_exact_match, s.args_schema_match, s.action_match) == (True, True, True, True)
    assert s.invalid_reason is None and s.predicted_label == "issue_refund" and not s.mismatches


def test_reordered_keys_and_json_string_arguments_are_exact():
    reordered = {"reason": "damaged", "amount": 16.5, "order_id": "ORD-123456"}
    as_text = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "x", "type": "function", "function": {"name": "issue_refund", "arguments": json.dumps(reordered)}}]}
    for prediction in (calling("issue_refund", reordered), as_text):
        s = score_case(call_case(), prediction)
        assert s.args_exact_match and s.args_schema_match


def test_coerced_types_match_the_schema_but_not_exactly():
    s = score_case(call_case(), calling("issue_refund", {**REFUND["arguments"], "amount": "16.50"}))
    assert s.args_schema_match and not s.args_exact_match
    assert s.invalid_reason == "schema_invalid"  # "16.50" is still not a JSON number

    pause = {"name": "pause_subscription", "arguments": {"subscription_id": "S-1234", "weeks": 3}}
    for weeks, ok in (("3", True), (" 3 ", True), (3.0, True), ("3.5", False), (True, False), (4, False)):
        s = score_case(call_case(pause, "subscription_pause"),
                       calling("pause_subscription", {"subscription_id": "S-1234", "weeks": weeks}))
        assert s.args_schema_match is ok, weeks
    assert score_case(call_case(pause), calling("pause_subscription", {"subscription_id": "S-1234", "weeks": 3.0})
                      ).args_exact_match  # JSON has one number type

    with_total = {**REFUND, "arguments": {**REFUND["arguments"], "amount": 1234.5}}
    for amount in ("1,234.5", "1.2345e3", 1234.50):
        assert score_case(call_case(with_total), calling("issue_refund", {**with_total["arguments"], "amount": amount})
                          ).args_schema_match
    assert not score_case(call_case(with_total), calling("issue_refund", {**with_total["arguments"], "amount": "abc"})
                          ).args_schema_match


def test_omitted_or_explicit_default_is_equivalent():
    expected = {"name": "search_kb", "arguments": {"query": "return policy", "limit": 3}}
    s = score_case(call_case(expected, "kb_question"), calling("search_kb", {"query": "return policy"}))
    assert s.args_schema_match and not s.args_exact_match
    s = score_case(call_case({"name": "search_kb", "arguments": {"query": "return policy"}}, "kb_question"),
                   calling("search_kb", {"query": "return policy", "limit": 3}))
    assert s.args_schema_match
    # a non-default value may not be omitted, nor a required argument without a default
    s = score_case(call_case({**expected, "arguments": {"query": "return policy", "limit": 5}}, "kb_question"),
                   calling("search_kb", {"query": "return policy"}))
    assert not s.args_schema_match and any("limit: missing" in m for m in s.mismatches)


def test_string_rules_free_text_vs_identifiers():
    expected = {**REFUND, "arguments": {**REFUND["arguments"], "note": "Box was crushed"}}
    loose = {**expected["arguments"], "note": "  box  WAS crushed "}
    s = score_case(call_case(expected), calling("issue_refund", loose))
    assert s.args_schema_match  # free text: trimmed, whitespace collapsed, case-folded
    s = score_case(call_case(), calling("issue_refund", {**REFUND["arguments"], "order_id": "ord-123456"}))
    assert not s.args_schema_match  # a pattern-constrained id is case-sensitive
    s = score_case(call_case(), calling("issue_refund", {**REFUND["arguments"], "order_id": " ORD-123456"}))
    assert s.args_schema_match  # but trimmed
    s = score_case(call_case(), calling("issue_refund", {**REFUND["arguments"], "notify": "true"}))
    assert s.args_schema_match  # boolean string equal to the default


def test_wrong_name_wrong_value_and_extra_argument_fail():
    s = score_case(call_case(), calling("search_kb", {"query": "refund"}))
    assert not s.tool_name_match and not s.args_schema_match and s.predicted_label == "search_kb"
    assert "called search_kb instead of issue_refund" in s.mismatches

    s = score_case(call_case(), calling("issue_refund", {**REFUND["arguments"], "amount": 48.0}))
    assert s.tool_name_match and not s.args_schema_match and not s.args_exact_match
    assert any(m.startswith("amount:") for m in s.mismatches) and s.invalid_reason is None

    s = score_case(call_case(), calling("issue_refund", {**REFUND["arguments"], "note": "extra"}))
    assert not s.args_schema_match and any("note: unexpected argument" in m for m in s.mismatches)

    two = assistant_message(None, [REFUND, REFUND])
    s = score_case(call_case(), two)
    assert s.tool_name_match and not s.args_schema_match  # one call expected


def test_unparseable_and_invalid_predictions():
    s = score_case(call_case(), {"role": "assistant", "content": "<tool_call>{oops", "tool_calls": [],
                                 "parse_error": "invalid JSON"})
    assert s.invalid_reason == "unparseable" and s.predicted_label == UNPARSEABLE and not s.action_match
    s = score_case(call_case(), calling(None, {}))
    assert s.invalid_reason == "unparseable"
    s = score_case(call_case(), calling("refund_everything", {}))
    assert s.invalid_reason == "unknown_tool" and s.predicted_label == UNKNOWN_TOOL
    s = score_case(call_case(), {"role": "assistant", "tool_calls": [
        {"function": {"name": "issue_refund", "arguments": "{not json"}}]})
    assert s.invalid_reason == "schema_invalid" and not s.args_schema_match
    s = score_case(call_case(), assistant_message("Sure, I'll refund that."))
    assert s.predicted_label == FINAL and s.invalid_reason is None and not s.tool_name_match


def test_invalid_call_rate_counts_each_reason_over_all_predictions():
    predictions = [
        calling("issue_refund", REFUND["arguments"]),  # valid
        calling("nope", {}),  # unknown tool
        calling("issue_refund", {"order_id": "ORD-123456"}),  # missing required arguments
        {"role": "assistant", "content": "garbage", "tool_calls": [], "parse_error": "no JSON"},
        assistant_message("A text answer is not an invalid call."),
    ]
    overall = summarize([score_case(call_case(case_id=str(i)), p) for i, p in enumerate(predictions)])["overall"]
    assert overall["invalid_call_rate"] == pytest.approx(3 / 5)
    assert overall["unknown_tool_rate"] == overall["schema_invalid_rate"] == overall["unparseable_rate"] == 0.2
    assert overall["tool_name_accuracy"] == pytest.approx(2 / 5)
    assert overall["args_schema_accuracy"] == pytest.approx(1 / 5)


def test_placeholder_arguments_are_not_schema_violations():
    expected = {**REFUND, "arguments": {**REFUND["arguments"], "order_id": "<ORDER_1>"}}
    s = score_case(call_case(expected), calling("issue_refund", expected["arguments"]))
    assert s.invalid_reason is None and s.args_exact_match


# -- final answers ----------------------------------------------------------------------------


def test_answer_normalisation_and_exact_match():
    assert answer_tokens("The refund of $16.00 is DONE!") == ["refund", "of", "16", "is", "done"]
    assert answer_exact("I've refunded $16.50 for order ORD-123456.", "i've refunded 16.5 for order ord-123456")
    assert not answer_exact("Order ORD-1 ships to <STREET_ADDRESS_1>.", "Order ORD-1 ships to <STREET_ADDRESS_2>.")
    assert not answer_exact("Your order is cancelled.", "Your order is not cancelled.")


def test_answer_f1_is_token_overlap():
    expected, predicted = "Your order ORD-1 is in transit.", "Order ORD-1 is in transit with UPS"
    # 5 shared tokens; precision 5/7, recall 5/6
    assert answer_f1(expected, predicted) == pytest.approx(2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6))
    assert answer_f1(expected, expected) == 1.0 and answer_f1(expected, "nothing alike") == 0.0


def test_final_answer_cases_score_text_and_penalise_calls():
    case = answer_case("Your order ORD-123456 is in transit with UPS.")
    s = score_case(case, assistant_message("your order ORD-123456 is in transit with ups"))
    assert s.answer_kind_match and s.answer_exact_match and s.answer_f1 == 1.0 and s.action_match
    assert s.tool_name_match is None  # not a tool-call case
    s = score_case(case, calling("search_kb", {"query": "ups"}))
    assert not s.answer_kind_match and s.answer_f1 == 0.0 and not s.action_match
    s = score_case(case, assistant_message("   "))
    assert not s.answer_kind_match


def test_metrics_per_task_type_and_confusion():
    scores = [
        score_case(call_case(case_id="r1"), calling("issue_refund", REFUND["arguments"])),
        score_case(call_case(case_id="r2"), calling("search_kb", {"query": "x"})),
        score_case(answer_case("Done.", "refund", "r3"), assistant_message("Done.")),
        score_case(call_case({"name": "search_kb", "arguments": {"query": "x"}}, "kb_question", "k1"),
                   calling("search_kb", {"query": "x"})),
    ]
    summary = summarize(scores)
    refund, kb = summary["by_task_type"]["refund"], summary["by_task_type"]["kb_question"]
    assert refund["n_cases"] == 3 and refund["tool_name_accuracy"] == 0.5 and refund["answer_exact_match"] == 1.0
    assert refund["action_accuracy"] == pytest.approx(2 / 3)
    assert kb["action_accuracy"] == 1.0 and kb["answer_f1"] is None  # no final-answer cases there
    assert summary["overall"]["action_accuracy"] == 0.75 and summary["overall"]["n_tool_call_cases"] == 3
    conf = confusion(scores)
    at = {lab: i for i, lab in enumerate(conf["labels"])}
    assert conf["counts"][at["issue_refund"]][at["search_kb"]] == 1
    assert conf["counts"][at["issue_refund"]][at["issue_refund"]] == 1
    assert conf["counts"][at[FINAL]][at[FINAL]] == 1


# -- policies and the sandbox -------------------------------------------------------------------


def spec_of(task_type: str, seed: int = 0):
    rng = Random(seed)
    while True:
        spec = sample_task(rng, 5, TaskMix(), env_seed=rng.randrange(1000))
        if spec["task_type"] == task_type:
            return spec


def test_model_policy_turns_parsed_output_into_assistant_messages():
    def generate(messages, tools, seed):
        if seed == 1:
            return "<tool_call>{", {"content": None, "tool_calls": [], "parse_error": "bad JSON"}
        return '{"name": ...}', {"content": None, "tool_calls": [{"name": "search_kb", "arguments": '{"query": "x"}'}]}

    prior = [{"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "function": {"name": "a"}}]}]
    message = ModelPolicy(generate).act(prior, TOOLS, 0)
    assert message["tool_calls"] == [
        {"id": "call_2", "type": "function", "function": {"name": "search_kb", "arguments": {"query": "x"}}}]
    broken = ModelPolicy(generate).act([], TOOLS, 1)
    assert broken["parse_error"] == "bad JSON" and broken["tool_calls"] == [] and broken["content"] == "<tool_call>{"


def test_an_unclosed_tool_call_makes_the_turn_invalid():
    """The training package's parser lists unreadable calls under `parse_errors`: one such call
    makes the whole turn unparseable, and the case counts in invalid_call_rate."""
    from pipeline.core.training.chat_template import parse_assistant_output

    raw = '<tool_call>{"name": "issue_refund", "arguments": {"order_id": "ORD-1"'
    parsed = parse_assistant_output(raw)
    assert parsed["parse_errors"] and not parsed["tool_calls"]
    message = ModelPolicy(lambda m, t, s: (raw, parsed)).act([], TOOLS, 0)
    assert message["parse_error"].startswith("unclosed tool call")
    score = score_case(call_case(), message)
    assert score.invalid_reason == "unparseable" and not score.action_match
    assert summarize([score])["overall"]["invalid_call_rate"] == 1.0
    # a readable call next to an unreadable one: still an invalid turn
    both = parse_assistant_output('<tool_call>{"name": "search_kb", "arguments": {}}</tool_call><tool_call>{')
    assert both["tool_calls"] and ModelPolicy(lambda m, t, s: ("x", both)).act([], TOOLS, 0).get("parse_error")


def test_lockstep_trials_give_the_same_transcripts_as_one_at_a_time():
    """Trials run together (one batched call per round) are the trials run alone."""
    from pipeline.evaluation.sandbox import run_trial, run_trials

    class Batched:
        def __init__(self, spec):
            self.inner, self.calls = ScriptedPolicy(spec, silent_wrong=0.5), 0

        def act(self, messages, tools, seed):
            return self.inner.act(messages, tools, seed)

        def act_many(self, conversations, seed):
            self.calls += 1
            return [self.inner.act(m, t, seed) for m, t in conversations]

    spec = spec_of("refund", 3)
    policy = Batched(spec)
    together = run_trials([("t", spec, seed) for seed in range(4)], policy, max_turns=8)
    alone = [run_trial(spec, ScriptedPolicy(spec, silent_wrong=0.5), seed, max_turns=8, tid="t") for seed in range(4)]
    assert [t.to_dict() for t in together] == [t.to_dict() for t in alone]
    rounds = max(t.turns for t in together)
    assert rounds < policy.calls <= 4 * rounds  # one call per seed and round: this policy uses its seed
    greedy = Batched(spec)
    greedy.greedy = True  # a policy that ignores seeds gets one call per round
    run_trials([("t", spec, seed) for seed in range(4)], greedy, max_turns=8)
    assert greedy.calls == rounds


def test_user_answers_requests_for_facts_only():
    assert requested_facts("Could you tell me the email address on your account and the order number?") == [
        "email", "order_id"]
    assert requested_facts("Please share your e-mail.") == ["email"]
    assert requested_facts("I've refunded $16.00 for order ORD-123456 (refund R-0001).") == []


@pytest.mark.parametrize("task_type", sorted(TASK_TYPES))
def test_perfect_policy_succeeds_in_the_sandbox(task_type):
    spec = spec_of(task_type)
    trial = run_trial(spec, ScriptedPolicy(spec), seed=0)
    assert trial.success, trial.failed_checks
    assert trial.termination == "answered" and trial.messages[-1]["role"] == "assistant"
    assert trial.messages[1]["role"] == "user" and trial.n_failed_tool_calls == 0


class WrongRefundAmount:
    """The scripted agent, except that it refunds one dollar less than it should."""

    def __init__(self, spec):
        self.inner = ScriptedPolicy(spec)

    def act(self, messages, tools, seed):
        message = self.inner.act(messages, tools, seed)
        for call in message["tool_calls"]:
            if call["function"]["name"] == "issue_refund":
                call["function"]["arguments"]["amount"] = round(call["function"]["arguments"]["amount"] - 1, 2)
        return message


def test_wrong_refund_amount_fails_on_the_final_state():
    spec = spec_of("refund")
    trial = run_trial(spec, WrongRefundAmount(spec), seed=0)
    assert not trial.success and trial.termination == "answered"
    assert [c["op"] for c in trial.failed_checks] == ["record_exists"]
    result = evaluate_sandbox([spec], WrongRefundAmount, k=2)
    assert result["overall"]["pass_at_1"] == 0.0 and result["overall"]["pass_hat_k"] == 0.0


def test_flaky_policy_has_lower_pass_hat_k_than_pass_at_1():
    specs = [spec_of("refund", seed) for seed in range(6)]
    perfect = evaluate_sandbox(specs, scripted_factory(0.0), k=4)
    assert perfect["overall"]["pass_hat_k"] == perfect["overall"]["pass_at_1"] == 1.0
    flaky = evaluate_sandbox(specs, scripted_factory(0.5), k=4)
    overall = flaky["overall"]
    assert 0 < overall["pass_hat_k"] < overall["pass_at_1"] < 1
    assert overall["pass_hat"]["1"] == pytest.approx(overall["pass_at_1"])
    assert overall["pass_hat"]["4"] == pytest.approx(overall["pass_hat_k"])
    assert flaky["by_task_type"]["refund"]["n_trials"] == 24 and len(flaky["trials"]) == 24
    assert json.loads(json.dumps(flaky)) == flaky  # plain data


def test_sandbox_ends_on_parse_errors_and_turn_limits():
    spec = spec_of("cancellation")

    class Broken:
        def act(self, messages, tools, seed):
            return {"role": "assistant", "content": "<tool_call>", "tool_calls": [], "parse_error": "bad"}

    class Looping:
        def act(self, messages, tools, seed):
            call = {"name": "lookup_order", "arguments": {"order_id": "ORD-000000"}}
            return assistant_message(None, [call], messages)

    broken = run_trial(spec, Broken(), seed=0)
    assert (broken.success, broken.termination, broken.turns) == (False, "parse_error", 1)
    looping = run_trial(spec, Looping(), seed=0, max_turns=5)
    assert (looping.success, looping.termination, looping.turns) == (False, "max_turns", 5)
    assert looping.n_failed_tool_calls == 5 and "not found" in looping.messages[-1]["content"]


# -- promotion -------------------------------------------------------------------------------


def result(metric="action_accuracy", **by_type):
    """A model result with per-case outcomes: by_type = {task_type: (right, total)}."""
    outcomes, units = {}, {}
    for task_type, (right, total) in by_type.items():
        for i in range(total):
            unit = f"{task_type}-{i}"
            outcomes[unit], units[unit] = i < right, task_type
    rate = sum(outcomes.values()) / len(outcomes)
    return {"overall": {metric: rate}, "outcomes": {metric: outcomes}, "units": units}


def test_promotes_when_the_lower_bound_of_the_paired_gain_clears_the_margin():
    # 45/60 vs 15/60 on the same cases: +0.50, far outside the noise
    challenger = result(refund=(25, 30), order_status=(20, 30))
    incumbent = result(refund=(10, 30), order_status=(5, 30))
    d = decide_promotion(challenger, incumbent, "champion", margin=0.1, tolerance=0.05, min_segment_units=10)
    assert d.promote and d.reasons[0].startswith("promote")
    assert d.deltas["primary"]["improvement"] == pytest.approx(0.5)
    assert d.deltas["primary"]["low"] > 0.1
    assert d.deltas["primary"]["paired"]["only_challenger"] == 30 and d.deltas["primary"]["paired"]["n"] == 60
    assert "[+0." in d.reasons[1] and "McNemar p" in d.reasons[1]


def test_refuses_a_point_gain_whose_interval_includes_zero():
    # 33/60 vs 30/60: the point estimate wins by 5 points, the 95 % interval does not exclude 0
    challenger = result(refund=(17, 30), order_status=(16, 30))
    incumbent = result(refund=(15, 30), order_status=(15, 30))
    d = decide_promotion(challenger, incumbent, "champion", margin=0.0, tolerance=0.1)
    assert d.deltas["primary"]["improvement"] == pytest.approx(0.05)
    assert d.deltas["primary"]["low"] < 0 and not d.promote
    assert d.reasons[0] == ("keep the champion: its gain on action_accuracy over the champion is not established "
                            "at 95%")
    assert "required: lower bound above 0.000: not met" in d.reasons[1]


def test_refuses_an_established_task_type_regression_beyond_tolerance():
    challenger = result(refund=(2, 30), order_status=(30, 30), cancellation=(30, 30))
    incumbent = result(refund=(25, 30), order_status=(2, 30), cancellation=(2, 30))
    d = decide_promotion(challenger, incumbent, "champion", margin=0.0, tolerance=0.1)
    assert d.deltas["primary"]["low"] > 0  # the overall gain alone would promote
    assert not d.promote and "it regresses on refund" in d.reasons[0] and "order_status" not in d.reasons[0]
    assert any(r.startswith("task type refund regressed beyond the tolerance 0.100") for r in d.reasons)


def test_a_regression_on_too_few_cases_is_reported_not_decisive():
    challenger = result(refund=(0, 4), order_status=(30, 30))
    incumbent = result(refund=(4, 4), order_status=(0, 30))
    d = decide_promotion(challenger, incumbent, "base", min_segment_units=10)
    assert d.promote and "too few cases to judge a regression: refund (n = 4)" in d.reasons


def test_a_tie_never_replaces_the_incumbent_even_with_no_margin():
    d = decide_promotion(result(refund=(0, 20)), result(refund=(0, 20)), "base")
    assert not d.promote and d.deltas["primary"]["improvement"] == 0.0


def test_without_a_champion_the_base_model_is_the_incumbent():
    base, challenger = result(refund=(5, 40)), result(refund=(35, 40))
    incumbent, name = incumbent_for(None, base)
    assert incumbent is base and name == "base"
    d = decide_promotion(challenger, incumbent, name, margin=0.05, tolerance=0.05)
    assert d.promote and "beats the base" in d.reasons[0] and d.deltas["incumbent"] == "base"
    assert incumbent_for(result(refund=(1, 2)), base)[1] == "champion"


def test_only_units_both_models_were_judged_on_are_compared():
    challenger = result(refund=(30, 30))
    incumbent = result(refund=(0, 20))  # the first 20 cases only
    d = decide_promotion(challenger, incumbent, "base")
    assert d.deltas["primary"]["paired"]["n"] == 20 and d.deltas["primary"]["unpaired"] == 10
    assert any("10 units judged for only one of the two models" in r for r in d.reasons)


def test_lower_is_better_metrics_are_compared_the_right_way_round():
    worse = result("invalid_call_rate", refund=(30, 60))
    better = result("invalid_call_rate", refund=(3, 60))
    d = decide_promotion(better, worse, "base", "invalid_call_rate", 0.1, 0.0, "invalid_call_rate")
    assert d.promote and d.deltas["primary"]["improvement"] == pytest.approx(0.45)
    assert not decide_promotion(worse, better, "base", "invalid_call_rate", 0.1, 0.0, "invalid_call_rate").promote


# -- report ----------------------------------------------------------------------------------


def test_html_report_embeds_charts_and_names_every_model(tmp_path):
    cases = [call_case(case_id="r1"), call_case(case_id="r2"), answer_case("Done.", "refund", "r3")]
    specs = [spec_of("refund", 0), spec_of("refund", 1)]
    models = {}
    for name, args, wrong in (("base", {"query": "x"}, 0.9), ("champion", REFUND["arguments"], 0.5),
                              ("challenger", REFUND["arguments"], 0.0)):
        tool = "search_kb" if name == "base" else "issue_refund"
        scores = [
            score_case(c, calling(tool, args) if c["expected_kind"] == "tool_call" else assistant_message("Done."))
            for c in cases
        ]
        sandbox = evaluate_sandbox(specs, scripted_factory(wrong), k=2)
        models[name] = model_result(name, scores, sandbox, cases)
    decision = decide_promotion(models["challenger"], models["champion"], "champion", "action_accuracy", 0.0, 0.1,
                                "pass_hat_k", min_segment_units=1)
    results = combine(models, decision, {"eval set": "unit"})
    assert results["headline"]["challenger"]["action_accuracy"] == 1.0
    assert results["headline"]["base"]["tool_name_accuracy"] == 0.0

    path = write_report(results, tmp_path / "report")
    page = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    for name in ("base", "champion", "challenger"):
        assert f"<th class=\"l\">{name}</th>" in page and f"<h3>{name}</h3>" in page
    assert "called search_kb instead of issue_refund" in page  # an example with expected vs predicted
    assert "sandbox · refund" in page and "PROMOTE" in page
    # every rate with its n and 95 % interval, and the paired comparison behind the decision
    assert "3/3 = 1.00<br><small>[0.44, 1.00]</small>" in page  # the challenger's action accuracy
    assert "95 % paired interval" in page and "McNemar p" in page
    assert results["models"]["challenger"]["intervals"]["overall"]["action_accuracy"]["n"] == 3
    assert json.loads((tmp_path / "report" / "results.json").read_text())["model_order"] == list(models)


def test_case_subset_is_stable_as_the_release_grows_and_tasks_cover_the_types():
    from pipeline.evaluation.cases import case_subset, spread_tasks

    cases = [{"case_id": f"c{i}"} for i in range(100)]
    grown = cases + [{"case_id": f"new{i}"} for i in range(20)]
    first, later = case_subset(cases, 60), case_subset(grown, 60)
    assert len(first) == 60 and case_subset(cases, 0) == case_subset(list(reversed(cases)), 0)
    assert len({c["case_id"] for c in first} & {c["case_id"] for c in later}) >= 45  # mostly the same cases
    specs = {f"{t}:{i}": {"task_type": t} for t in ("refund", "order_status", "kb_question") for i in range(5)}
    assert {s["task_type"] for s in spread_tasks(specs, 3).values()} == {"refund", "order_status", "kb_question"}
    assert len(spread_tasks(specs, 100)) == 15
