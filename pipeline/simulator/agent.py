"""A scripted support agent with tunable failure modes, run against `SupportEnv`.

It follows a per-task plan of tool calls (the "right" way), then lets `AgentProfile`
inject the mistakes real agents make: wrong tools, malformed or plausible-but-wrong
arguments, skipped identity checks, giving up, escalating; the environment side adds
tool errors and time-outs. The outcome is never decided here: `check_success` judges the
final environment state, exactly as it will for a model evaluated in the sandbox.
Reasoning text never contains personal data, so PII ground truth is only what the user
typed and what tools returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from pipeline.core.record import Outcome, Step, ToolCall
from pipeline.simulator import user
from pipeline.simulator.env import SupportEnv, ToolResult
from pipeline.simulator.tasks import TaskSpec, check_success, replay

SYSTEM_PROMPT = (
    "You are the customer-support assistant of Brewline, an online shop for coffee equipment. "
    "Verify the customer with lookup_customer (by the email they give) before discussing or changing "
    "their account or orders. Refunds go to the original payment method. Never ask for full card "
    "numbers or passwords. Send suspected fraud to a human with escalate_to_human."
)
REQUEST_PARAMS = {"temperature": 0.2, "max_tokens": 1024}
TIMEOUT_MS = 30000.0


@dataclass(frozen=True)
class AgentProfile:
    """Per-episode (or per-call) probabilities of each failure mode."""

    wrong_tool: float = 0.05  # calls an unfitting read-only tool once, reads the error, corrects
    wrong_arguments: float = 0.07  # per call: malformed arguments the env rejects
    silent_wrong_arguments: float = 0.06  # per action: plausible wrong arguments the env accepts
    skip_verification: float = 0.05  # order tasks: acts without verifying the customer
    tool_error: float = 0.04  # per call, env side: transient 5xx
    timeout: float = 0.03  # per call, env side: time-out
    retry: float = 0.8  # after a failed call, try again (else give up)
    max_retries: int = 2
    escalate_on_give_up: float = 0.5  # giving up hands over to a human (else apologises)
    spontaneous_escalation: float = 0.03
    user_abandon: float = 0.04  # the user leaves mid-conversation
    max_steps: int = 24

    @classmethod
    def flawless(cls) -> AgentProfile:
        return cls(0, 0, 0, 0, 0, 0, retry=1.0, spontaneous_escalation=0, user_abandon=0)


@dataclass
class Episode:
    steps: list[Step]
    outcome: Outcome
    duration_ms: float
    final_state: dict[str, Any]


Memory = dict[str, Any]


@dataclass(frozen=True)
class Intent:
    """One planned tool call; `args` returns None when the call is not needed."""

    tool: str
    args: Callable[[Memory], dict[str, Any] | None]
    why: str  # reasoning template over memory; must not name personal data
    # for actions: plausible wrong arguments the env accepts (a silent failure)
    silent_wrong: Callable[[dict[str, Any], Memory], dict[str, Any]] | None = None


VERIFY = Intent("lookup_customer", lambda m: {"email": m["email"]},
                "Before discussing the account I must verify the customer: I'll look them up by the email they gave.")
LOOKUP_ORDER = Intent("lookup_order", lambda m: {"order_id": m["order_id"]}, "I need the details of order {order_id}.")
PLANS: dict[str, tuple[Intent, ...]] = {
    "order_status": (
        VERIFY,
        LOOKUP_ORDER,
        Intent("track_shipment",
               lambda m: {"tracking_number": m["tracking_number"]} if m.get("tracking_number") else None,
               "Order {order_id} has shipped; checking the carrier status."),
    ),
    "refund": (
        VERIFY,
        LOOKUP_ORDER,
        Intent("issue_refund", lambda m: {"order_id": m["order_id"], "amount": m["amount"], "reason": "damaged"},
               "Order {order_id} was delivered and the {item} is damaged, so I'll refund ${amount:.2f} for it.",
               silent_wrong=lambda a, m: {**a, "amount": m["total"]}),
    ),
    "address_change": (
        VERIFY,
        LOOKUP_ORDER,
        Intent("change_address", lambda m: {"order_id": m["order_id"], "new_address": m["new_address"]},
               "Order {order_id} is still processing, so the shipping address can be changed.",
               silent_wrong=lambda a, m: {**a, "new_address": m["address"]}),
    ),
    "kb_question": (
        Intent("search_kb", lambda m: {"query": m["query"]},
               "This is a general question; I'll search the help centre for '{query}'."),
        Intent("get_article", lambda m: {"article_id": m["results"][0]["article_id"]} if m.get("results") else None,
               "The top search result looks relevant; reading it."),
    ),
    "cancellation": (
        VERIFY,
        LOOKUP_ORDER,
        Intent("cancel_order", lambda m: {"order_id": m["order_id"], "reason": "customer request"},
               "Order {order_id} has not shipped yet, so I can cancel it."),
    ),
    "fraud_report": (
        VERIFY,
        Intent("escalate_to_human",
               lambda m: {"customer_id": m["customer_id"], "category": "fraud",
                          "summary": "Customer reports card charges and a sign-in they did not make."},
               "Possible fraud must go to the fraud team; escalating for customer {customer_id}.",
               silent_wrong=lambda a, m: {**a, "category": "billing"}),
    ),
    "account_deletion": (
        VERIFY,
        Intent("request_account_deletion", lambda m: {"customer_id": m["customer_id"]},
               "The customer is verified; registering the deletion request for {customer_id}."),
    ),
    "subscription_pause": (
        VERIFY,
        Intent("pause_subscription", lambda m: {"subscription_id": m["subscription_id"], "weeks": m["weeks"]},
               "Customer verified; pausing subscription {subscription_id} for {weeks} weeks.",
               silent_wrong=lambda a, m: {**a, "weeks": a["weeks"] + 1}),
    ),
}
# Facts the agent needs from the user before acting.
NEEDS: dict[str, tuple[str, ...]] = {
    "order_status": ("email", "order_id"), "refund": ("email", "order_id"),
    "address_change": ("email", "order_id"), "cancellation": ("email", "order_id"),
    "fraud_report": ("email",), "account_deletion": ("email",), "subscription_pause": ("email",),
    "kb_question": (),
}
ASK = {"email": "the email address on your account", "order_id": "the order number"}
FINAL_ANSWERS: dict[str, Callable[[Memory], str]] = {
    "order_status": lambda m: (
        "Your order {order_id} is {shipment} with {carrier} (tracking {tracking_number}), estimated delivery {eta}."
        if "carrier" in m else "Your order {order_id} is still being prepared in our warehouse and hasn't shipped yet."
    ).format(shipment=m["status"].replace("_", " "), **m),
    "refund": lambda m: (
        "I've refunded ${amount:.2f} for order {order_id} (refund {refund_id}) to your original payment method; "
        "it should show up within 5-10 business days.".format(**m)),
    "address_change": lambda m: "Done: order {order_id} will now ship to {shipping_address}.".format(**m),
    "kb_question": lambda m: "From our help centre ({title}): {body}".format(**m),
    "cancellation": lambda m: (
        "Order {order_id} is cancelled; ${refund_to_original_payment:.2f} goes back to your original payment method."
        .format(**m)),
    "fraud_report": lambda m: (
        "I've passed this to our fraud team (ticket {ticket_id}); they will contact you within 4 hours. "
        "Please don't share full card numbers in chat.".format(**m)),
    "account_deletion": lambda m: (
        "Your deletion request {request_id} is registered and completes within 30 days.".format(**m)),
    "subscription_pause": lambda m: "Subscription {subscription_id} is paused for {paused_weeks} weeks.".format(**m),
}
READ_ONLY = ("lookup_customer", "lookup_order", "track_shipment", "search_kb", "get_article")
ORDER_TASKS = ("order_status", "refund", "address_change", "cancellation")


def _tokens(text: str | None) -> int:
    return len(text) // 4 + 1 if text else 0


class _Transcript:
    """Appends steps with call ids, plausible token counts and latencies."""

    def __init__(self, rng: Random, tool_schemas: list[dict[str, Any]]) -> None:
        self.rng = rng
        self.steps: list[Step] = []
        self.calls = 0
        self.context = _tokens(json.dumps(tool_schemas))
        self.elapsed_ms = 0.0

    def _add(self, step: Step, *texts: str | None) -> None:
        self.steps.append(step)
        self.context += sum(_tokens(t) for t in texts)
        self.elapsed_ms += step.latency_ms or 0.0

    def system(self, text: str) -> None:
        self._add(Step(index=len(self.steps), role="system", content=text), text)

    def user(self, text: str) -> None:
        self.elapsed_ms += self.rng.uniform(4000, 40000)  # typing time
        self._add(Step(index=len(self.steps), role="user", content=text), text)

    def assistant(self, content: str | None, reasoning: str, call: ToolCall | None = None) -> None:
        args = json.dumps(call.arguments) if call else None
        completion = _tokens(content) + _tokens(reasoning) + _tokens(args) + (8 if call else 0)
        step = Step(
            index=len(self.steps), role="assistant", content=content, reasoning=reasoning,
            tool_calls=[call] if call else [],
            latency_ms=round(250 + 12 * completion + self.rng.uniform(0, 900), 1),
            prompt_tokens=self.context, completion_tokens=completion,
        )
        self._add(step, content, reasoning, args)

    def call(self, tool: str, arguments: dict[str, Any], reasoning: str) -> str:
        self.calls += 1
        call_id = f"call_{self.calls}"
        self.assistant(None, reasoning, ToolCall(id=call_id, name=tool, arguments=arguments))
        return call_id

    def result(self, call_id: str, result: ToolResult, latency_ms: float) -> None:
        content = result.text() if result.ok else None
        step = Step(index=len(self.steps), role="tool", content=content, tool_call_id=call_id,
                    error=result.error, latency_ms=round(latency_ms, 1))
        self._add(step, content, result.error)


def _fault(rng: Random, profile: AgentProfile) -> tuple[ToolResult, float] | None:
    """An infrastructure failure in place of the call, or None when the call goes through."""
    r = rng.random()
    if r < profile.timeout:
        return ToolResult(False, "", f"timeout: tool did not answer within {TIMEOUT_MS / 1000:.0f}s"), TIMEOUT_MS
    if r < profile.timeout + profile.tool_error:
        return ToolResult(False, "", "503 Service Unavailable: upstream service error"), rng.uniform(50, 400)
    return None


def _call(t: _Transcript, env: SupportEnv, tool: str, args: dict[str, Any], reasoning: str,
          profile: AgentProfile) -> ToolResult:
    call_id = t.call(tool, args, reasoning)
    faulted = _fault(t.rng, profile)
    result, latency = faulted or (env.execute(tool, args), t.rng.uniform(40, 900))
    t.result(call_id, result, latency)
    return result


def _corrupt(args: dict[str, Any], rng: Random) -> dict[str, Any]:
    """Malformed arguments: a number sent as text, or a required argument left out."""
    key = rng.choice(sorted(args))
    if isinstance(args[key], (int, float)):
        return {**args, key: f"{args[key]}"}
    return {k: v for k, v in args.items() if k != key}


def _attempt(t: _Transcript, env: SupportEnv, intent: Intent, args: dict[str, Any], reasoning: str,
             profile: AgentProfile) -> ToolResult | None:
    """Call with retries; None when the agent gives up."""
    rng = t.rng
    first = _corrupt(args, rng) if rng.random() < profile.wrong_arguments else args
    result = _call(t, env, intent.tool, first, reasoning, profile)
    for _ in range(profile.max_retries):
        if result.ok or rng.random() >= profile.retry:
            break
        result = _call(t, env, intent.tool, args, f"The call failed ({result.error}); trying again.", profile)
    return result if result.ok else None


def _escalate(t: _Transcript, env: SupportEnv, m: Memory, category: str, why: str,
              profile: AgentProfile) -> str:
    args = {"customer_id": m["customer_id"], "category": category,
            "summary": f"Could not resolve a {m['task_type']} request automatically."}
    result = _call(t, env, "escalate_to_human", args, why, profile)
    if not result.ok:
        t.assistant("I'm sorry, I couldn't complete this right now. Please try again later.", "Escalation failed too.")
        return "error"
    ticket = result.content["ticket_id"] if isinstance(result.content, dict) else ""
    t.assistant(f"I've handed this to a colleague (ticket {ticket}) who will get back to you.",
                "Escalated; telling the customer.")
    return "escalated"


def _give_up(t: _Transcript, env: SupportEnv, m: Memory, profile: AgentProfile) -> str:
    if t.rng.random() < profile.escalate_on_give_up:
        return _escalate(t, env, m, "technical", "The tools keep failing; a human should take over.", profile)
    t.assistant("I'm sorry, our systems are having trouble and I couldn't complete this. Please try again later.",
                "Giving up after repeated failures.")
    return "error"


def _maybe(rng: Random, p: float, n: int) -> int | None:
    """With probability p, a random position in range(n)."""
    return rng.randrange(n) if rng.random() < p else None


def run_episode(spec: TaskSpec, profile: AgentProfile, rng: Random, env: SupportEnv | None = None) -> Episode:
    """Play one conversation for `spec`; the outcome is checked on the env's final state."""
    env = env or replay(spec)
    task = spec["task_type"]
    facts = user.user_facts(spec)
    t = _Transcript(rng, env.tool_schemas())
    t.system(SYSTEM_PROMPT)
    t.user(user.opening(spec, facts))
    missing = [n for n in NEEDS[task] if n not in user.mentioned(spec)]
    caution = " Please never share passwords, keys or tokens in chat." if "secret" in facts else ""
    if missing:
        t.assistant(f"Happy to help. Could you tell me {' and '.join(ASK[n] for n in missing)}?{caution}",
                    "I need more details before I can look anything up.")
        t.user(user.answer(missing, facts, rng))

    memory: Memory = {**facts, **spec["params"], "task_type": task}
    skip = task in ORDER_TASKS and rng.random() < profile.skip_verification
    plan = [i for i in PLANS[task] if not (skip and i is VERIFY)]
    escalate_at = _maybe(rng, profile.spontaneous_escalation, len(plan))
    abandon_at = _maybe(rng, profile.user_abandon, len(plan))
    wrong_tool_at = _maybe(rng, profile.wrong_tool, len(plan))
    termination = "completed"
    for i, intent in enumerate(plan):
        if i == escalate_at:
            termination = _escalate(t, env, memory, "other", "This request needs a human's judgement.", profile)
            break
        args = intent.args(memory)
        if args is None:
            continue
        reasoning = intent.why.format(**memory)
        if i == wrong_tool_at:
            wrong = rng.choice([n for n in READ_ONLY if n != intent.tool and n in env.tool_names])
            _call(t, env, wrong, args, reasoning, profile)
            reasoning = f"{wrong} was the wrong tool for this; using {intent.tool} instead."
        if intent.silent_wrong and rng.random() < profile.silent_wrong_arguments:
            args = intent.silent_wrong(args, memory)
        result = _attempt(t, env, intent, args, reasoning, profile)
        if result is None:
            termination = _give_up(t, env, memory, profile)
            break
        memory |= result.content if isinstance(result.content, dict) else {}
        if i == abandon_at:
            termination = "user_abandoned"
            break
        if len(t.steps) >= profile.max_steps:
            termination = "max_steps"
            break
    else:
        t.assistant(FINAL_ANSWERS[task](memory), "I have everything I need to answer.")

    state = env.state()
    success = check_success(spec, state)
    outcome = Outcome(success=success, reward=1.0 if success else 0.0, verified_by="environment",
                      termination=termination)
    return Episode(t.steps, outcome, round(t.elapsed_ms, 1), state)
