"""A customer-support environment: a small shop database plus the tools that act on it.

It is the world both the scripted agent (demo data, tests) and, later, a model under
evaluation act in. Everything is rebuilt from a seed, so a task can be replayed exactly;
`state()` is a plain JSON-able snapshot on which task success is checked. `execute` never
raises on bad input: a model under evaluation sends anything, and the answer to a bad
call is an error the agent can read and recover from, like a real API.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from functools import lru_cache
from random import Random
from typing import Any

from pipeline.simulator import tools
from pipeline.simulator.tools import Db, ToolError

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Kenji", "Sofia", "Liam", "Priya", "Noah", "Elena", "Omar",
    "Hannah", "Lucas", "Mei", "Daniel", "Fatima", "Jonas", "Chloe", "Mateo", "Ingrid", "Samuel",
    "Grace", "Tobias", "Amara", "Felix", "Yuki", "Isabel", "Victor", "Leila", "Oscar", "Nadia",
)
LAST_NAMES = (
    "Keller", "Okafor", "Nakamura", "Rossi", "Haddad", "Johansson", "Fernandez", "Novak", "Patel",
    "Schmidt", "Dubois", "Kowalski", "Andersen", "Moreau", "Silva", "Tanaka", "Brennan", "Weber",
    "Costa", "Lindqvist", "Murphy", "Ivanova", "Garcia", "Hoffmann", "Osei", "Bianchi",
)
STREETS = (
    "Maple Avenue", "Harbor Road", "Linden Street", "Cedar Lane", "Orchard Drive", "Willow Court",
    "Beacon Street", "Juniper Way", "Riverside Drive", "Hawthorne Place", "Chestnut Street",
    "Sycamore Road", "Lakeview Terrace", "Aspen Circle", "Foxglove Lane",
)
CITIES = (
    ("Springfield", "IL", "627"), ("Portland", "OR", "972"), ("Austin", "TX", "787"),
    ("Madison", "WI", "537"), ("Raleigh", "NC", "276"), ("Boulder", "CO", "803"),
    ("Tucson", "AZ", "857"), ("Albany", "NY", "122"), ("Savannah", "GA", "314"),
)
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "fastmail.com")
PRODUCTS = (
    ("SKU-1001", "Ceramic pour-over kettle", 48.00), ("SKU-1002", "Burr coffee grinder", 129.00),
    ("SKU-1003", "Insulated travel mug", 24.50), ("SKU-1004", "Espresso tamper", 19.99),
    ("SKU-1005", "Glass carafe 1L", 32.00), ("SKU-1006", "Single-origin beans 500g", 17.25),
    ("SKU-1007", "Milk frother", 39.90), ("SKU-1008", "Digital scale", 27.40),
    ("SKU-1009", "Paper filters x100", 6.75), ("SKU-1010", "Cold brew jar", 29.00),
)
KB_ARTICLES = (
    ("KB-01", "Return policy", ("return", "returns", "policy", "send", "back", "days"),
     "Unused items can be returned within 30 days of delivery for a full refund."),
    ("KB-02", "Shipping times", ("shipping", "delivery", "long", "times", "days", "ship"),
     "Standard shipping takes 3-5 business days; express takes 1-2."),
    ("KB-03", "Warranty coverage", ("warranty", "broken", "grinder", "kettle", "defect", "repair"),
     "Electrical items carry a 2-year warranty covering manufacturing defects."),
    ("KB-04", "Descaling your kettle", ("descale", "descaling", "kettle", "limescale", "clean"),
     "Fill with equal parts water and white vinegar, boil, rest 20 minutes, rinse twice."),
    ("KB-05", "Grinder settings", ("grinder", "grind", "settings", "espresso", "coarse", "fine"),
     "Use settings 2-4 for espresso, 10-14 for pour-over and 20+ for cold brew."),
    ("KB-06", "Payment methods", ("payment", "pay", "card", "paypal", "methods", "invoice"),
     "We accept major cards and PayPal; invoices are available for business accounts."),
    ("KB-07", "Subscription basics", ("subscription", "subscribe", "beans", "monthly", "skip", "pause"),
     "Bean subscriptions ship monthly; they can be skipped or paused from the account page."),
    ("KB-08", "International shipping", ("international", "abroad", "customs", "country", "ship"),
     "We ship to 30 countries; customs duties are paid by the recipient."),
    ("KB-09", "Gift cards", ("gift", "card", "voucher", "balance", "redeem"),
     "Gift cards never expire and can be redeemed at checkout."),
)
CARRIERS = ("UPS", "FedEx", "DHL", "USPS")
SHIPMENT_STATUSES = ("in_transit", "out_for_delivery", "exception")
CUSTOMERS_PER_ENV = 6


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    content: dict[str, Any] | str
    error: str | None = None

    def text(self) -> str:
        """What the agent sees: the JSON content, or the error message."""
        if not self.ok:
            return self.error or "error"
        return self.content if isinstance(self.content, str) else json.dumps(self.content)


class SupportEnv:
    """One shop's database and the tools enabled in this deployment."""

    def __init__(self, db: Db, tool_names: tuple[str, ...]) -> None:
        self._db = db
        self.tool_names = tool_names

    @classmethod
    def from_seed(cls, seed: int, tool_names: tuple[str, ...] | None = None) -> SupportEnv:
        return cls(build_db(seed), tool_names or tuple(tools.TOOLS))

    def state(self) -> dict[str, Any]:
        return _deep_copy(self._db)

    def tool_schemas(self) -> list[dict[str, Any]]:
        return tools.schemas(self.tool_names)

    def execute(self, tool_name: str, arguments: Any) -> ToolResult:
        """Run one tool call; every failure is an error result, logged in the audit table."""
        result = self._run(tool_name, arguments)
        # whatever a model sent is logged as JSON, so the state stays JSON-able
        logged = json.loads(json.dumps(arguments, default=repr, skipkeys=True))
        self._db["audit"].append({"tool": tool_name, "arguments": logged, "ok": result.ok})
        return result

    def _run(self, tool_name: str, arguments: Any) -> ToolResult:
        tool = tools.TOOLS.get(tool_name) if tool_name in self.tool_names else None
        if tool is None:
            return ToolResult(False, "", f"unknown tool: {tool_name}")
        problem = tools.validate(tool.parameters, arguments)
        if problem:
            return ToolResult(False, "", f"invalid arguments: {problem}")
        try:  # a JSON round trip: results are JSON-able and never alias the database
            return ToolResult(True, json.loads(json.dumps(tool.run(self._db, arguments))))
        except ToolError as e:
            return ToolResult(False, "", str(e))


