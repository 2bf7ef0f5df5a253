"""Agent logs in the shapes other teams hand over (not our simulator's), with exact ground truth.

Test support for "bring your own logs": `write_external_logs(root)` writes three sources, the
tool catalogs they refer to, and the source registry (`root/sources.yaml`) that describes them,
and returns what ingesting them must give (`ExternalLogs.expected`, per source name). Every
expected number comes from the generator's own bookkeeping while it builds the records, never
from reading the files back.

    tau_retail/results.json        tau-bench result file: a pretty-printed JSON array of trials
                                   (task_id x trial; the task id alone is not unique), OpenAI chat
                                   messages under "traj", a 0/1 reward and no success flag, no
                                   tools (catalogs/tau_retail_tools.json has them).
    agent_instruct/webshop.jsonl.gz  AgentInstruct-style ReAct corpus: ShareGPT turns
                                   ({"from": "human"|"gpt", "value"}) with Thought/Action text,
                                   a graded reward on some records (catalogs/webshop_tools.json).
    ops_agent/runs.json.zst        zstd JSON object keyed by run id; tools in every record,
                                   outcome.success true/false/null, agent.version a string or
                                   (older exporter) a number.

`write_big_array(path)` streams a large JSON array of tau-shaped records (clean, unique ids).

Deliberately bad records (in `Expected.bad`, counted in `Expected.quarantined`):
- tau_retail: one trial whose "traj" is the conversation JSON-encoded as a string (wrong_type);
  one trial with a {"role": "narrator"} message (invalid_step_order).
- ops_agent: one run whose tool-call arguments are a Python repr, not JSON
  (invalid_tool_arguments); the last run has no "messages" (missing_required_field).

Counting conventions (what each `Expected` number means):
- `records`: records in the file, bad ones included; `trajectories`: records that parse.
- `successes`/`failures`/`unknown_outcome`: over parsed trajectories. tau_retail: success iff
  reward >= 1.0; agent_instruct: iff reward >= 0.75 (rewards of exactly 0.75 occur), unknown
  when the record has no reward; ops_agent: outcome.success, unknown when it is null.
- `tool_calls`: tool calls in assistant turns of parsed records. For agent_instruct, the
  actions the ReAct-in-chat parser must structure: `search[...]`/`click[...]`,
  `name(key="value")` and LangChain `Action: name` + `Action Input: {json}`; not the finishing
  turn (`Action: finish[...]` or `Final Answer: ...`), not an unparseable `Action: ???`.
- `tool_results`: tool messages (tau_retail, ops_agent), or human turns that start with
  "Observation:" (agent_instruct: each answers the action just before it). The human turn after
  an unparseable action does not start with "Observation:".
- `flagged_unparsed_actions`: assistant turns whose action cannot be parsed (agent_instruct).
- `tool_sets`: distinct sets of tool names offered to parsed trajectories (a catalog is one).
"""

from __future__ import annotations

import gzip
import json
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

import orjson

try:
    import zstandard
except ImportError:  # the lead adds the dependency where it is missing
    zstandard = None

TAU, WEBSHOP, OPS = "tau_retail", "agent_instruct", "ops_agent"
MIN_MESSAGES = {TAU: 30, WEBSHOP: 30, OPS: 12}
WEBSHOP_SUCCESS = 0.75  # the registry's success_threshold for agent_instruct
TAU_AGENT_VERSION = "gpt-4o-2024-08-06-fc"  # the registry's constant for tau_retail


# --- ground truth ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordTruth:
    """One parsed trajectory's ground truth."""

    id: str
    success: bool | None
    reward: float | None
    messages: int
    tool_calls: int
    tool_results: int
    unparsed_actions: int = 0
    tools: tuple[str, ...] = ()  # names offered (the record's own, else the catalog's)
    agent_version: str | None = None


@dataclass(frozen=True)
class BadRecord:
    index: int  # 0-based position of the record in its file (array index / object member)
    key: str  # what identifies it: the constructed id (tau), the object key (ops)
    reason: str  # the quarantine reason


@dataclass
class Expected:
    records: int
    quarantined: dict[str, int]
    trajectories: int
    successes: int
    failures: int
    unknown_outcome: int
    tool_calls: int
    tool_results: int
    flagged_unparsed_actions: int
    tool_sets: int
    messages: int  # messages (turns) in parsed records
    ids: list[str]  # parsed trajectory ids, in file order
    bad: list[BadRecord]
    by_id: dict[str, RecordTruth]
    tool_names_called: frozenset[str]
    agent_versions: dict[str, int]
    may_train: bool | None  # None: no consent declared ("unknown")


@dataclass
class ExternalLogs:
    root: Path
    paths: dict[str, Path]  # source name -> the file written
    catalogs: dict[str, Path]  # source name -> its tool catalog (sources with one)
    registry: Path
    expected: dict[str, Expected]
    seconds: float = 0.0  # how long the write took


def _expected(truths: list[RecordTruth], bad: list[BadRecord], *, may_train: bool | None,
              called: set[str]) -> Expected:
    return Expected(
        records=len(truths) + len(bad),
        quarantined=dict(Counter(b.reason for b in bad)),
        trajectories=len(truths),
        successes=sum(t.success is True for t in truths),
        failures=sum(t.success is False for t in truths),
        unknown_outcome=sum(t.success is None for t in truths),
        tool_calls=sum(t.tool_calls for t in truths),
        tool_results=sum(t.tool_results for t in truths),
        flagged_unparsed_actions=sum(t.unparsed_actions for t in truths),
        tool_sets=len({frozenset(t.tools) for t in truths}),
        messages=sum(t.messages for t in truths),
        ids=[t.id for t in truths],
        bad=bad,
        by_id={t.id: t for t in truths},
        tool_names_called=frozenset(called),
        agent_versions=dict(Counter(t.agent_version for t in truths if t.agent_version is not None)),
        may_train=may_train,
    )


# --- shared helpers -------------------------------------------------------------------------

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _call_id(rng: Random) -> str:
    return "call_" + "".join(rng.choices(_ALNUM, k=24))


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


class _Chat:
    """An OpenAI chat transcript being built, with its counts kept as it grows."""

    def __init__(self, rng: Random, *, function_call_key: bool = True) -> None:
        self.rng = rng
        self.messages: list[dict[str, Any]] = []
        self.tool_calls = 0
        self.tool_results = 0
        self.called: set[str] = set()
        self.function_call_key = function_call_key  # litellm's model_dump() keeps a null one

    def add(self, role: str, content: Any) -> None:
        self.messages.append({"role": role, "content": content})

    def say(self, text: str) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self.function_call_key:
            message.update(tool_calls=None, function_call=None)
        self.messages.append(message)

    def calls(self, *calls: tuple[str, dict[str, Any] | str, str], text: str | None = None) -> None:
        """One assistant message with these (name, arguments, result) calls, then their results."""
        ids = [_call_id(self.rng) for _ in calls]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {
                    "id": i,
                    "type": "function",
                    "function": {"name": n, "arguments": a if isinstance(a, str) else json.dumps(a)},
                }
                for i, (n, a, _) in zip(ids, calls)
            ],
        }
        if self.function_call_key:
            message["function_call"] = None
        self.messages.append(message)
        for i, (n, _, result) in zip(ids, calls):
            self.messages.append({"role": "tool", "tool_call_id": i, "name": n, "content": result})
        self.tool_calls += len(calls)
        self.tool_results += len(calls)
        self.called.update(n for n, _, _ in calls)

    def extend(self, other: _Chat) -> None:
        self.messages += other.messages
        self.tool_calls += other.tool_calls
        self.tool_results += other.tool_results
        self.called |= other.called


# --- A: tau-bench retail ---------------------------------------------------------------------

_FIRST = ["Yusuf", "Mei", "Olivia", "Raj", "Sofia", "Ethan", "Aarav", "Chen", "Fatima", "Lucas", "Amara",
          "Noah", "Isabella", "Mohamed", "Yara", "Daiki", "Emma", "Omar", "Lena", "José", "Zoë", "Ivan",
          "Priya", "Mateo", "Harper", "Sven", "Aisha", "Lucía"]
_LAST = ["Rossi", "Kim", "Garcia", "Patel", "Müller", "Johansson", "Nguyen", "Okafor", "Silva", "Hernandez",
         "Ahmed", "Kowalski", "Ito", "Brown", "Moreau", "Santos", "Novak", "Li", "Dubois", "Schmidt", "Lopez",
         "Anderson", "Wilson", "Khan"]
