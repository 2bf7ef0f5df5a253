"""Task types, their skewed mix with drift, and success checking on the final state.

A `TaskSpec` is plain JSON: which shop (env seed), which user (user seed), what they want,
and the success checks as data. That is all a sandbox needs to evaluate a model later:
`replay(spec)` rebuilds the start state, the model acts through `env.execute`, and
`check_success(spec, env.state())` judges the end state, not the transcript. Specs hold
ids only, never personal data; checks refer to what the user typed as `{"user_fact": k}`.

Check ops:
  called           a successful audit-log call of `tool` whose arguments include `arguments`
  record_exists    a row of list table `table` includes `match`
  field_equals     `table[id][field] == value`
  unchanged_except nothing but the listed tables ("refunds") or rows ("orders/ORD-1") changed
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any, TypedDict

from pipeline.simulator import tools, user
from pipeline.simulator.env import SupportEnv, start_state
from pipeline.simulator.tools import Db

SPEC_VERSION = 1


class TaskSpec(TypedDict):
    spec_version: int
    task_type: str
    template_id: str
    env_seed: int
    user_seed: int
    tools: list[str]
    params: dict[str, Any]
    goal: str
    checks: list[dict[str, Any]]


Built = tuple[dict[str, Any], str, list[dict[str, Any]]]  # params, goal, checks

VERIFIED = {"op": "called", "tool": "lookup_customer", "arguments": {"email": {"user_fact": "email"}}}


def _unchanged_except(*allowed: str) -> dict[str, Any]:
    return {"op": "unchanged_except", "allowed": list(allowed)}


def _pick_customer(db: Db, rng: Random, with_subscription: bool = False) -> dict[str, Any]:
    pool = [c for c in db["customers"].values() if c["subscription_id"] or not with_subscription]
    return rng.choice(pool)


def _pick_order(db: Db, rng: Random, statuses: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A customer and one of their orders in one of `statuses` (every customer has each)."""
    c = _pick_customer(db, rng)
    orders = [o for o in db["orders"].values() if o["customer_id"] == c["customer_id"] and o["status"] in statuses]
    return c, rng.choice(orders)


def _order_status(db: Db, rng: Random) -> Built:
    c, o = _pick_order(db, rng, ("processing", "shipped", "delivered"))
    tn = o["tracking_number"]
    found = (
        {"op": "called", "tool": "track_shipment", "arguments": {"tracking_number": tn}}
        if tn
        else {"op": "called", "tool": "lookup_order", "arguments": {"order_id": o["order_id"]}}
    )
    params = {"customer_id": c["customer_id"], "order_id": o["order_id"], "tracking_number": tn}
    goal = f"Find out where order {o['order_id']} is and when it will arrive."
    return params, goal, [VERIFIED, found, _unchanged_except()]


def _refund(db: Db, rng: Random) -> Built:
    c, o = _pick_order(db, rng, ("delivered",))
    item = rng.choice(o["items"])
    amount = round(item["price"] * item["qty"], 2)
    params = {"customer_id": c["customer_id"], "order_id": o["order_id"], "item": item["name"], "amount": amount}
    checks = [
        VERIFIED,
        {"op": "record_exists", "table": "refunds", "match": {"order_id": o["order_id"], "amount": amount}},
        _unchanged_except("refunds", f"orders/{o['order_id']}"),
    ]
    return params, f"Get a refund of ${amount:.2f} for the damaged {item['name']} in order {o['order_id']}.", checks


def _address_change(db: Db, rng: Random) -> Built:
    c, o = _pick_order(db, rng, ("processing",))
    checks = [
        VERIFIED,
        {"op": "field_equals", "table": "orders", "id": o["order_id"], "field": "shipping_address",
         "value": {"user_fact": "new_address"}},
        _unchanged_except(f"orders/{o['order_id']}"),
    ]
    params = {"customer_id": c["customer_id"], "order_id": o["order_id"]}
    return params, f"Change the shipping address of order {o['order_id']} to the customer's new address.", checks


