"""The support desk's tools: JSON schemas (used verbatim as `Trajectory.tools`) and their
implementations over the environment's database.

Schemas and implementations live side by side so a tool cannot drift from its
description: the sandbox that later lets a model act as the agent executes exactly what
the model was told it could call. Implementations are plain functions over the database
dict; domain failures raise `ToolError`, which the environment turns into an error result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Db = dict[str, Any]  # the environment's database: plain JSON-able tables


class ToolError(Exception):
    """A domain-level refusal (unknown id, wrong order state): shown to the agent as an error."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    run: Callable[[Db, dict[str, Any]], dict[str, Any]]
    mutates: bool

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


# -- argument validation: the subset of JSON schema the tools use --------------------------


def validate(schema: dict[str, Any], args: Any) -> str | None:
    """First violation of `schema` by `args`, or None when valid."""
    if not isinstance(args, dict):
        return f"arguments must be an object, got {type(args).__name__}"
    props: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in args:
            return f"missing required argument '{name}'"
    for name, value in args.items():
        if name not in props:
            return f"unexpected argument '{name}'"
        problem = _check_value(props[name], value)
        if problem:
            return f"argument '{name}' {problem}"
    return None


def _check_value(prop: dict[str, Any], value: Any) -> str | None:
    kind = prop["type"]
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        if "pattern" in prop and not re.fullmatch(prop["pattern"], value):
            return f"does not match {prop['pattern']}"
        if len(value) < prop.get("minLength", 0):
            return "is too short"
    elif kind in ("number", "integer"):
        # bool is an int subclass in Python, never a number in JSON
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a{'n integer' if kind == 'integer' else ' number'}"
        if kind == "integer" and not isinstance(value, int):
            return "must be an integer"
        if not math.isfinite(value):
            return "must be finite"
        if "minimum" in prop and value < prop["minimum"]:
            return f"must be >= {prop['minimum']}"
        if "maximum" in prop and value > prop["maximum"]:
            return f"must be <= {prop['maximum']}"
        if "exclusiveMinimum" in prop and value <= prop["exclusiveMinimum"]:
            return f"must be > {prop['exclusiveMinimum']}"
    if "enum" in prop and value not in prop["enum"]:
        return f"must be one of {prop['enum']}"
    return None