_CITIES = [("Austin", "TX", "787"), ("Denver", "CO", "802"), ("Seattle", "WA", "981"), ("Columbus", "OH", "432"),
           ("Charlotte", "NC", "282"), ("San Diego", "CA", "921"), ("Phoenix", "AZ", "850"),
           ("Philadelphia", "PA", "191"), ("Chicago", "IL", "606"), ("Fort Worth", "TX", "761"),
           ("Jacksonville", "FL", "322"), ("Houston", "TX", "770"), ("Indianapolis", "IN", "462")]
_STREETS = ["Maple Drive", "Elm Street", "Hillside Avenue", "Sunset Drive", "Oak Street", "Cedar Avenue",
            "Lakeview Drive", "River Road", "Park Avenue", "Willow Lane", "Main Street", "Pine Lane"]
# name, option axes (each option's values)
_TAU_PRODUCTS: list[tuple[str, dict[str, list[str]]]] = [
    ("T-Shirt", {"color": ["blue", "red", "black", "white"], "size": ["S", "M", "L", "XL"]}),
    ("Mechanical Keyboard", {"switch type": ["linear", "tactile", "clicky"], "backlight": ["RGB", "none"]}),
    ("Hiking Boots", {"size": ["8", "9", "10", "11"], "material": ["leather", "synthetic"]}),
    ("Water Bottle", {"capacity": ["500ml", "750ml", "1000ml"], "color": ["green", "blue", "black"]}),
    ("Desk Lamp", {"color": ["black", "silver", "white"], "brightness": ["low", "medium", "high"]}),
    ("Running Shoes", {"size": ["8", "9", "10"], "color": ["black", "yellow", "white"]}),
    ("Backpack", {"color": ["grey", "navy", "black"], "size": ["small", "medium", "large"]}),
    ("Bluetooth Speaker", {"color": ["red", "blue", "black"], "battery life": ["10 hours", "20 hours"]}),
    ("Smart Watch", {"color": ["gold", "silver", "black"], "band material": ["silicone", "leather"]}),
    ("Coffee Maker", {"color": ["black", "stainless steel"], "capacity": ["4 cups", "8 cups", "12 cups"]}),
    ("Office Chair", {"material": ["mesh", "leather", "fabric"], "color": ["black", "gray", "blue"]}),
    ("Wireless Earbuds", {"color": ["black", "white"], "water resistance": ["IPX4", "IPX7"]}),
]
_PERSONAS = ["You are polite but in a hurry.", "You are detail-oriented and want to see the numbers.",
             "You are reserved and only answer what you are asked.", "You are friendly and chatty.",
             "You are a bit annoyed about the situation.", "You are not very tech-savvy."]

TAU_WIKI = """# Retail agent policy

As a retail agent, you can help users cancel or modify pending orders, return or exchange delivered orders, \
modify their default user address, or provide information about their own profile, orders, and related products.

- At the beginning of the conversation, you have to authenticate the user identity by locating their user id via \
email, or via name + zip code. This has to be done even when the user already provides the user id.
- Once the user has been authenticated, you can provide the user with information about order, product, profile \
information, e.g. help the user look up order id.
- You can only help one user per conversation (but you can handle multiple requests from the same user).
- Before taking consequential actions that update the database (cancel, modify, return, exchange), you have to \
list the action detail and obtain explicit user confirmation (yes) to proceed.
- You should not make up any information or knowledge or procedures not provided from the user or the tools.
- You should at most make one tool call at a time, and if you take a tool call, you should not respond to the \
user at the same time.
- You should transfer the user to a human agent if and only if the request cannot be handled within the scope \
of your actions.

## Cancel pending order
An order can only be cancelled if its status is 'pending'. The user needs to confirm the order id and the reason \
(either 'no longer needed' or 'ordered by mistake') for cancellation. After user confirmation, the order status \
will be changed to 'cancelled', and the total will be refunded via the original payment method.

## Modify pending order
An order can only be modified if its status is 'pending'. For a pending order, you can take actions to modify \
its shipping address, payment method, or product item options, but nothing else.

## Return delivered order
An order can only be returned if its status is 'delivered'. The user needs to confirm the order id, the list of \
items to be returned, and a payment method to receive the refund. The refund must either go to the original \
payment method, or an existing gift card. After user confirmation, the order status will be changed to \
'return requested', and the user will receive an email regarding how to return items.

## Exchange delivered order
An order can only be exchanged if its status is 'delivered'. For a delivered order, you can exchange each item \
to an available new item of the same product but of different product option. There cannot be any change of \
product types, e.g. modify shirt to shoe. The user must provide a payment method to pay or receive refund of the \
price difference."""

_REASONS = ("no longer needed", "ordered by mistake")


def tau_retail_tools() -> list[dict[str, Any]]:
    """The retail tool catalog (OpenAI function tools), as tau-bench's retail domain names them."""
    oid = _s("The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning.")
    uid = _s("The user id, such as 'sara_doe_496'.")
    pm = _s("The payment method id to pay or receive refund, such as 'gift_card_0000000' or "
            "'credit_card_0000000'.")
    ids = {"type": "array", "items": {"type": "string"}, "description": "The item ids, such as ['1008292230']."}
    addr = {"address1": _s("The first line of the address, such as '123 Main St'."),
            "address2": _s("The second line of the address, such as 'Apt 1' or ''."),
            "city": _s("The city, such as 'San Francisco'."), "state": _s("The state, such as 'CA'."),
            "country": _s("The country, such as 'USA'."), "zip": _s("The zip code, such as '12345'.")}
    return [
        _fn("find_user_id_by_email", "Find user id by email. If the user is not found, the function will return "
            "an error message.", {"email": _s("The email of the user, such as 'something@example.com'.")},
            ["email"]),
        _fn("find_user_id_by_name_zip", "Find user id by first name, last name, and zip code.",
            {"first_name": _s("The first name of the customer, such as 'John'."),
             "last_name": _s("The last name of the customer, such as 'Doe'."),
             "zip": _s("The zip code of the customer, such as '12345'.")}, ["first_name", "last_name", "zip"]),
        _fn("get_user_details", "Get the details of an user, including their orders.", {"user_id": uid},
            ["user_id"]),
        _fn("get_order_details", "Get the status and details of an order.", {"order_id": oid}, ["order_id"]),
        _fn("get_product_details", "Get the inventory details of a product.",
            {"product_id": _s("The product id, such as '6086499569'. Be careful the product id is different "
                              "from the item id.")}, ["product_id"]),
        _fn("list_all_product_types", "List the name and product id of all product types.", {}, []),
        _fn("cancel_pending_order", "Cancel a pending order. If the order is already processed or delivered, it "
            "cannot be cancelled. The agent needs to explain the cancellation detail and ask for explicit user "
            "confirmation (yes/no) to proceed.",
            {"order_id": oid, "reason": _s("The reason for cancellation.", enum=list(_REASONS))},
            ["order_id", "reason"]),
        _fn("modify_pending_order_address", "Modify the shipping address of a pending order. The agent needs to "
            "explain the modification detail and ask for explicit user confirmation (yes/no) to proceed.",
            {"order_id": oid, **addr}, ["order_id", *addr]),
        _fn("modify_pending_order_payment", "Modify the payment method of a pending order.",
            {"order_id": oid, "payment_method_id": pm}, ["order_id", "payment_method_id"]),
        _fn("return_delivered_order_items", "Return some items of a delivered order. The order status will be "
            "changed to 'return requested'. The agent needs to explain the return detail and ask for explicit "
            "user confirmation (yes/no) to proceed.",
            {"order_id": oid, "item_ids": ids, "payment_method_id": pm}, ["order_id", "item_ids",
                                                                          "payment_method_id"]),
        _fn("exchange_delivered_order_items", "Exchange items in a delivered order to new items of the same "
            "product type. For a delivered order, return or exchange can be only done once by the agent.",
            {"order_id": oid, "item_ids": ids,
             "new_item_ids": {**ids, "description": "The new item ids to be exchanged for, in the same order."},
             "payment_method_id": pm}, ["order_id", "item_ids", "new_item_ids", "payment_method_id"]),
        _fn("modify_user_address", "Modify the default address of a user.", {"user_id": uid, **addr},
            ["user_id", *addr]),
        _fn("transfer_to_human_agents", "Transfer the user to a human agent, with a summary of the user's issue. "
            "Only transfer if the user explicitly asks for a human agent, or if the user's issue cannot be "
            "resolved by the agent with the available tools.",
            {"summary": _s("A summary of the user's issue.")}, ["summary"]),
        _fn("calculate", "Calculate the result of a mathematical expression.",
            {"expression": _s("The mathematical expression to calculate, such as '2 + 2'.")}, ["expression"]),
        _fn("think", "Use the tool to think about something. It will not obtain new information or change the "
            "database, but just append the thought to the log.", {"thought": _s("A thought to think about.")},
            ["thought"]),
    ]