def _kb_question(db: Db, rng: Random) -> Built:
    article = rng.choice(sorted(db["kb"]))
    a = db["kb"][article]
    # search words for which this article is the top hit, so the question has one right answer
    queries = [
        f"{w1} {w2}"
        for i, w1 in enumerate(a["keywords"])
        for w2 in a["keywords"][i + 1 :]
        if tools.search_kb(db, {"query": f"{w1} {w2}"})["results"][0]["article_id"] == article
    ]
    params = {"customer_id": _pick_customer(db, rng)["customer_id"], "article_id": article,
              "topic": a["title"].lower(), "query": rng.choice(queries)}
    checks = [{"op": "called", "tool": "get_article", "arguments": {"article_id": article}}, _unchanged_except()]
    return params, f"Learn about {a['title'].lower()} from the help centre.", checks


def _cancellation(db: Db, rng: Random) -> Built:
    c, o = _pick_order(db, rng, ("processing",))
    checks = [
        VERIFIED,
        {"op": "field_equals", "table": "orders", "id": o["order_id"], "field": "status", "value": "cancelled"},
        _unchanged_except(f"orders/{o['order_id']}"),
    ]
    params = {"customer_id": c["customer_id"], "order_id": o["order_id"]}
    return params, f"Cancel order {o['order_id']} before it ships.", checks


def _fraud_report(db: Db, rng: Random) -> Built:
    c = _pick_customer(db, rng)
    checks = [
        VERIFIED,
        {"op": "record_exists", "table": "escalations",
         "match": {"customer_id": c["customer_id"], "category": "fraud"}},
        _unchanged_except("escalations"),
    ]
    return {"customer_id": c["customer_id"]}, "Report unauthorised card use and get it to the fraud team.", checks


def _account_deletion(db: Db, rng: Random) -> Built:
    c = _pick_customer(db, rng)
    checks = [
        VERIFIED,
        {"op": "record_exists", "table": "deletion_requests", "match": {"customer_id": c["customer_id"]}},
        _unchanged_except("deletion_requests", f"customers/{c['customer_id']}"),
    ]
    return {"customer_id": c["customer_id"]}, "Have the customer's account and personal data deleted.", checks


def _subscription_pause(db: Db, rng: Random) -> Built:
    c = _pick_customer(db, rng, with_subscription=True)
    sub, weeks = c["subscription_id"], rng.randint(2, 8)
    checks = [
        VERIFIED,
        {"op": "field_equals", "table": "subscriptions", "id": sub, "field": "status", "value": "paused"},
        {"op": "field_equals", "table": "subscriptions", "id": sub, "field": "paused_weeks", "value": weeks},
        _unchanged_except(f"subscriptions/{sub}"),
    ]
    params = {"customer_id": c["customer_id"], "subscription_id": sub, "weeks": weeks}
    return params, f"Pause subscription {sub} for {weeks} weeks.", checks


@dataclass(frozen=True)
class TaskType:
    name: str
    build: Callable[[Db, Random], Built]
    new_tools: tuple[str, ...] = ()  # tools deployed together with this task type


TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("order_status", _order_status),
        TaskType("refund", _refund),
        TaskType("address_change", _address_change),
        TaskType("kb_question", _kb_question),
        TaskType("cancellation", _cancellation),
        TaskType("fraud_report", _fraud_report),
        TaskType("account_deletion", _account_deletion),
        TaskType("subscription_pause", _subscription_pause, new_tools=("pause_subscription",)),
    )
}

# Relative weights: a long tail, like real support traffic; rare types matter most.
DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("order_status", 40), ("refund", 16), ("kb_question", 14), ("address_change", 12),
    ("cancellation", 7), ("subscription_pause", 10), ("fraud_report", 2), ("account_deletion", 2),
)


