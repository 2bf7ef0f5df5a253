"""The simulator: deterministic, skewed and drifting traffic, success judged on the final
environment state, and ground truth that matches what is really in the landing files."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date
from pathlib import Path
from random import Random

import pytest

from pipeline.core.formats import Parsed, Quarantined, detect_format, parse_file
from pipeline.shell.ingest import DETECTION_HEAD_BYTES
from pipeline.simulator import SimulationSummary, simulate
from pipeline.simulator.agent import AgentProfile, run_episode
from pipeline.simulator.env import SupportEnv, luhn_valid
from pipeline.simulator.tasks import TASK_TYPES, TaskMix, check_success, failed_checks, replay, sample_task
from pipeline.simulator.tools import TOOLS
from pipeline.simulator.traffic import simulate_day
from pipeline.simulator.user import user_facts

DAYS, PER_DAY, START = 4, 120, date(2026, 11, 16)


def _spec(task_type: str, day: int = 5, seed: int = 0):
    """The first task of `task_type` drawn from a fixed stream."""
    rng = Random(seed)
    while True:
        spec = sample_task(rng, day, TaskMix(), env_seed=rng.randrange(1000))
        if spec["task_type"] == task_type:
            return spec


# -- environment and tools -------------------------------------------------------------------


def test_env_is_rebuilt_identically_from_its_seed():
    a, b = SupportEnv.from_seed(11).state(), SupportEnv.from_seed(11).state()
    assert a == b and json.loads(json.dumps(a)) == a
    assert a != SupportEnv.from_seed(12).state()
    assert len(a["customers"]) == 6 and all(luhn_valid(c["card_number"]) for c in a["customers"].values())


BAD_VALUES = {"string": 12345, "number": "12.50", "integer": 2.5}
# Schema-valid arguments naming ids that do not exist (search_kb has no ids).
SHAPES = {
    "lookup_customer": {"email": "nobody@example.com"},
    "lookup_order": {"order_id": "ORD-000000"},
    "track_shipment": {"tracking_number": "1ZNOTATRACKINGNO"},
    "search_kb": {"query": "kettle"},
    "get_article": {"article_id": "KB-99"},
    "issue_refund": {"order_id": "ORD-000000", "amount": 1.0, "reason": "damaged"},
    "change_address": {"order_id": "ORD-000000", "new_address": "1 Main Street, Austin, TX 78701"},
    "cancel_order": {"order_id": "ORD-000000", "reason": "changed my mind"},
    "escalate_to_human": {"customer_id": "C-00000", "category": "other", "summary": "needs a human"},
    "request_account_deletion": {"customer_id": "C-00000"},
    "pause_subscription": {"subscription_id": "S-0000", "weeks": 2},
}


def _bad_calls(name: str):
    """Malformed, mistyped, incomplete and unknown-id arguments for one tool."""
    params, shape = TOOLS[name].parameters, SHAPES[name]
    yield from (None, "oops", ["order_id"], {"no_such_argument": 1}, {**shape, "no_such_argument": 1})
    for prop, schema in params["properties"].items():
        yield {**shape, prop: BAD_VALUES[schema["type"]]}
    for prop in params["required"]:
        yield {k: v for k, v in shape.items() if k != prop}
    if name != "search_kb":
        yield shape


def test_bad_call_shapes_cover_every_tool():
    assert set(SHAPES) == set(TOOLS)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_tool_answers_bad_arguments_with_an_error_result(name):
    env = SupportEnv.from_seed(3)
    before = env.state()
    calls = list(_bad_calls(name))
    for args in calls:
        result = env.execute(name, args)
        assert result.ok is False and result.error, (name, args, result)
    after = env.state()
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    assert len(after["audit"]) == len(calls) and not any(a["ok"] for a in after["audit"])


def test_state_rules_are_errors_too():
    env = SupportEnv.from_seed(3)
    orders = env.state()["orders"].values()
    delivered = next(o for o in orders if o["status"] == "delivered")
    shipped = next(o for o in orders if o["status"] == "shipped")
    too_much = {"order_id": delivered["order_id"], "amount": delivered["total"] + 0.01, "reason": "damaged"}
    assert env.execute("issue_refund", too_much).error.startswith("amount ")
    not_delivered = {"order_id": shipped["order_id"], "amount": 1.0, "reason": "damaged"}
    assert "only delivered orders" in env.execute("issue_refund", not_delivered).error
    assert "cannot cancel" in env.execute("cancel_order", {"order_id": shipped["order_id"], "reason": "x1"}).error
    assert env.execute("issue_refund", {**too_much, "amount": float("nan")}).error == (
        "invalid arguments: argument 'amount' must be finite")


def test_unknown_and_undeployed_tools_are_errors():
    env = SupportEnv.from_seed(3, tool_names=("lookup_order",))
    assert env.execute("drop_tables", {}).error == "unknown tool: drop_tables"
    assert env.execute("pause_subscription", {"subscription_id": "S-1000", "weeks": 2}).ok is False
    assert env.execute(["lookup_order"], {(1, 2): object(), "order_id": {1, 2}}).ok is False
    assert (env.execute("lookup_order", {"order_id": {1, 2}}).error
            == "invalid arguments: argument 'order_id' must be a string")
    assert json.loads(json.dumps(env.state()))["audit"][-1]["arguments"]["order_id"] == "{1, 2}"


# -- tasks: mix, drift, success on the final state ----------------------------------------------


def test_task_mix_is_skewed_and_drift_type_appears_only_from_its_day():
    mix = TaskMix(drift_day=3)
    per_day = {d: Counter(r.trajectory.task_type for r in simulate_day(1, d, START, 300, mix, AgentProfile()))
               for d in (1, 2, 3, 4)}
    assert per_day[1]["subscription_pause"] == per_day[2]["subscription_pause"] == 0
    assert per_day[3]["subscription_pause"] > 10 and per_day[4]["subscription_pause"] > 10
    total = sum(per_day.values(), Counter())
    ranked = [name for name, _ in total.most_common()]
    assert ranked[0] == "order_status" and total["order_status"] > 0.3 * 1200
    assert set(ranked[-2:]) == {"fraud_report", "account_deletion"}
    assert 0 < total["fraud_report"] < 0.05 * 1200 and 0 < total["account_deletion"] < 0.05 * 1200
    assert set(total) == set(TASK_TYPES)


def test_drift_tool_is_deployed_with_the_drift_task():
    mix = TaskMix(drift_day=3)
    assert "pause_subscription" not in mix.tools_on(2)
    assert mix.tools_on(3)[-1] == "pause_subscription"
    assert "pause_subscription" in TaskMix(drift_day=1).tools_on(1)
    assert "subscription_pause" not in dict(TaskMix(drift_day=5).active(4))
    assert "subscription_pause" in dict(TaskMix(drift_day=5).active(5))


@pytest.mark.parametrize("task_type", sorted(TASK_TYPES))
def test_flawless_scripted_agent_succeeds_on_every_task_type(task_type):
    spec = _spec(task_type)
    episode = run_episode(spec, AgentProfile.flawless(), Random(1))
    assert episode.outcome.success is True, failed_checks(spec, episode.final_state)
    assert (episode.outcome.termination, episode.outcome.verified_by, episode.outcome.reward) == (
        "completed", "environment", 1.0)
    assert failed_checks(spec, replay(spec).state())  # doing nothing never passes


def _refund_run(amount_delta: float):
    spec = _spec("refund")
    env = replay(spec)
    email = user_facts(spec)["email"]
    assert env.execute("lookup_customer", {"email": email}).ok
    amount = spec["params"]["amount"] + amount_delta
    refund = {"order_id": spec["params"]["order_id"], "amount": amount, "reason": "damaged"}
    assert env.execute("issue_refund", refund).ok
    return spec, env.state()


def test_refund_succeeds_only_with_the_right_amount():
    spec, state = _refund_run(0.0)
    assert check_success(spec, state) is True
    spec, state = _refund_run(-1.0)  # accepted by the shop, wrong for the task
    assert check_success(spec, state) is False
    assert [c["op"] for c in failed_checks(spec, state)] == ["record_exists"]


def test_address_change_on_the_right_order_only():
    spec = _spec("address_change")
    facts = user_facts(spec)
    order_id = spec["params"]["order_id"]

    def run(order_ids):
        env = replay(spec)
        env.execute("lookup_customer", {"email": facts["email"]})
        for oid in order_ids:
            assert env.execute("change_address", {"order_id": oid, "new_address": facts["new_address"]}).ok
        return check_success(spec, env.state())

    other = next(o["order_id"] for o in replay(spec).state()["orders"].values()
                 if o["status"] == "processing" and o["order_id"] != order_id)
    assert run([order_id]) is True
    assert run([order_id, other]) is False  # changed another order too
    assert run([other]) is False


def test_skipped_verification_fails_the_task():
    spec = _spec("cancellation")
    env = replay(spec)
    assert env.execute("cancel_order", {"order_id": spec["params"]["order_id"], "reason": "no longer needed"}).ok
    assert [c["tool"] for c in failed_checks(spec, env.state())] == ["lookup_customer"]


def test_task_specs_are_json_and_carry_no_personal_data():
    spec = _spec("address_change")
    text = json.dumps(spec)
    facts = user_facts(spec)
    assert json.loads(text) == spec
    assert not [k for k in ("name", "email", "phone", "address", "new_address", "card") if facts[k] in text]


# -- a simulated run: landing files and ground truth ------------------------------------------

LANE_FORMATS = {"canonical": "canonical", "openai": "openai_chat", "openai-wrapped": "openai_chat",
                "otel": "otel_genai", "react": "react_text"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimulationSummary:
    return simulate(DAYS, PER_DAY, tmp_path_factory.mktemp("sim"), seed=3, start_date=START)


def _days(run: SimulationSummary):
    for day in run.days:
        yield run.out_dir / "landing" / day.date, run.out_dir / "ground_truth" / day.date


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def parsed(run):
    """(day, file) → parse_file results, with the manifest entry."""
    out = {}
    for landing, truth in _days(run):
        manifest = json.loads((truth / "manifest.json").read_text())
        for name, info in manifest["files"].items():
            data = (landing / name).read_bytes()
            out[landing.name, name] = info, list(parse_file(data, fmt=info["format"], source_uri=name, raw_commit=None))
    return out


def _trajectories(parsed) -> dict[str, list]:
    by_id = defaultdict(list)
    for _, results in parsed.values():
        for r in results:
            if isinstance(r, Parsed):
                by_id[r.trajectory.trajectory_id].append(r.trajectory)
    return by_id


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_byte_identical_output(tmp_path):
    a = simulate(2, 40, tmp_path / "a", seed=5)
    b = simulate(2, 40, tmp_path / "b", seed=5)
    simulate(2, 40, tmp_path / "c", seed=6)
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(files_a) >= 2 * 10 and files_a == files_b
    assert a.days == b.days
    assert _files(tmp_path / "c") != files_a


def test_landing_and_ground_truth_layout(run):
    assert [d.date for d in run.days] == ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"]
    for (landing, truth), day in zip(_days(run), run.days):
        assert sorted(p.name for p in truth.iterdir()) == [
            "duplicates.jsonl", "manifest.json", "mess.jsonl", "outcomes.jsonl", "pii.jsonl"]
        manifest = json.loads((truth / "manifest.json").read_text())
        assert sorted(p.name for p in landing.iterdir()) == sorted(manifest["files"]) == sorted(day.files)
        assert set(manifest["formats"]) == set(LANE_FORMATS)
        for name, info in manifest["files"].items():
            assert name.startswith(info["lane"] + "-") and info["format"] == LANE_FORMATS[info["lane"]]
            assert name.endswith(".txt" if info["format"] == "react_text" else ".jsonl")
        assert day.files == {n: f["records"] for n, f in manifest["files"].items()}
        assert sum(day.records_by_format.values()) == sum(day.files.values())
        assert day.trajectories == len(_rows(truth / "outcomes.jsonl")) >= PER_DAY


def test_files_are_detected_as_their_format(run):
    for landing, truth in _days(run):
        for name, info in json.loads((truth / "manifest.json").read_text())["files"].items():
            head = (landing / name).read_bytes()[:DETECTION_HEAD_BYTES]
            assert detect_format(name, head) == info["format"], name


def _line(result) -> int:
    return result.line if isinstance(result, Quarantined) else result.trajectory.provenance.line


def test_every_planted_defect_is_quarantined_with_its_reason(run, parsed):
    planted = Counter()
    for landing, truth in _days(run):
        for m in _rows(truth / "mess.jsonl"):
            planted[m["defect"]] += 1
            info, results = parsed[landing.name, m["file"]]
            at_line = [r for r in results if _line(r) == m["line"]]
            if m["defect"] == "blank_line":
                assert at_line == [] and (landing / m["file"]).read_bytes().splitlines()[m["line"] - 1].strip() == b""
            elif m["expected_reason"] is None:
                assert len(at_line) == 1 and isinstance(at_line[0], Parsed), m
            else:
                assert [(type(r).__name__, r.reason) for r in at_line] == [("Quarantined", m["expected_reason"])], m
    assert {"truncated", "invalid_utf8", "wrong_type", "unknown_field", "blank_line"} <= set(planted)


def test_parsed_plus_quarantined_equals_records_written(parsed):
    for (day, name), (info, results) in parsed.items():
        quarantined = sum(isinstance(r, Quarantined) for r in results)
        assert (len(results), quarantined) == (info["records"], info["quarantined"]), (day, name)


def test_unknown_fields_are_kept_in_extra(run, parsed):
    seen = 0
    for landing, truth in _days(run):
        for m in _rows(truth / "mess.jsonl"):
            if m["defect"] == "unknown_field":
                [t] = [r.trajectory for r in parsed[landing.name, m["file"]][1]
                       if isinstance(r, Parsed) and r.trajectory.provenance.line == m["line"]]
                assert {"x_client", "app.client_version"} & set(t.extra), t.extra
                seen += 1
    assert seen > 0


def _field_texts(step, field):
    if field == "arguments":
        return [json.dumps(c.arguments, ensure_ascii=False) for c in step.tool_calls]
    assert (step.role == "tool") == (field == "tool_result")
    return [step.content or ""]


def test_planted_pii_occurs_verbatim_where_ground_truth_says(run, parsed):
    by_id = _trajectories(parsed)
    kinds = Counter()
    for _, truth in _days(run):
        for row in _rows(truth / "pii.jsonl"):
            for t in by_id[row["trajectory_id"]]:
                assert any(row["value"] in text for text in _field_texts(t.steps[row["step"]], row["field"])), row
            kinds[row["entity_type"]] += 1
    assert {"PERSON", "EMAIL", "PHONE", "STREET_ADDRESS", "CREDIT_CARD", "IBAN"} <= set(kinds)
    assert set(kinds) <= {"EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "NATIONAL_ID", "IP_ADDRESS", "STREET_ADDRESS",
                          "PERSON", "API_KEY", "TOKEN", "PASSWORD"}
    assert {"API_KEY", "TOKEN", "PASSWORD"} & set(kinds)


def test_pii_ground_truth_is_complete_and_nothing_leaks_elsewhere(run, parsed):
    by_id = _trajectories(parsed)
    for _, truth in _days(run):
        rows = _rows(truth / "pii.jsonl")
        values = defaultdict(set)
        listed = defaultdict(set)
        for row in rows:
            values[row["trajectory_id"]].add(row["value"])
            listed[row["trajectory_id"]].add((row["step"], row["field"], row["value"]))
        for tid, vals in values.items():
            t = by_id[tid][0]
            found = {(s.index, f, v) for s in t.steps for f in ("content", "tool_result", "arguments")
                     if (s.role == "tool") == (f == "tool_result") or f == "arguments"
                     for v in vals if any(v in text for text in _field_texts(s, f))}
            assert found == listed[tid]
            hidden = json.dumps([t.goal, t.task_spec, [s.reasoning for s in t.steps]])
            assert not [v for v in vals if v in hidden]


def _luhn(number: str) -> bool:
    """Luhn, written out independently of the simulator's."""
    digits = [int(ch) for ch in number if ch.isdigit()]
    doubled = [d * 2 - 9 if d * 2 > 9 else d * 2 for d in digits[-2::-2]]
    return len(digits) == 16 and (sum(digits[-1::-2]) + sum(doubled)) % 10 == 0