def _digits(rng: Random, n: int) -> str:
    return str(rng.randint(10 ** (n - 1), 10**n - 1))


@dataclass
class _Item:
    name: str
    product_id: str
    item_id: str
    price: float
    options: dict[str, str]

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "product_id": self.product_id, "item_id": self.item_id, "price": self.price,
                "options": self.options}

    def label(self) -> str:
        return f"{self.name} ({', '.join(f'{k}: {v}' for k, v in self.options.items())})"


@dataclass
class _Order:
    order_id: str
    status: str
    items: list[_Item]
    payment_method_id: str
    tracking: str

    def total(self) -> float:
        return round(sum(i.price for i in self.items), 2)


@dataclass
class _Customer:
    first: str
    last: str
    user_id: str
    email: str
    address: dict[str, str]
    payment_methods: dict[str, dict[str, Any]]
    orders: list[_Order]

    def details(self) -> str:
        return json.dumps({
            "user_id": self.user_id,
            "name": {"first_name": self.first, "last_name": self.last},
            "address": self.address,
            "email": self.email,
            "payment_methods": self.payment_methods,
            "orders": [o.order_id for o in self.orders],
        }, ensure_ascii=False)

    def order_view(self, o: _Order, status: str | None = None) -> str:
        return json.dumps({
            "order_id": o.order_id,
            "user_id": self.user_id,
            "address": self.address,
            "items": [i.view() for i in o.items],
            "fulfillments": [] if o.status == "pending" else
            [{"tracking_id": [o.tracking], "item_ids": [i.item_id for i in o.items]}],
            "status": status or o.status,
            "payment_history": [{"transaction_type": "payment", "amount": o.total(),
                                 "payment_method_id": o.payment_method_id}],
        }, ensure_ascii=False)

    def pm_label(self, pm_id: str) -> str:
        pm = self.payment_methods[pm_id]
        if pm["source"] == "credit_card":
            return f"{pm['brand']} credit card ending in {pm['last_four']}"
        return "gift card" if pm["source"] == "gift_card" else "PayPal account"


class _RetailWorld:
    """Products with item variants, shared by every task of one file (one seed)."""

    def __init__(self, rng: Random) -> None:
        self.products: list[tuple[str, str, list[_Item]]] = []
        for name, axes in _TAU_PRODUCTS:
            pid = _digits(rng, 10)
            base = rng.uniform(20, 300)
            variants = []
            for _ in range(rng.randint(5, 8)):
                options = {k: rng.choice(v) for k, v in axes.items()}
                if any(v.options == options for v in variants):
                    continue
                variants.append(_Item(name, pid, _digits(rng, 10), round(base * rng.uniform(0.9, 1.1), 2), options))
            self.products.append((name, pid, variants))
        self.available = {v.item_id: rng.random() < 0.7 for _, _, vs in self.products for v in vs}

    def customer(self, rng: Random) -> _Customer:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, state, prefix = rng.choice(_CITIES)
        address = {"address1": f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}",
                   "address2": rng.choice(["", "", f"Suite {rng.randint(100, 999)}", f"Apt {rng.randint(1, 40)}"]),
                   "city": city, "country": "USA", "state": state, "zip": prefix + _digits(rng, 2)}
        pms: dict[str, dict[str, Any]] = {}
        for source in rng.sample(["credit_card", "gift_card", "paypal"], 2):
            pm_id = f"{source}_{_digits(rng, 7)}"
            pm: dict[str, Any] = {"source": source, "id": pm_id}
            if source == "credit_card":
                pm.update(brand=rng.choice(["visa", "mastercard"]), last_four=_digits(rng, 4))
            elif source == "gift_card":
                pm["balance"] = round(rng.uniform(5, 150), 2)
            pms[pm_id] = pm
        statuses = ["delivered", "pending", *rng.sample(["delivered", "pending", "processed"], rng.randint(1, 2))]
        rng.shuffle(statuses)
        orders = []
        for status in statuses:
            items = []
            for _, _, variants in rng.sample(self.products, rng.randint(1, 3)):
                items.append(rng.choice(variants))
            orders.append(_Order("#W" + _digits(rng, 7), status, items, rng.choice(list(pms)), _digits(rng, 12)))
        user_id = f"{_ascii(first)}_{_ascii(last)}_{rng.randint(1000, 9999)}"
        email = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 99)}@example.com"
        return _Customer(first, last, user_id, email, address, pms, orders)

    def variants(self, product_id: str) -> list[_Item]:
        return next(vs for _, pid, vs in self.products if pid == product_id)

    def product_view(self, product_id: str) -> str:
        name, _, variants = next(p for p in self.products if p[1] == product_id)
        return json.dumps({"name": name, "product_id": product_id, "variants": {
            v.item_id: {"item_id": v.item_id, "options": v.options, "available": self.available[v.item_id],
                        "price": v.price} for v in variants}})


@dataclass
class _Goal:
    kind: str  # return | exchange | cancel | address
    order: _Order
    item: _Item | None = None
    new_item: _Item | None = None
    pm: str | None = None
    reason: str | None = None
    address: dict[str, str] | None = None

    def action(self) -> dict[str, Any]:
        """The ground-truth write action (tau-bench's task.actions entry)."""
        o = self.order.order_id
        if self.kind == "return":
            return {"name": "return_delivered_order_items",
                    "kwargs": {"order_id": o, "item_ids": [self.item.item_id], "payment_method_id": self.pm}}
        if self.kind == "exchange":
            return {"name": "exchange_delivered_order_items",
                    "kwargs": {"order_id": o, "item_ids": [self.item.item_id],
                               "new_item_ids": [self.new_item.item_id], "payment_method_id": self.pm}}
        if self.kind == "cancel":
            return {"name": "cancel_pending_order", "kwargs": {"order_id": o, "reason": self.reason}}
        return {"name": "modify_pending_order_address", "kwargs": {"order_id": o, **self.address}}


@dataclass
class _Task:
    task_id: int
    customer: _Customer
    goals: list[_Goal]
    instruction: str
    p_success: float
    auth: str  # email | name_zip | email_typo


def _tau_task(world: _RetailWorld, rng: Random, task_id: int) -> _Task:
    c = world.customer(rng)
    delivered = [o for o in c.orders if o.status == "delivered"]
    pending = [o for o in c.orders if o.status == "pending"]
    goals: list[_Goal] = []
    kinds = rng.sample(["return", "exchange", "cancel", "address"], 2)
    for kind in kinds:
        if kind in ("return", "exchange"):
            order = rng.choice(delivered)
            item = rng.choice(order.items)
            if kind == "exchange":
                others = [v for v in world.variants(item.product_id)
                          if v.item_id != item.item_id and world.available[v.item_id]]
                if not others:
                    kind = "return"
                else:
                    pm = rng.choice(list(c.payment_methods))
                    goals.append(_Goal("exchange", order, item, rng.choice(others), pm))
                    continue
            goals.append(_Goal("return", order, item, pm=rng.choice([order.payment_method_id,
                                                                     *c.payment_methods])))
        elif kind == "cancel":
            goals.append(_Goal("cancel", rng.choice(pending), reason=rng.choice(_REASONS)))
        else:
            city, state, prefix = rng.choice(_CITIES)
            goals.append(_Goal("address", rng.choice(pending), address={
                "address1": f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}", "address2": "",
                "city": city, "state": state, "country": "USA", "zip": prefix + _digits(rng, 2)}))
    wants = []
    for g in goals:
        if g.kind == "return":
            wants.append(f"return the {g.item.name.lower()} you received and get the refund to your "
                         f"{c.pm_label(g.pm)}")
        elif g.kind == "exchange":
            wants.append(f"exchange the {g.item.name.lower()} in order {g.order.order_id} for one with "
                         + ", ".join(f"{k} {v}" for k, v in g.new_item.options.items())
                         + f", paying any difference with your {c.pm_label(g.pm)}")
        elif g.kind == "cancel":
            wants.append(f"cancel your pending order {g.order.order_id} because it was {g.reason}"
                         if g.reason == "ordered by mistake" else
                         f"cancel your pending order {g.order.order_id} because you no longer need it")
        else:
            a = g.address
            wants.append(f"have order {g.order.order_id} shipped to your new address "
                         f"{a['address1']}, {a['city']}, {a['state']} {a['zip']}")
    instruction = (f"Your name is {c.first} {c.last} and your zip code is {c.address['zip']}. "
                   f"Your email is {c.email}. You want to {wants[0]}. You also want to {wants[1]}. "
                   f"{rng.choice(_PERSONAS)}")
    auth = rng.choices(["email", "name_zip", "email_typo"], [5, 3, 1])[0]
    return _Task(task_id, c, goals, instruction, rng.uniform(0.2, 0.85), auth)


