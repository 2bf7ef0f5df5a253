"""The simulated end user: what they know (`user_facts`) and what they type.

Separate from the scripted agent because a sandbox evaluation needs the same user facing
a model: the facts are derived from the task spec alone (its env seed and user seed), so
the spec itself carries no personal data while every PII value the user types can be
regenerated, and listed as ground truth (`pii_values`).
"""

from __future__ import annotations

import string
from random import Random
from typing import Any

from pipeline.simulator.env import start_state, street_address

# Opening messages per task type; `{placeholders}` are user facts. The template id in a
# task spec is "<task_type>/<index>" into these tuples.
OPENINGS: dict[str, tuple[str, ...]] = {
    "order_status": (
        "Hi, where is my order {order_id}? It's been over a week.",
        "Hello, this is {name}. Could you check the status of order {order_id}? My email is {email}.",
        "hey my package still hasn't arrived, can you track it for me?",
        "Hi there, I placed order {order_id} and haven't received anything yet. Account email {email}, phone {phone}.",
    ),
    "refund": (
        "Hi, the {item} in order {order_id} arrived broken. I'd like a refund for it.",
        "Hello, I'm {name} ({email}). The {item} from order {order_id} was damaged. Can I get my money back? "
        "You can send it to my bank account {iban}.",
        "My {item} came cracked. I want a refund please, it was paid with my card {card}.",
    ),
    "address_change": (
        "Hi, I'm moving! Can you ship order {order_id} to {new_address} instead?",
        "Hello, {name} here. Please change the delivery address on my order to {new_address}. Email is {email}.",
        "I entered the wrong address for order {order_id}. The right one is {new_address}.",
    ),
    "kb_question": (
        "Hi, can you tell me about {topic}?",
        "Hello, {name} here. Quick question regarding {topic}.",
        "what's your info on {topic}",
    ),
    "cancellation": (
        "Please cancel order {order_id}, I found it cheaper elsewhere.",
        "Hi, {name} here ({email}). I'd like to cancel my order {order_id} before it ships.",
        "I don't need my last order anymore, can you cancel it?",
    ),
    "fraud_report": (
        "Someone used my card {card} for purchases I didn't make! I also got a login alert from {ip_address}.",
        "Hi, I'm {name}. There's a charge on my account I don't recognise and a sign-in from IP {ip_address}. "
        "My email is {email}.",
    ),
    "account_deletion": (
        "Please delete my account and all my personal data. I'm {name}, SSN {national_id} if you need to verify.",
        "Hi, under GDPR I want my account at {email} erased.",
    ),
    "subscription_pause": (
        "Hi, can I pause my coffee subscription for {weeks} weeks? I'm travelling.",
        "Hello, {name} here ({email}). Please pause the bean subscription for {weeks} weeks.",
    ),
}

# What the user says when the agent asks for a missing fact.
ANSWERS = {
    "email": "my email is {email}",
    "order_id": "the order number is {order_id}",
}
SECRET_SENTENCES = {
    "API_KEY": " Also, our store integration fails with API key {secret}, was it revoked?",
    "TOKEN": " Also my app sends 'Authorization: Bearer {secret}' and gets 401 errors.",
    "PASSWORD": " And I can't log in either, my password is {secret} and it says invalid.",
}
# Which facts are personal data, and of which entity type.
PII_FACTS = {
    "name": "PERSON", "email": "EMAIL", "phone": "PHONE", "address": "STREET_ADDRESS",
    "new_address": "STREET_ADDRESS", "card": "CREDIT_CARD", "iban": "IBAN",
    "national_id": "NATIONAL_ID", "ip_address": "IP_ADDRESS",
}
SECRET_RATE = 0.06


def user_facts(spec: dict[str, Any]) -> dict[str, str]:
    """Everything the user can say, as text, derived from the spec's seeds alone."""
    params = spec["params"]
    c = start_state(spec["env_seed"])["customers"][params["customer_id"]]
    rng = Random(f"user:{spec['user_seed']}")
    facts = {k: str(v) for k, v in params.items()}
    facts |= {
        "name": c["name"],
        "email": c["email"],
        "phone": c["phone"],
        "address": c["address"],
        "card": _typed_card(rng, c["card_number"]),
        "iban": _typed_iban(rng, iban(rng)),
        "national_id": f"{rng.randrange(100, 666)}-{rng.randrange(10, 100)}-{rng.randrange(1000, 10000)}",
        "ip_address": ".".join(map(str, (rng.choice((45, 77, 91, 103, 185, 197)), *rng.sample(range(1, 255), 3)))),
        "new_address": _new_address(rng, c["address"]),
    }
    if rng.random() < SECRET_RATE:
        kind = rng.choice(tuple(SECRET_SENTENCES))
        facts |= {"secret_kind": kind, "secret": _secret(rng, kind)}
    return facts


def opening(spec: dict[str, Any], facts: dict[str, str]) -> str:
    text = OPENINGS[spec["task_type"]][template_index(spec)].format(**facts)
    if "secret" in facts:
        text += SECRET_SENTENCES[facts["secret_kind"]].format(**facts)
    return text


def mentioned(spec: dict[str, Any]) -> set[str]:
    """Facts the opening message states."""
    template = OPENINGS[spec["task_type"]][template_index(spec)]
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def answer(wanted: list[str], facts: dict[str, str], rng: Random) -> str:
    """Reply to the agent asking for `wanted` facts; sometimes volunteers a phone number."""
    parts = [ANSWERS[w].format(**facts) for w in wanted]
    reply = rng.choice(("Sure, ", "Ok, ", "Yes - ", "")) + " and ".join(parts) + "."
    if rng.random() < 0.3:
        reply += f" You can also call me at {facts['phone']}."
    return reply[0].upper() + reply[1:]


def pii_values(facts: dict[str, str]) -> list[tuple[str, str]]:
    """(entity_type, exact text) of every personal or secret value this user may type."""
    values = [(kind, facts[key]) for key, kind in PII_FACTS.items()]
    if "secret" in facts:
        values.append((facts["secret_kind"], facts["secret"]))
    return values


def template_index(spec: dict[str, Any]) -> int:
    return int(spec["template_id"].rsplit("/", 1)[1])


# -- value generators ---------------------------------------------------------------------


def iban(rng: Random) -> str:
    """A German IBAN with valid mod-97 check digits."""
    bban = "".join(rng.choices(string.digits, k=18))
    check = 98 - int(bban + "131400") % 97  # "DE00" moved to the end, letters as numbers
    return f"DE{check:02d}{bban}"


def _typed_iban(rng: Random, value: str) -> str:
    return value if rng.random() < 0.5 else " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def _typed_card(rng: Random, number: str) -> str:
    sep = rng.choice(("", " ", "-"))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _new_address(rng: Random, current: str) -> str:
    while (candidate := street_address(rng)) == current:
        pass
    return candidate


_ALNUM = string.ascii_letters + string.digits


def _secret(rng: Random, kind: str) -> str:
    if kind == "API_KEY":
        return "sk-" + "".join(rng.choices(_ALNUM, k=40))
    if kind == "TOKEN":
        body = "".join(rng.choices(_ALNUM + "-_", k=60))
        return f"eyJhbGciOiJIUzI1NiJ9.{body[:36]}.{body[36:]}"
    word = rng.choice(("Bluebird", "Sunflower", "Kestrel", "Marmalade", "Tangerine"))
    return f"{word}{rng.choice('#!$%*')}{rng.randrange(1000, 10000)}"