# -- database generation -----------------------------------------------------------------


def build_db(seed: int) -> Db:
    """A fresh, mutable copy of shop `seed`'s start state."""
    return pickle.loads(_db_bytes(seed))


@lru_cache(maxsize=256)
def start_state(seed: int) -> Db:
    """Shop `seed`'s start state, shared and cached for readers: never mutate it."""
    return build_db(seed)


def _deep_copy(data: Db) -> Db:
    """A deep copy of plain data; pickle is the stdlib's fastest (state is copied per episode)."""
    return pickle.loads(pickle.dumps(data, pickle.HIGHEST_PROTOCOL))


@lru_cache(maxsize=256)  # a day's conversations share a few shops
def _db_bytes(seed: int) -> bytes:
    """Every customer has a processing, a shipped and a delivered (multi-item) order, so
    every task type finds what it needs."""
    rng = Random(f"env:{seed}")
    first_ids = rng.randrange(10000, 99000)
    names = _unique_names(rng, CUSTOMERS_PER_ENV)
    customers = [_customer(rng, f"C-{first_ids + i:05d}", name) for i, name in enumerate(names)]
    db: Db = {
        "customers": {c["customer_id"]: c for c in customers},
        "products": {sku: {"sku": sku, "name": name, "price": price} for sku, name, price in PRODUCTS},
        "orders": {},
        "shipments": {},
        "subscriptions": {},
        "kb": {
            a: {"article_id": a, "title": t, "keywords": list(k), "body": b}
            for a, t, k, b in KB_ARTICLES
        },
        "refunds": [],
        "escalations": [],
        "deletion_requests": [],
        "audit": [],
    }
    next_order, first_sub = rng.randrange(100000, 900000), rng.randrange(1000, 9000)
    for i, c in enumerate(customers):
        extra = rng.sample(["processing", "delivered", "cancelled"], rng.randint(0, 2))
        for status in ["processing", "shipped", "delivered", *extra]:
            _add_order(db, rng, c, f"ORD-{next_order:06d}", status)
            next_order += rng.randint(1, 40)
        if i == 0 or rng.random() < 0.6:  # at least one subscriber per shop
            sub_id = f"S-{first_sub + i:04d}"
            c["subscription_id"] = sub_id
            db["subscriptions"][sub_id] = {
                "subscription_id": sub_id, "customer_id": c["customer_id"], "plan": "beans-monthly",
                "status": "active", "paused_weeks": 0,
            }
    return pickle.dumps(db, pickle.HIGHEST_PROTOCOL)