def _auth(chat: _Chat, t: _Task, rng: Random) -> None:
    c = t.customer
    chat.add("system", TAU_WIKI)
    chat.add("user", rng.choice([
        "Hi, I need some help with a couple of my orders.",
        "Hello! I have a few things to sort out with my orders, can you help?",
        "hi there. i want to change some stuff about my orders",
        f"Hi, this is {c.first}. I've got two requests about things I ordered.",
    ]))
    chat.say("I'd be happy to help. First, I need to verify your identity. Could you please provide the email "
             "address on your account, or your first name, last name, and zip code?")
    if t.auth == "name_zip":
        chat.add("user", f"Sure. I'm {c.first} {c.last}, zip code {c.address['zip']}.")
    else:
        if t.auth == "email_typo":
            typo = c.email.replace("@", "1@", 1)
            chat.add("user", f"It's {typo}.")
            chat.calls(("find_user_id_by_email", {"email": typo}, "Error: user not found"))
            chat.say("I couldn't find an account with that email. Could you give me your first name, last name, "
                     "and zip code instead?")
            chat.add("user", f"Oh, sorry. {c.first} {c.last}, {c.address['zip']}.")
        else:
            chat.add("user", f"Sure, my email is {c.email}.")
            chat.calls(("find_user_id_by_email", {"email": c.email}, c.user_id))
    if t.auth != "email":
        chat.calls(("find_user_id_by_name_zip",
                    {"first_name": c.first, "last_name": c.last, "zip": c.address["zip"]}, c.user_id))
    chat.calls(("get_user_details", {"user_id": c.user_id}, c.details()))
    chat.say(f"Thank you, {c.first}, your identity is verified. What can I help you with first?")


def _status(chat: _Chat, c: _Customer, o: _Order, rng: Random) -> None:
    chat.add("user", rng.choice([f"Before that, can you tell me the status of order {o.order_id}?",
                                 f"Quick question first: where is my order {o.order_id}?",
                                 f"Also, what's going on with {o.order_id}?"]))
    chat.calls(("get_order_details", {"order_id": o.order_id}, c.order_view(o)))
    extra = f" The tracking number is {o.tracking}." if o.status != "pending" else " It has not shipped yet."
    chat.say(f"Order {o.order_id} is currently {o.status} and contains "
             + ", ".join(i.label() for i in o.items) + f", total ${o.total():.2f}.{extra}")


_VERB = {"return": "return items of", "exchange": "exchange items of", "cancel": "cancel",
         "address": "change the shipping address of"}


def _confirm(chat: _Chat, text: str, rng: Random) -> None:
    chat.say(text + "\n\nDo you confirm that you want to proceed? (yes/no)")
    chat.add("user", rng.choice(["Yes.", "yes", "Yes, please go ahead.", "Yep, do it.", "yes, confirmed"]))


def _transfer(chat: _Chat, summary: str) -> None:
    chat.calls(("transfer_to_human_agents", {"summary": summary}, "Transfer successful"))
    chat.say("YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON.")


def _goal(chat: _Chat, t: _Task, g: _Goal, fail: str | None, world: _RetailWorld, rng: Random) -> bool:
    """Plays one request; `fail` is None (done right), wrong_args, gave_up or user_quit.
    Returns whether the conversation goes on."""
    c, o = t.customer, g.order
    if g.kind in ("return", "exchange"):
        item = g.item
        if g.kind == "return":
            chat.add("user", f"I'd like to return the {item.name.lower()} I got. I don't remember which order it "
                             f"was in, sorry.")
            candidates = [x for x in c.orders if x.status == "delivered"]
            if rng.random() < 0.4:
                chat.calls(*[("get_order_details", {"order_id": x.order_id}, c.order_view(x)) for x in candidates])
            else:
                for x in candidates:
                    chat.calls(("get_order_details", {"order_id": x.order_id}, c.order_view(x)))
            chat.say(f"I found the {item.label()} in order {o.order_id}, which was delivered. The refund of "
                     f"${item.price:.2f} can go to the original payment method or to an existing gift card. "
                     "Which would you prefer?")
            chat.add("user", f"Please put it on my {c.pm_label(g.pm)}.")
        else:
            new = g.new_item
            chat.add("user", f"I want to exchange the {item.name.lower()} from order {o.order_id} for the same "
                             "thing but with " + " and ".join(f"{k} {v}" for k, v in new.options.items()) + ".")
            chat.calls(("get_order_details", {"order_id": o.order_id}, c.order_view(o)))
            chat.calls(("get_product_details", {"product_id": item.product_id}, world.product_view(item.product_id)))
            diff = round(new.price - item.price, 2)
            chat.calls(("calculate", {"expression": f"{new.price} - {item.price}"}, str(diff)))
            owed = f"you would pay ${diff:.2f} more" if diff >= 0 else f"you would get ${-diff:.2f} back"
            chat.say(f"The {new.label()} is available (item id {new.item_id}) at ${new.price:.2f}, so {owed}. "
                     "Which payment method should I use for the price difference?")
            chat.add("user", f"Use my {c.pm_label(g.pm)}.")
    else:
        if g.kind == "cancel":
            chat.add("user", f"I need to cancel order {o.order_id}. "
                     + ("I ordered it by mistake." if g.reason == "ordered by mistake" else "I don't need it anymore."))
        else:
            a = g.address
            chat.add("user", f"Can you change the shipping address on order {o.order_id}? I just moved to "
                             f"{a['address1']}, {a['city']}, {a['state']} {a['zip']}.")
        chat.calls(("get_order_details", {"order_id": o.order_id}, c.order_view(o)))
    if fail == "gave_up":  # the agent decides it cannot do it and hands over
        _transfer(chat, f"User {c.user_id} wants to {_VERB[g.kind]} order {o.order_id}; I could not complete it.")
        return False
    action = g.action()
    kwargs = dict(action["kwargs"])
    if fail == "wrong_args":  # a call that goes through but is not what the user asked for
        if g.kind in ("return", "exchange"):
            others = [pm for pm in c.payment_methods if pm != g.pm]
            kwargs["payment_method_id"] = others[0]
            if g.kind == "exchange":
                wrong = [v for v in world.variants(g.item.product_id) if v.item_id not in
                         (g.item.item_id, g.new_item.item_id)]
                if wrong:
                    bad = rng.choice(wrong)
                    kwargs["new_item_ids"] = [bad.item_id]
        elif g.kind == "cancel":
            kwargs["reason"] = next(r for r in _REASONS if r != g.reason)
        else:
            kwargs["zip"] = kwargs["zip"][::-1]
    if rng.random() < 0.25:
        chat.calls(("think", {"thought": f"The user wants to {_VERB[g.kind]} order {o.order_id}. I have the "
                                         "details; I need explicit confirmation before the write."}, ""))
    details = (f"Here are the details:\n- order: {o.order_id}\n- action: {action['name']}\n"
               + "\n".join(f"- {k}: {v}" for k, v in kwargs.items() if k != "order_id"))
    if fail == "user_quit":  # the user walks away at the confirmation
        chat.say(details + "\n\nDo you confirm that you want to proceed? (yes/no)")
        chat.add("user", "Hmm, actually, never mind. I'll deal with it some other time. ###STOP###")
        return False
    _confirm(chat, details, rng)
    status = {"return": "return requested", "exchange": "exchange requested", "cancel": "cancelled",
              "address": "pending"}[g.kind]
    if (fail == "wrong_args" and g.kind == "exchange" and "new_item_ids" in kwargs
            and not world.available[kwargs["new_item_ids"][0]]):
        chat.calls((action["name"], kwargs, f"Error: new item {kwargs['new_item_ids'][0]} not found or available"))
        _transfer(chat, f"Exchange for order {o.order_id} failed: item unavailable.")
        return False
    chat.calls((action["name"], kwargs, c.order_view(o, status)))
    chat.say({"return": "Your return has been requested. You'll receive an email with instructions on how to ship "
                        "the item back; the refund is issued once we receive it.",
              "exchange": "Your exchange has been requested. You'll get an email with the return label; the new "
                          "item ships once we receive the old one.",
              "cancel": "The order has been cancelled. The refund goes to the original payment method within 5-7 "
                        "business days.",
              "address": "The shipping address of the order has been updated."}[g.kind]
             + " Is there anything else I can help you with?")
    return True