@dataclass(frozen=True)
class TaskMix:
    """The traffic mix; `drift_task` (and its tools) exists only from 1-based `drift_day` on."""

    weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    drift_task: str = "subscription_pause"
    drift_day: int = 3

    def active(self, day: int) -> list[tuple[str, float]]:
        return [(n, w) for n, w in self.weights if n != self.drift_task or day >= self.drift_day]

    def tools_on(self, day: int) -> tuple[str, ...]:
        deployed = {t for n, _ in self.active(day) for t in TASK_TYPES[n].new_tools}
        return tools.BASE_TOOLS + tuple(sorted(deployed))


def sample_task(rng: Random, day: int, mix: TaskMix, env_seed: int) -> TaskSpec:
    """A task for 1-based `day` in shop `env_seed`: type drawn from the day's mix, a new user."""
    names, weights = zip(*mix.active(day))
    task_type = rng.choices(names, weights)[0]
    user_seed = rng.randrange(2**31)
    params, goal, checks = TASK_TYPES[task_type].build(start_state(env_seed), rng)
    return TaskSpec(
        spec_version=SPEC_VERSION,
        task_type=task_type,
        template_id=f"{task_type}/{rng.randrange(len(user.OPENINGS[task_type]))}",
        env_seed=env_seed,
        user_seed=user_seed,
        tools=list(mix.tools_on(day)),
        params=params,
        goal=goal,
        checks=checks,
    )


def replay(spec: TaskSpec) -> SupportEnv:
    """The task's start state, with the tools deployed when it was recorded."""
    return SupportEnv.from_seed(spec["env_seed"], tuple(spec["tools"]))


def check_success(spec: TaskSpec, final_state: dict[str, Any]) -> bool:
    return not failed_checks(spec, final_state)


def failed_checks(spec: TaskSpec, final_state: dict[str, Any]) -> list[dict[str, Any]]:
    """The spec's checks that do not hold on `final_state` (for diagnostics and reward shaping)."""
    facts = user.user_facts(spec)
    start = start_state(spec["env_seed"])
    resolved = [_resolve(c, facts) for c in spec["checks"]]
    return [c for c, r in zip(spec["checks"], resolved) if not _holds(r, start, final_state)]


def _resolve(value: Any, facts: dict[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"user_fact"}:
            return facts[value["user_fact"]]
        return {k: _resolve(v, facts) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, facts) for v in value]
    return value


def _holds(check: dict[str, Any], start: dict[str, Any], final: dict[str, Any]) -> bool:
    op = check["op"]
    if op == "called":
        return any(
            a["ok"] and a["tool"] == check["tool"] and _includes(a["arguments"], check["arguments"])
            for a in final["audit"]
        )
    if op == "record_exists":
        return any(_includes(row, check["match"]) for row in final[check["table"]])
    if op == "field_equals":
        row = final[check["table"]].get(check["id"]) or {}
        return check["field"] in row and _same(row[check["field"]], check["value"])
    if op == "unchanged_except":
        return not _changes(start, final) - set(check["allowed"])
    raise ValueError(f"unknown check op {op!r}")


def _changes(start: dict[str, Any], final: dict[str, Any]) -> set[str]:
    """Changed tables and rows, as "table" and "table/id"; the audit log is not state."""
    changed: set[str] = set()
    for table in (set(start) | set(final)) - {"audit"}:
        before, after = start.get(table), final.get(table)
        if before == after:
            continue
        changed.add(table)
        if isinstance(before, dict) and isinstance(after, dict):
            changed.discard(table)
            changed |= {f"{table}/{k}" for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return changed


def _includes(row: Any, match: dict[str, Any]) -> bool:
    return isinstance(row, dict) and all(k in row and _same(row[k], v) for k, v in match.items())


def _same(actual: Any, expected: Any) -> bool:
    """Equality as a support lead would judge it: cents for money, case/spacing for text."""
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return abs(actual - expected) < 0.005
    if isinstance(expected, str) and isinstance(actual, str):
        return " ".join(actual.split()).casefold() == " ".join(expected.split()).casefold()
    return actual == expected