def _params(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _str(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


ORDER_ID = _str("Order id, e.g. ORD-104233", pattern=r"ORD-\d{6}")
CUSTOMER_ID = _str("Customer id, e.g. C-20431", pattern=r"C-\d{5}")


# -- implementations ---------------------------------------------------------------------


def _row(db: Db, table: str, key: str, label: str) -> dict[str, Any]:
    row = db[table].get(key)
    if row is None:
        raise ToolError(f"{label} {key} not found")
    return row


def _customer_view(db: Db, c: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_id": c["customer_id"],
        "name": c["name"],
        "email": c["email"],
        "phone": c["phone"],
        "address": c["address"],
        "card_last4": c["card_last4"],
        "status": c["status"],
        "order_ids": [o["order_id"] for o in db["orders"].values() if o["customer_id"] == c["customer_id"]],
        "subscription_id": c["subscription_id"],
    }


def lookup_customer(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k in ("customer_id", "email", "phone") if k in args]
    if len(keys) != 1:
        raise ToolError("provide exactly one of customer_id, email or phone")
    key = keys[0]
    wanted = args[key].strip().lower()
    for c in db["customers"].values():
        if c[key].lower() == wanted:
            return _customer_view(db, c)
    raise ToolError(f"no customer matches that {key.replace('_', ' ')}")


def lookup_order(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    o = _row(db, "orders", args["order_id"], "order")
    return dict(o)


def track_shipment(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    s = _row(db, "shipments", args["tracking_number"], "tracking number")
    return dict(s)


def search_kb(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    words = set(re.findall(r"[a-z]+", args["query"].lower()))
    scored = [
        (len(words & set(a["keywords"])), a["article_id"], a)
        for a in db["kb"].values()
    ]
    hits = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))
    top = hits[: args.get("limit", 3)]
    return {"results": [{"article_id": a["article_id"], "title": a["title"]} for _, _, a in top]}


def get_article(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    a = _row(db, "kb", args["article_id"], "article")
    return {"article_id": a["article_id"], "title": a["title"], "body": a["body"]}


def issue_refund(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    o = _row(db, "orders", args["order_id"], "order")
    if o["status"] != "delivered":
        raise ToolError(f"order {o['order_id']} is {o['status']}; only delivered orders can be refunded")
    amount = round(args["amount"], 2)
    left = round(o["total"] - o["refunded"], 2)
    if amount > left:
        raise ToolError(f"amount {amount:.2f} exceeds refundable balance {left:.2f}")
    refund_id = f"R-{len(db['refunds']) + 1:04d}-{o['order_id'][4:]}"
    refund = {"refund_id": refund_id, "order_id": o["order_id"], "amount": amount, "reason": args["reason"]}
    db["refunds"].append(refund)
    o["refunded"] = round(o["refunded"] + amount, 2)
    return {**refund, "status": "issued"}


def _open_order(db: Db, order_id: str, action: str) -> dict[str, Any]:
    o = _row(db, "orders", order_id, "order")
    if o["status"] != "processing":
        raise ToolError(f"order {order_id} is {o['status']}; cannot {action} after it has left the warehouse")
    return o


def change_address(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    o = _open_order(db, args["order_id"], "change the address")
    o["shipping_address"] = args["new_address"].strip()
    return {"order_id": o["order_id"], "shipping_address": o["shipping_address"], "status": "updated"}


def cancel_order(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    o = _open_order(db, args["order_id"], "cancel")
    o["status"] = "cancelled"
    return {"order_id": o["order_id"], "status": "cancelled", "refund_to_original_payment": o["total"]}


def escalate_to_human(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    if "customer_id" in args:
        _row(db, "customers", args["customer_id"], "customer")
    ticket = f"E-{len(db['escalations']) + 1:04d}"
    category = args["category"]
    db["escalations"].append(
        {"ticket_id": ticket, "customer_id": args.get("customer_id"), "category": category, "summary": args["summary"]}
    )
    return {"ticket_id": ticket, "queue": category, "expected_response_hours": 4 if category == "fraud" else 24}


def request_account_deletion(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    c = _row(db, "customers", args["customer_id"], "customer")
    if c["status"] == "deletion_pending":
        raise ToolError(f"customer {c['customer_id']} already has a pending deletion request")
    c["status"] = "deletion_pending"
    request = f"DR-{c['customer_id'][2:]}"
    db["deletion_requests"].append({"request_id": request, "customer_id": c["customer_id"]})
    return {"request_id": request, "customer_id": c["customer_id"], "completes_within_days": 30}


def pause_subscription(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    s = _row(db, "subscriptions", args["subscription_id"], "subscription")
    if s["status"] != "active":
        raise ToolError(f"subscription {s['subscription_id']} is {s['status']}")
    s["status"] = "paused"
    s["paused_weeks"] = args["weeks"]
    return {"subscription_id": s["subscription_id"], "status": "paused", "paused_weeks": args["weeks"]}


_REFUND_REASONS = ["damaged", "not_received", "wrong_item", "other"]
_ESCALATION_CATEGORIES = ["fraud", "billing", "technical", "complaint", "other"]

TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "lookup_customer",
            "Find a customer by exactly one of customer_id, email or phone. Use it to verify identity.",
            _params([], customer_id=CUSTOMER_ID, email=_str("Email on the account"),
                    phone=_str("Phone on the account")),
            lookup_customer,
            mutates=False,
        ),
        Tool("lookup_order", "Get an order: status, items, total, shipping address, tracking number.",
             _params(["order_id"], order_id=ORDER_ID), lookup_order, mutates=False),
        Tool("track_shipment", "Carrier status of a shipment by tracking number.",
             _params(["tracking_number"], tracking_number=_str("Carrier tracking number", minLength=8)),
             track_shipment, mutates=False),
        Tool("search_kb", "Search help-centre articles; returns ids and titles.",
             _params(["query"], query=_str("Search words", minLength=2),
                     limit={"type": "integer", "minimum": 1, "maximum": 10}),
             search_kb, mutates=False),
        Tool("get_article", "Read a help-centre article by id.",
             _params(["article_id"], article_id=_str("Article id, e.g. KB-07", pattern=r"KB-\d{2}")),
             get_article, mutates=False),
        Tool("issue_refund", "Refund (part of) a delivered order to the original payment method.",
             _params(["order_id", "amount", "reason"], order_id=ORDER_ID,
                     amount={"type": "number", "exclusiveMinimum": 0, "description": "Amount in USD"},
                     reason=_str("Why", enum=_REFUND_REASONS)),
             issue_refund, mutates=True),
        Tool("change_address", "Change the shipping address of an order that has not shipped yet.",
             _params(["order_id", "new_address"], order_id=ORDER_ID,
                     new_address=_str("Full street address", minLength=8)),
             change_address, mutates=True),
        Tool("cancel_order", "Cancel an order that has not shipped yet.",
             _params(["order_id", "reason"], order_id=ORDER_ID, reason=_str("Why the customer cancels", minLength=2)),
             cancel_order, mutates=True),
        Tool("escalate_to_human", "Hand the conversation to a human agent queue.",
             _params(["category", "summary"], category=_str("Queue", enum=_ESCALATION_CATEGORIES),
                     summary=_str("What the human needs to know", minLength=5), customer_id=CUSTOMER_ID),
             escalate_to_human, mutates=True),
        Tool("request_account_deletion", "Register a verified customer's request to delete their account and data.",
             _params(["customer_id"], customer_id=CUSTOMER_ID), request_account_deletion, mutates=True),
        Tool("pause_subscription", "Pause an active subscription for 1-12 weeks.",
             _params(["subscription_id", "weeks"],
                     subscription_id=_str("Subscription id, e.g. S-2043", pattern=r"S-\d{4}"),
                     weeks={"type": "integer", "minimum": 1, "maximum": 12}),
             pause_subscription, mutates=True),
    )
}

# Tools deployed from the start; `pause_subscription` ships with the drift task (see tasks.py).
BASE_TOOLS: tuple[str, ...] = tuple(n for n in TOOLS if n != "pause_subscription")


def schemas(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """OpenAI function-tool schemas for `names`, in that order."""
    return [TOOLS[n].schema() for n in names]