def test_card_numbers_and_ibans_are_valid(run):
    rows = [r for _, truth in _days(run) for r in _rows(truth / "pii.jsonl")]
    cards = [r["value"] for r in rows if r["entity_type"] == "CREDIT_CARD"]
    assert cards and all(_luhn(c) and luhn_valid(c) for c in cards)
    assert _luhn("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    ibans = {r["value"].replace(" ", "") for r in rows if r["entity_type"] == "IBAN"}
    assert ibans and all(int("".join(str(int(ch, 36)) for ch in i[4:] + i[:4])) % 97 == 1 for i in ibans)


def test_outcomes_match_the_landed_records(run, parsed):
    by_id = _trajectories(parsed)
    outcomes = [row for _, truth in _days(run) for row in _rows(truth / "outcomes.jsonl")]
    assert {row["trajectory_id"] for row in outcomes} == set(by_id)
    for row in outcomes:
        for t in by_id[row["trajectory_id"]]:
            assert (t.outcome.success, t.task_type) == (row["success"], row["task_type"])
            assert t.outcome.verified_by == "environment"
    success = Counter(row["success"] for row in outcomes)
    assert 0.6 < success[True] / len(outcomes) < 0.95
    assert {"completed", "escalated", "error", "user_abandoned"} <= {row["termination"] for row in outcomes}


def test_duplicates_ground_truth(run, parsed):
    by_id = _trajectories(parsed)
    kinds = Counter()
    for landing, truth in _days(run):
        for row in _rows(truth / "duplicates.jsonl"):
            kinds[row["kind"]] += 1
            [here] = [r.trajectory for r in parsed[landing.name, row["file"]][1]
                      if isinstance(r, Parsed) and r.trajectory.provenance.line == row["line"]]
            assert here.trajectory_id == row["trajectory_id"]
            original = by_id[row["duplicate_of"]][0]
            if row["kind"] == "exact":
                assert len(by_id[row["trajectory_id"]]) >= 2
                assert replace(here, provenance=original.provenance) == original
            else:
                assert here.trajectory_id != original.trajectory_id and here.task_spec == original.task_spec
                assert here.steps[1].content != original.steps[1].content
                assert _said(here.steps[2:]) == _said(original.steps[2:])  # formats may differ: compare what was said
    assert kinds["exact"] > 0 and kinds["near"] > 0


def _said(steps):
    return [(s.role, s.content, s.error, [(c.name, c.arguments) for c in s.tool_calls]) for s in steps]


def test_feedback_is_noisy_and_consent_mixed(parsed):
    trajectories = [ts[0] for ts in _trajectories(parsed).values()]
    silent = sum(not t.feedback for t in trajectories)
    assert 0.4 < silent / len(trajectories) < 0.8
    ratings = defaultdict(list)
    for t in trajectories:
        ratings[t.outcome.success] += [f.value for f in t.feedback if f.name == "rating"]
    assert sum(ratings[True]) / len(ratings[True]) > sum(ratings[False]) / len(ratings[False]) + 1
    names = Counter(f.name for t in trajectories for f in t.feedback)
    assert {"rating", "thumbs", "correction", "escalation", "abandonment"} <= set(names)
    conflicted = [t for t in trajectories if t.outcome.success and any(f.value == "down" for f in t.feedback)]
    assert conflicted
    scopes = Counter((t.consent.may_train, t.consent.scope) for t in trajectories)
    assert scopes[True, "training"] > 0.7 * len(trajectories)
    assert scopes[False, None] > 0 and scopes[False, "evaluation_only"] > 0


def test_drift_tool_and_agent_version_appear_from_the_drift_day(parsed):
    for t in (ts[0] for ts in _trajectories(parsed).values()):
        day = int(t.started_at[8:10]) - START.day + 1
        tools = {s["function"]["name"] for s in t.tools}
        assert ("pause_subscription" in tools) == (day >= 3) == (t.agent_version == "2026.11.1")
        assert t.task_type != "subscription_pause" or day >= 3


def test_steps_look_like_a_real_agent(parsed):
    trajectories = [ts[0] for ts in _trajectories(parsed).values()]
    steps = [s for t in trajectories for s in t.steps]
    assert all(t.steps[0].role == "system" and t.steps[1].role == "user" for t in trajectories)
    calls = [c for s in steps for c in s.tool_calls]
    assert calls and all(c.id.startswith("call_") for c in calls)
    errors = [s.error for s in steps if s.role == "tool" and s.error]
    assert any(e.startswith("timeout") for e in errors) and any(e.startswith("invalid arguments") for e in errors)
    answered = [s for t in trajectories for s in t.steps if s.role == "tool"]
    assert all(s.tool_call_id for s in answered)