def _tau_trial(world: _RetailWorld, t: _Task, trial: int, rng: Random) -> tuple[dict[str, Any], _Chat, bool]:
    """One trial: the tau-bench record, its transcript, and whether it succeeded."""
    ok = rng.random() < t.p_success
    failing = None if ok else rng.randrange(len(t.goals))
    mode = None if ok else rng.choice(["wrong_args", "wrong_args", "gave_up", "user_quit"])
    head, body = _Chat(rng), _Chat(rng)
    _auth(head, t, rng)
    going = True
    for i, g in enumerate(t.goals):
        if going:
            going = _goal(body, t, g, mode if i == failing else None, world, rng)
    if going:
        body.add("user", rng.choice(["That's all, thank you! ###STOP###", "Great, thanks. ###STOP###",
                                     "ok thanks bye ###STOP###"]))
    chat = head
    while len(chat.messages) + len(body.messages) < MIN_MESSAGES[TAU]:
        _status(chat, t.customer, rng.choice(t.customer.orders), rng)
    chat.extend(body)
    reward = 1.0 if ok else 0.0
    actions = [g.action() for g in t.goals]
    info = {
        "task": {"user_id": t.customer.user_id, "actions": actions, "instruction": t.instruction, "outputs": []},
        "source": "user",
        "user_cost": round(rng.uniform(0.01, 0.08), 6),
        "reward_info": {"reward": reward, "info": {"r_actions": ok, "gt_data_hash": f"{rng.getrandbits(256):064x}"},
                        "actions": actions},
        "domain": "retail",
        "user_model": "gpt-4o",
        "user_provider": "openai",
        "agent_strategy": "tool-calling",
    }
    record = {"task_id": t.task_id, "reward": reward, "info": info, "traj": chat.messages, "trial": trial}
    return record, chat, ok


def _tau_records(seed: int, n_tasks: int, trials: int, first_task: int = 0):
    """(record, chat, success) per trial, trial-major (tau-bench runs each trial over all tasks)."""
    rng = Random(f"{seed}:{TAU}")
    world = _RetailWorld(rng)
    tasks = [_tau_task(world, rng, first_task + i) for i in range(n_tasks)]
    for trial in range(trials):
        for t in tasks:
            yield _tau_trial(world, t, trial, rng)