def _unique_names(rng: Random, n: int) -> list[str]:
    pairs = rng.sample([(first, last) for first in FIRST_NAMES for last in LAST_NAMES], n)
    return [f"{first} {last}" for first, last in pairs]


def _customer(rng: Random, customer_id: str, name: str) -> dict[str, Any]:
    first, last = name.lower().split(" ")
    card = luhn_number(rng, rng.choice(("4", "51", "53", "55")))
    return {
        "customer_id": customer_id,
        "name": name,
        "email": f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(EMAIL_DOMAINS)}",
        "phone": phone_number(rng),
        "address": street_address(rng),
        "card_number": card,
        "card_last4": card[-4:],
        "status": "active",
        "subscription_id": None,
    }


def _add_order(db: Db, rng: Random, c: dict[str, Any], order_id: str, status: str) -> None:
    n_items = rng.randint(2, 3) if status == "delivered" else rng.randint(1, 3)
    items = [
        {"sku": sku, "name": name, "qty": rng.randint(1, 2), "price": price}
        for sku, name, price in rng.sample(PRODUCTS, n_items)
    ]
    tracking = _tracking_number(rng) if status in ("shipped", "delivered") else None
    db["orders"][order_id] = {
        "order_id": order_id,
        "customer_id": c["customer_id"],
        "status": status,
        "items": items,
        "total": round(sum(i["price"] * i["qty"] for i in items), 2),
        "refunded": 0.0,
        "shipping_address": c["address"],
        "tracking_number": tracking,
        "placed_at": f"2026-11-{rng.randint(1, 14):02d}",
    }
    if tracking:
        db["shipments"][tracking] = {
            "tracking_number": tracking,
            "carrier": rng.choice(CARRIERS),
            "status": "delivered" if status == "delivered" else rng.choice(SHIPMENT_STATUSES),
            "eta": f"2026-11-{rng.randint(15, 24):02d}",
            "address": c["address"],
        }


def _tracking_number(rng: Random) -> str:
    return "1Z" + "".join(rng.choices("0123456789ABCDEFGHJKLMNPRSTUVWXYZ", k=16))


# -- PII value generators (also used for what users type) --------------------------------


def luhn_number(rng: Random, prefix: str, length: int = 16) -> str:
    body = prefix + "".join(rng.choices("0123456789", k=length - len(prefix) - 1))
    return body + str(luhn_check_digit(body))


def luhn_check_digit(body: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    digits = "".join(ch for ch in number if ch.isdigit())
    return len(digits) >= 12 and luhn_check_digit(digits[:-1]) == int(digits[-1])


def phone_number(rng: Random) -> str:
    area, line = rng.randrange(201, 990), rng.randrange(100, 10000)
    return rng.choice((f"+1 {area}-555-{line:04d}", f"({area}) 555-{line:04d}"))


def street_address(rng: Random) -> str:
    city, state, zip_prefix = rng.choice(CITIES)
    return f"{rng.randrange(12, 9800)} {rng.choice(STREETS)}, {city}, {state} {zip_prefix}{rng.randrange(100):02d}"