def _write_tau(root: Path, seed: int, scale: float) -> tuple[Path, Path, Expected]:
    n_tasks, trials = max(3, round(50 * scale)), 4
    wrong_type = (n_tasks // 5, 2)  # (task_id, trial)
    narrator = (n_tasks // 2 + 3 if n_tasks > 8 else n_tasks - 1, 1)
    catalog = tau_retail_tools()
    names = tuple(sorted(t["function"]["name"] for t in catalog))
    records, truths, bad, called = [], [], [], set()
    for index, (record, chat, ok) in enumerate(_tau_records(seed, n_tasks, trials)):
        key = (record["task_id"], record["trial"])
        rid = f"tau-{key[0]}-trial{key[1]}"
        if key == wrong_type:  # an exporter that JSON-encoded the conversation a second time
            record["traj"] = json.dumps(record["traj"], ensure_ascii=False)
            bad.append(BadRecord(index, rid, "wrong_type"))
        elif key == narrator:  # a stage direction from the user simulator left in the log
            record["traj"].insert(3, {"role": "narrator",
                                      "content": "[The user pauses to look for their order confirmation email.]"})
            bad.append(BadRecord(index, rid, "invalid_step_order"))
        else:
            truths.append(RecordTruth(rid, ok, record["reward"], len(chat.messages), chat.tool_calls,
                                      chat.tool_results, tools=names, agent_version=TAU_AGENT_VERSION))
            called |= chat.called
        records.append(record)
    path = root / TAU / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n")
    catalog_path = root / "catalogs" / "tau_retail_tools.json"
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    catalog_path.write_text(json.dumps(catalog, indent=2) + "\n")
    return path, catalog_path, _expected(truths, bad, may_train=True, called=called)



def write_big_array(path: Path, target_bytes: int = 50_000_000, *, seed: int = 0, first_task: int = 10_000) -> int:
    """A JSON array of clean tau_retail-shaped records, streamed to `path` until it holds at least
    `target_bytes`; returns the number of records. Ids (with the tau_retail registry entry) are
    `tau-{first_task + i // 4}-trial{i % 4}` for record i, so they do not collide with results.json's
    (it can sit next to it, e.g. tau_retail/big.json). Reward 1.0 on exactly the successful trials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = Random(f"{seed}:big")
    world = _RetailWorld(rng)
    count = written = 0
    with path.open("wb") as out:
        out.write(b"[\n")
        written = 2
        task_id = first_task
        while written < target_bytes:
            t = _tau_task(world, rng, task_id)
            for trial in range(4):
                record, _, _ = _tau_trial(world, t, trial, rng)
                data = (b",\n" if count else b"") + orjson.dumps(record)
                out.write(data)
                written += len(data)
                count += 1
            task_id += 1
        out.write(b"\n]\n")
    return count


# --- B: AgentInstruct-style WebShop ReAct corpus --------------------------------------------------

# noun, attribute words, option axes
_SHOP: list[tuple[str, list[str], dict[str, list[str]]]] = [
    ("running shoes", ["lightweight", "breathable", "non slip", "mesh"],
     {"color": ["black", "navy blue", "grey", "white"], "size": ["7", "8", "8.5", "9", "10", "11"]}),
    ("hair extensions", ["clip in", "natural looking", "long", "straight"],
     {"color": ["#1b natural black", "#6 medium brown", "#613 blonde"], "size": ["16 inch", "20 inch", "24 inch"]}),
    ("phone case", ["shockproof", "slim", "clear", "magnetic"],
     {"color": ["clear", "black", "purple"], "size": ["iphone 14", "iphone 14 pro", "galaxy s23"]}),
    ("yoga mat", ["non slip", "extra thick", "eco friendly"],
     {"color": ["teal", "purple", "black"], "size": ["68x24 inch", "72x26 inch"]}),
    ("wireless earbuds", ["noise cancelling", "waterproof", "long battery life"], {"color": ["black", "white"]}),
    ("coffee beans", ["organic", "dark roast", "whole bean"],
     {"size": ["12 ounce", "2 pound"], "flavor name": ["french roast", "espresso", "colombian"]}),
    ("throw pillow covers", ["velvet", "set of 4", "decorative"],
     {"color": ["sage green", "mustard", "navy"], "size": ["18x18 inch", "20x20 inch"]}),
    ("men's hoodie", ["fleece", "pullover", "machine wash"],
     {"color": ["heather grey", "black", "forest green"], "size": ["small", "medium", "large", "x-large"]}),
    ("led desk lamp", ["dimmable", "usb charging", "eye caring"], {"color": ["black", "white", "silver"]}),
    ("dog bed", ["orthopedic", "washable", "calming"], {"size": ["medium", "large"], "color": ["grey", "brown"]}),
]
_BRANDS = ["Zeta", "Nordik", "PureStep", "Lumina", "Kaptin", "Verdo", "Orla", "TrekFit", "Haven&Co", "Bluebird",
           "Amberly", "Corewell"]

WEBSHOP_PROMPT = {
    "bracket": "You are web shopping.\nI will give you instructions about what to do.\nYou have to follow the "
               "instructions.\nEvery round I will give you an observation and a list of available actions, you have "
               "to respond an action based on the state and instruction.\nYou can use search action if search is "
               "available.\nYou can click one of the buttons in clickables.\nAn action should be of the following "
               "structure:\nsearch[keywords]\nclick[value]\nIf the action is not valid, perform nothing.\nKeywords in "
               "search are up to you, but the value in click must be a value in the list of available actions.\n"
               "Remember that your keywords in search should be carefully designed.\nYour response should use the "
               "following format:\n\nThought: I think ...\nAction: click[something]\n\nWhen you have bought the item, "
               "reply with Action: finish[what you bought].",
    "call": "You are a shopping assistant operating a web store through two tools: search(query=\"...\") and "
            "click(target=\"...\"). Answer every observation with a line 'Thought: ...' and a line "
            "'Action: tool(argument=\"value\")'. When done, answer with 'Final Answer: ...'.",
    "langchain": "Answer the following questions as best you can. You have access to the following tools:\n\n"
                 "search: Search the store. Input: {\"query\": string}\nclick: Click a button or product id on the "
                 "current page. Input: {\"target\": string}\n\nUse the following format:\n\nQuestion: the input "
                 "question you must answer\nThought: you should always think about what to do\nAction: the action to "
                 "take, should be one of [search, click]\nAction Input: the input to the action\nObservation: the "
                 "result of the action\n... (this Thought/Action/Action Input/Observation can repeat N times)\n"
                 "Thought: I now know the final answer\nFinal Answer: the final answer to the original input "
                 "question\n\nBegin!",
}


def webshop_tools() -> list[dict[str, Any]]:
    return [
        _fn("search", "Search the store for products matching the keywords; returns a page of results.",
            {"query": _s("Search keywords, e.g. 'blue running shoes'.")}, ["query"]),
        _fn("click", "Click a button on the current page: a product id (e.g. 'B09QKP7XQL'), an option value, "
            "'Buy Now', '< Prev', 'Next >', 'Back to Search', 'Description', 'Features' or 'Reviews'.",
            {"target": _s("The button's text or the product id.")}, ["target"]),
    ]


def _asin(rng: Random) -> str:
    return "B0" + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=8))


@dataclass
class _Product:
    asin: str
    title: str
    price: float
    options: dict[str, list[str]]


class _Shop:
    def __init__(self, rng: Random, noun: str, attrs: list[str], axes: dict[str, list[str]], limit: float) -> None:
        self.rng, self.noun = rng, noun
        self.products = [
            _Product(_asin(rng), f"{rng.choice(_BRANDS)} {' '.join(rng.sample(attrs, 2)).title()} "
                                 f"{noun.title()} {rng.choice(['for Women', 'for Men', 'Unisex', '2024', 'Pro'])}",
                     round(rng.uniform(limit * 0.4, limit * 1.4), 2),
                     {k: rng.sample(v, min(len(v), rng.randint(2, 4))) for k, v in axes.items()})
            for _ in range(20)
        ]

    def results(self, page: int) -> str:
        shown = self.products[(page - 1) * 10: page * 10]
        nav = "[Back to Search] [SEP] " + ("[< Prev] [SEP] " if page > 1 else "")
        return (nav + f"Page {page} (Total results: 50) [SEP] [Next >] [SEP] "
                + " [SEP] ".join(f"{p.asin} [SEP] {p.title} [SEP] ${p.price:.2f}" for p in shown))

    def item(self, p: _Product, clicked: str | None = None) -> str:
        opts = " [SEP] ".join(f"{k} [SEP] " + " [SEP] ".join(v) for k, v in p.options.items())
        lead = f"You have clicked {clicked}. [SEP] " if clicked else ""
        return (f"{lead}[Back to Search] [SEP] [< Prev] [SEP] {opts} [SEP] {p.title} [SEP] Price: ${p.price:.2f} "
                "[SEP] Rating: N.A. [SEP] [Description] [SEP] [Features] [SEP] [Reviews] [SEP] [Buy Now]")

    def detail(self, p: _Product, tab: str) -> str:
        text = {"Description": f"The {p.title} is made for everyday use. Quality materials, carefully finished, "
                               f"and backed by a 30-day return policy. Dimensions and care instructions on the label.",
                "Features": f"- {self.noun.title()} built to last\n- Easy to clean\n- Ships in eco-friendly packaging",
                "Reviews": "4.3 out of 5 stars [SEP] \"Exactly as described, would buy again.\" [SEP] \"Runs a bit "
                           "small.\" [SEP] \"Good value for the price.\""}[tab]
        return f"[Back to Search] [SEP] [< Prev] [SEP] {text}"


_THOUGHTS = {
    "first_search": ["I need to search for the product first.", "Let me start with a search.",
                     "I'll search using the key attributes from the instruction."],
    "search": ["I need to search for the product first.", "Let me refine the search with more specific keywords.",
               "These results do not match well; I'll search again."],
    "product": ["{asin} looks relevant and is under the price limit. Let me check it.",
                "The item {asin} seems to match the attributes. I'll open it.",
                "I should look at {asin}."],
    "tab": ["Let me read the {tab} to check the attributes.", "I want to verify the {tab} before buying."],
    "prev": ["This is not quite what I need. Going back.", "I'll go back to the results."],
    "next": ["None of these fit. Let me look at the next page."],
    "back": ["I should start a new search."],
    "option": ["I need to select {opt}.", "The instruction asks for {opt}, so I click it."],
    "buy": ["Everything matches the instruction. I'll buy it.", "Options are set; buying now."],
}


def _webshop_record(rng: Random, n: int, style: str, unparsed: bool) -> tuple[dict[str, Any], RecordTruth]:
    noun, attrs, axes = rng.choice(_SHOP)
    limit = float(rng.choice([30, 40, 50, 60, 80, 100]))
    shop = _Shop(rng, noun, attrs, axes, limit)
    target = shop.products[rng.randrange(10)]
    wanted = {k: rng.choice(v) for k, v in target.options.items()}
    want_attrs = rng.sample(attrs, 2)
    instruction = (f"i need {want_attrs[0]} and {want_attrs[1]} {noun} with "
                   + ", and ".join(f"{k}: {v}" for k, v in wanted.items())
                   + f", and price lower than {limit:.2f} dollars")
    # the plan: (tool, argument, observation, thought)
    plan: list[tuple[str, str, str, str]] = []

    def act(tool: str, arg: str, obs: str, kind: str, **fmt: str) -> None:
        plan.append((tool, arg, obs, rng.choice(_THOUGHTS[kind]).format(**fmt)))

    act("search", f"{want_attrs[0]} {noun}", shop.results(1), "first_search")
    for _ in range(rng.randint(2, 3)):  # open a product, read a tab, go back twice
        p = rng.choice(shop.products[:10])
        act("click", p.asin, shop.item(p), "product", asin=p.asin)
        tab = rng.choice(["Description", "Features", "Reviews"])
        act("click", tab, shop.detail(p, tab), "tab", tab=tab.lower())
        act("click", "< Prev", shop.item(p), "prev")
        act("click", "< Prev", shop.results(1), "prev")
    if rng.random() < 0.5:
        act("click", "Next >", shop.results(2), "next")
        act("click", "Back to Search", f"WebShop [SEP] Instruction: [SEP] {instruction} [SEP] Search", "back")
        refined = f"{want_attrs[1]} {want_attrs[0]} {noun} {next(iter(wanted.values()))}"
        act("search", refined, shop.results(1), "search")
    graded = rng.random() < 0.7
    good = rng.random() < 0.55
    # a failure buys another product (with whatever options it has) or runs out of steps
    bought = target if good else rng.choice([x for x in shop.products if x is not target])
    act("click", bought.asin, shop.item(bought), "product", asin=bought.asin)
    ran_out = not good and rng.random() < 0.3
    picks = wanted if good else {k: rng.choice(bought.options[k]) for k in wanted}
    for opt in picks.values():
        act("click", opt, shop.item(bought, clicked=opt), "option", opt=opt)
    while len(plan) < 15:  # browse the reviews until the transcript is long enough
        act("click", "Reviews", shop.detail(bought, "Reviews"), "tab", tab="reviews")
        act("click", "< Prev", shop.item(bought), "prev")
    if not ran_out:
        opts = ", ".join(picks.values())
        act("click", "Buy Now", f"Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in "
            f"your MTurk interface.) [SEP] Purchased [SEP] asin [SEP] {bought.asin} [SEP] options [SEP] {opts}",
            "buy")
    if good:
        reward = rng.choice([1.0, 1.0, 0.75])
    elif ran_out:
        reward = 0.0
    else:
        reward = rng.choice([0.0, 0.25, 0.5, 2 / 3])

    turns = [{"from": "human", "loss": None, "value": f"{WEBSHOP_PROMPT[style]}\n\nWebShop [SEP] Instruction: "
              f"[SEP] {instruction} [SEP] Search" if style != "langchain" else
              f"{WEBSHOP_PROMPT[style]}\n\nQuestion: {instruction}"}]
    bad_at = rng.randrange(2, len(plan) - 2) if unparsed else -1
    for i, (tool, arg, obs, thought) in enumerate(plan):
        if i == bad_at:
            turns.append({"from": "gpt", "loss": True,
                          "value": "Thought: I am not sure which button leads to the options.\nAction: ???"})
            turns.append({"from": "human", "loss": None,
                          "value": "Invalid action! Reply with one Thought line and one valid Action line."})
        if style == "bracket":
            action = f"Action: {tool}[{arg}]"
        elif style == "call":
            action = f'Action: {tool}({"query" if tool == "search" else "target"}="{arg}")'
        else:
            action = f"Action: {tool}\nAction Input: " + json.dumps({"query" if tool == "search" else "target": arg})
        turns.append({"from": "gpt", "loss": True, "value": f"Thought: {thought}\n{action}"})
        turns.append({"from": "human", "loss": None, "value": f"Observation: {obs}"})
    summary = (f"I could not find a {noun} that matches every requirement within the step budget." if ran_out else
               f"I bought {bought.title} ({', '.join(picks.values())}) for ${bought.price:.2f}.")
    if style == "bracket" and rng.random() < 0.85:
        final = f"Thought: I have completed the task.\nAction: finish[{summary}]"
    else:
        final = f"Thought: I now know the final answer.\nFinal Answer: {summary}"
    turns.append({"from": "gpt", "loss": True, "value": final})
    rid = f"webshop_{n}"
    record: dict[str, Any] = {"id": rid, "conversations": turns}
    if graded:
        record["reward"] = reward
    truth = RecordTruth(rid, (reward >= WEBSHOP_SUCCESS) if graded else None, reward if graded else None,
                        len(turns), len(plan), len(plan), int(unparsed), tools=("click", "search"),
                        agent_version="agentinstruct-v1")
    return record, truth


def _write_webshop(root: Path, seed: int, scale: float) -> tuple[Path, Path, Expected]:
    rng = Random(f"{seed}:{WEBSHOP}")
    n = max(6, round(100 * scale))
    truths: list[RecordTruth] = []
    lines = []
    unparsed_at = {5, n // 3 + 5, 2 * n // 3 + 5} if n >= 40 else {1, 3}
    for i in range(n):
        style = "langchain" if i % 40 == 13 else "call" if i % 20 == 7 else "bracket"
        record, truth = _webshop_record(rng, i, style, unparsed=i in unparsed_at and style == "bracket")
        lines.append(orjson.dumps(record))
        truths.append(truth)
    path = root / WEBSHOP / "webshop.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6, mtime=0))
    catalog_path = root / "catalogs" / "webshop_tools.json"
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    catalog_path.write_text(json.dumps(webshop_tools(), indent=2) + "\n")
    return path, catalog_path, _expected(truths, [], may_train=True, called={"search", "click"})


# --- C: ops agent runs, a zstd JSON object keyed by run id -----------------------------------------

_SERVICES = ["checkout-api", "payments-svc", "search-indexer", "auth-gateway", "cart-svc", "notifications-worker",
             "inventory-svc", "media-edge"]
_HOSTS = ["db-3.prod.internal", "kafka-2.prod.internal", "ci-runner-7.internal", "logs-1.prod.internal"]
_OPERATORS = ["maria.keller@acme.io", "dev.patel@acme.io", "t.nakamura@acme.io", "sam.oconnor@acme.io",
              "l.fernandes@acme.io"]


def ops_tools(tool_set: str) -> list[dict[str, Any]]:
    svc = _s("Service name, e.g. 'checkout-api'.")
    read = [
        _fn("get_alerts", "List firing alerts, optionally for one service.", {"service": svc}, []),
        _fn("query_metrics", "Query a metric for a service over a time window.",
            {"service": svc, "metric": _s("Metric, e.g. 'error_rate', 'p99_latency_ms', 'memory_mb'."),
             "window": _s("Window, e.g. '15m', '1h'.")}, ["service", "metric"]),
        _fn("search_logs", "Search recent log lines of a service.",
            {"service": svc, "query": _s("Search text or regex."), "since": _s("e.g. '30m'.")},
            ["service", "query"]),
        _fn("list_deployments", "Recent deployments of a service, newest first.", {"service": svc}, ["service"]),
        _fn("page_oncall", "Page the on-call engineer of a team.",
            {"team": _s("Team, e.g. 'payments'."), "reason": _s("Why.")}, ["team", "reason"]),
    ]
    if tool_set == "readonly":
        return read
    write = [
        _fn("rollback_deployment", "Roll a service back to an earlier version.",
            {"service": svc, "to_version": _s("Version, e.g. 'v2.14.0'.")}, ["service", "to_version"]),
        _fn("restart_service", "Rolling restart of a service.",
            {"service": svc, "environment": _s("Environment.", enum=["prod", "staging"])}, ["service"]),
        _fn("run_runbook", "Run an automated runbook against a target.",
            {"runbook_id": _s("Runbook id, e.g. 'RB-017'."), "target": _s("Host or service.")},
            ["runbook_id", "target"]),
        _fn("create_incident", "Open an incident record.",
            {"title": _s("Title."), "severity": _s("Severity.", enum=["SEV1", "SEV2", "SEV3"])},
            ["title", "severity"]),
    ]
    if tool_set == "v3.1":
        return read + write
    return read + write + [
        _fn("scale_deployment", "Set the replica count of a service.",
            {"service": svc, "replicas": {"type": "integer", "minimum": 1, "maximum": 50}}, ["service", "replicas"]),
        _fn("post_status_update", "Post an update to the public status page for an incident.",
            {"incident_id": _s("Incident id, e.g. 'INC-2041'."), "message": _s("Update text.")},
            ["incident_id", "message"]),
    ]


_LOG_LINES = {
    "bad_deploy": ["NullPointerException in OrderMapper.map", "500 POST /v1/checkout: KeyError 'currency'"],
    "memory_leak": ["java.lang.OutOfMemoryError: Java heap space", "GC overhead limit exceeded"],
    "disk_full": ["No space left on device", "logrotate: error writing /var/log/app/app.log.1"],
    "traffic_spike": ["timeout after 30000ms waiting for connection", "upstream connect error or disconnect/reset "
                      "before headers", "rate limiter: queue full, shedding request"],
}
_OPS_SYSTEM = ("You are ops-bot, the on-call assistant of the platform team. Investigate alerts with the read "
               "tools first. Never run a write action (rollback, restart, runbook, scaling) without the operator's "
               "explicit approval. When you cannot fix something, page the owning team.")


def _ops_run(rng: Random, n: int, tool_set: str, *, bad_args: bool) -> tuple[dict[str, Any], _Chat, bool | None]:
    chat = _Chat(rng, function_call_key=False)
    tools = ops_tools(tool_set)
    allowed = {t["function"]["name"] for t in tools}
    kind = rng.choice(["bad_deploy", "memory_leak", "disk_full", "traffic_spike"])
    svc = rng.choice(_SERVICES)
    host = rng.choice(_HOSTS)
    target = host if kind == "disk_full" else svc
    minor = rng.randint(3, 30)
    version, previous = f"v2.{minor}.{rng.randint(0, 9)}", f"v2.{minor - 1}.{rng.randint(0, 9)}"
    operator = rng.choice(_OPERATORS)
    alert = {
        "bad_deploy": f"[FIRING] {svc}: 5xx error rate {rng.uniform(5, 30):.1f}% (threshold 2%) for 10m",
        "memory_leak": f"[FIRING] {svc}: pods OOMKilled, {rng.randint(3, 12)} restarts in 30m",
        "disk_full": f"[FIRING] {host}: disk /var usage {rng.randint(93, 99)}%",
        "traffic_spike": f"[FIRING] {svc}: p99 latency {rng.uniform(1.5, 6):.1f}s (SLO 800ms)",
    }[kind]
    chat.add("developer" if tool_set != "v3.1" and rng.random() < 0.5 else "system", _OPS_SYSTEM)
    page = f"PagerDuty page: {alert}. I'm {operator.split('@')[0]}, on call tonight. Can you take a look?"
    chat.add("user", [{"type": "text", "text": page}] if rng.random() < 0.3 else page)
    chat.calls(("get_alerts", {"service": svc}, json.dumps([{"alert": alert, "since": "2025-03-04T02:11:00Z",
                                                              "labels": {"team": svc.split("-")[0], "env": "prod"}}])),
               text="Looking at the firing alerts first.")
    metric = {"bad_deploy": "error_rate", "memory_leak": "memory_mb", "disk_full": "disk_used_pct",
              "traffic_spike": "p99_latency_ms"}[kind]
    series = sorted(round(rng.uniform(10, 100), 1) for _ in range(6))  # getting worse
    metric_args: dict[str, Any] | str = {"service": target, "metric": metric, "window": "1h"}
    if bad_args:  # a Python dict's repr where JSON was due (the team's logger used str())
        metric_args = str({"service": target, "metric": metric, "window": "1h"})
    logs = json.dumps({"lines": [f"2025-03-04T02:1{i}:0{i}Z ERROR {target} "
                                 + rng.choice(_LOG_LINES[kind])
                                 for i in range(rng.randint(2, 5))]})
    if rng.random() < 0.5:
        chat.calls(("query_metrics", metric_args, json.dumps({"metric": metric, "points": series})),
                   ("search_logs", {"service": target, "query": "ERROR", "since": "30m"}, logs))
    else:
        chat.calls(("query_metrics", metric_args, json.dumps({"metric": metric, "points": series})))
        chat.calls(("search_logs", {"service": target, "query": "ERROR", "since": "30m"}, logs))
    chat.calls(("list_deployments", {"service": svc}, json.dumps([
        {"version": version, "deployed_at": "2025-03-04T01:58:00Z", "by": "ci"},
        {"version": previous, "deployed_at": "2025-03-01T15:20:00Z", "by": "ci"}])))
    fix: tuple[str, dict[str, Any]] | None = {
        "bad_deploy": ("rollback_deployment", {"service": svc, "to_version": previous}),
        "memory_leak": ("restart_service", {"service": svc, "environment": "prod"}),
        "disk_full": ("run_runbook", {"runbook_id": "RB-017", "target": host}),
        "traffic_spike": ("scale_deployment", {"service": svc, "replicas": rng.choice([8, 10, 12])})
        if "scale_deployment" in allowed else ("run_runbook", {"runbook_id": "RB-031", "target": svc}),
    }[kind]
    if fix[0] not in allowed:
        fix = None
    diagnosis = {"bad_deploy": f"The errors started right after {version} was deployed at 01:58.",
                 "memory_leak": "Memory grows steadily until the pods are OOMKilled: looks like a leak.",
                 "disk_full": f"/var on {host} is nearly full, mostly rotated logs.",
                 "traffic_spike": "Traffic is about 3x normal and latency follows it."}[kind]
    roll = rng.random()
    if fix is None:  # read-only deployment: it can only diagnose and page
        chat.say(f"{diagnosis} I don't have write tools in this deployment, so I'll page the owning team.")
        chat.add("user", "ok, do that")
        chat.calls(("page_oncall", {"team": svc.split("-")[0], "reason": alert}, json.dumps({"paged": True})))
        chat.say("The team has been paged. I'll stay on the thread.")
        chat.add("user", "thanks")
        success: bool | None = False if roll < 0.6 else None
    else:
        name, args = fix
        chat.say(f"{diagnosis} I propose to run {name} with {json.dumps(args)}. Approve?")
        chat.add("user", rng.choice(["approved", "yes go ahead", "ok, do it", "Approved. Be careful."]))
        chat.calls((name, args, json.dumps({"status": "ok", "started_at": "2025-03-04T02:24:00Z"})))
        fixed = roll < 0.65
        after = [round(rng.uniform(1, 9), 1) for _ in range(3)] if fixed else series[-3:]
        chat.calls(("query_metrics", {"service": target, "metric": metric, "window": "15m"},
                    json.dumps({"metric": metric, "points": after})))
        if fixed:
            chat.say(f"{metric} is back to normal after the {name}.")
            if "create_incident" in allowed and rng.random() < 0.6:
                incident = f"INC-{rng.randint(1000, 9999)}"
                chat.calls(("create_incident", {"title": alert[10:80], "severity": "SEV3"},
                            json.dumps({"incident_id": incident})))
                if "post_status_update" in allowed:
                    chat.calls(("post_status_update", {"incident_id": incident, "message": f"{svc} degraded, "
                                "mitigated; monitoring."}, json.dumps({"posted": True})))
            chat.add("user", "great, thanks!")
            chat.say("You're welcome. I'll close the page.")
            success = True
        elif roll < 0.9:
            chat.say(f"{metric} has not recovered. I'll page the owning team.")
            chat.calls(("page_oncall", {"team": svc.split("-")[0], "reason": f"{alert}; {name} did not help"},
                        json.dumps({"paged": True})))
            chat.say("Paged. Sorry I couldn't fix it.")
            success = False
        else:  # the operator left mid-run: nobody judged it
            chat.say("The metric has not recovered yet. Should I wait and re-check, or page the team?")
            success = None
    start = 1_741_053_600 + n * 3607 + rng.randint(0, 1800)
    record = {
        "messages": chat.messages,
        "outcome": {"success": success, **({"verified_by": "human"} if success is not None else {})},
        "agent": {"name": "ops-bot", "version": 3.1 if tool_set == "v3.1" else "3.2"},
        "tools": tools,
        "operator": operator,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "ended_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 60 * rng.randint(4, 45))),
        "environment": "prod",
    }
    return record, chat, success


def _write_ops(root: Path, seed: int, scale: float) -> tuple[Path, Expected]:
    rng = Random(f"{seed}:{OPS}")
    n = max(4, round(100 * scale))
    bad_args_at = n // 3
    runs: dict[str, Any] = {}
    truths, bad, called = [], [], set()
    for i in range(n):
        key = f"run-{i + 1:04d}"
        if i == n - 1:  # the exporter was killed mid-run: no messages were flushed
            runs[key] = {"outcome": {"success": None}, "agent": {"name": "ops-bot", "version": "3.2"},
                         "tools": ops_tools("full"), "operator": rng.choice(_OPERATORS),
                         "started_at": "2025-03-08T23:59:12Z", "environment": "prod"}
            bad.append(BadRecord(i, key, "missing_required_field"))
            continue
        tool_set = rng.choices(["full", "v3.1", "readonly"], [60, 25, 15])[0]
        record, chat, success = _ops_run(rng, i, tool_set, bad_args=i == bad_args_at)
        runs[key] = record
        if i == bad_args_at:
            bad.append(BadRecord(i, key, "invalid_tool_arguments"))
            continue
        truths.append(RecordTruth(key, success, None, len(chat.messages), chat.tool_calls, chat.tool_results,
                                  tools=tuple(sorted(t["function"]["name"] for t in record["tools"])),
                                  agent_version=str(record["agent"]["version"])))
        called |= chat.called
    path = root / OPS / "runs.json.zst"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(runs)
    if zstandard is None:
        raise RuntimeError("ops_agent/runs.json.zst needs the zstandard package (pip install zstandard)")
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return path, _expected(truths, bad, may_train=None, called=called)


# --- the registry ---------------------------------------------------------------------------------


def registry_yaml(root: Path) -> str:
    """The source registry for the files `write_external_logs(root)` writes (catalog paths are
    relative to root/sources.yaml, `match` globs relative to root, the landing folder)."""
    del root  # every path in it is relative
    return f"""\
# Sources of external agent logs (written by tests/external_logs.py).
version: 1
sources:
  {TAU}:
    description: "tau-bench retail results: a JSON array of trials, task_id x trial, reward only"
    match: "{TAU}/*.json"
    format: openai_chat
    container: auto
    compression: auto
    mapping: {{messages: traj, task_type: info.domain, goal: info.task.instruction, reward: reward}}
    id: {{template: "tau-{{task_id}}-trial{{trial}}"}}
    coerce: {{reward: number}}
    outcome: {{success_threshold: 1.0, verified_by: environment}}
    constants: {{agent_name: tau-retail-agent, agent_version: {TAU_AGENT_VERSION}, tenant: retail-cx}}
    tool_catalog: catalogs/tau_retail_tools.json
    consent: {{may_train: true, scope: training}}
    react_in_chat: false
  {WEBSHOP}:
    description: "AgentInstruct-style WebShop ReAct transcripts (ShareGPT turns), graded reward on some"
    match: "{WEBSHOP}/*.jsonl.gz"
    format: openai_chat
    container: jsonl
    compression: gzip
    mapping:
      messages: conversations
      message_role: from
      message_content: value
      roles: {{human: user, gpt: assistant}}
      reward: reward
    outcome: {{success_threshold: {WEBSHOP_SUCCESS}, verified_by: environment}}
    constants: {{agent_name: webshop-react, agent_version: agentinstruct-v1, tenant: research, task_type: webshop}}
    tool_catalog: catalogs/webshop_tools.json
    consent: {{may_train: true, scope: training}}
    react_in_chat: true
  {OPS}:
    description: "ops-bot incident runs: one JSON object keyed by run id, tools in each run"
    match: "{OPS}/*.json.zst"
    format: openai_chat
    container: json_object
    compression: auto
    mapping:
      messages: messages
      tools: tools
      success: outcome.success
      verified_by: outcome.verified_by
      agent_name: agent.name
      agent_version: agent.version
      user_id: operator
      started_at: started_at
      ended_at: ended_at
    coerce: {{agent_version: string}}
    constants: {{tenant: platform-sre, task_type: incident_response}}
    react_in_chat: false
"""


def write_external_logs(root: Path, *, seed: int = 0, scale: float = 1.0) -> ExternalLogs:
    """Write the three sources, their catalogs and root/sources.yaml; return them with the truth."""
    started = time.perf_counter()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tau_path, tau_catalog, tau = _write_tau(root, seed, scale)
    shop_path, shop_catalog, shop = _write_webshop(root, seed, scale)
    ops_path, ops = _write_ops(root, seed, scale)
    registry = root / "sources.yaml"
    registry.write_text(registry_yaml(root))
    return ExternalLogs(
        root=root,
        paths={TAU: tau_path, WEBSHOP: shop_path, OPS: ops_path},
        catalogs={TAU: tau_catalog, WEBSHOP: shop_catalog},
        registry=registry,
        expected={TAU: tau, WEBSHOP: shop, OPS: ops},
        seconds=time.perf_counter() - started,
    )


__all__ = ["BadRecord", "Expected", "ExternalLogs", "RecordTruth", "registry_yaml", "tau_retail_tools",
           "webshop_tools", "ops_tools", "write_big_array", "write_external_logs"]
