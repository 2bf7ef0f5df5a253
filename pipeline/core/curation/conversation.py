"""Structural checks of a conversation in TRL message form (pure; used by GX expectations).

A conversation is well formed when: roles are known; it starts with optional system
messages and then a user message; every tool message answers a pending call of the
assistant message before it; every assistant tool call is answered (by a result or a
recorded error) before the conversation moves on; and tool-call arguments are JSON objects
that conform to the called tool's JSON schema. Redaction placeholders (`<EMAIL_1>`) stand
for strings whose real value matched, so a `pattern` that only a placeholder fails is not a
violation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator

ROLES = {"system", "user", "assistant", "tool"}
PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def tool_schemas(tools: Any) -> dict[str, dict[str, Any]]:
    schemas = {}
    for tool in _load(tools) or []:
        function = tool.get("function", tool)
        schemas[function["name"]] = function.get("parameters") or {}
    return schemas


def argument_problems(name: str, arguments: Any, schemas: dict[str, dict[str, Any]]) -> list[str]:
    if not isinstance(arguments, dict):
        return [f"call to {name}: arguments are {type(arguments).__name__}, not an object"]
    if name not in schemas:
        return [f"call to unknown tool {name}"]
    problems = []
    for error in Draft202012Validator(schemas[name]).iter_errors(arguments):
        if error.validator in ("pattern", "format") and isinstance(error.instance, str) \
                and PLACEHOLDER.fullmatch(error.instance):
            continue
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"call to {name}: {where}: {error.message}")
    return problems


def conversation_problems(message_lists: Iterable[Any], tools: Any) -> list[str]:
    """Problems of the conversation formed by concatenating `message_lists` (e.g. a prompt
    and its completion); empty when it is well formed."""
    messages = [m for part in message_lists for m in (_load(part) or [])]
    schemas = tool_schemas(tools)
    problems: list[str] = []
    pending: set[str] = set()
    seen_user = False
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            problems.append(f"message {i}: unknown role {role!r}")
            continue
        if role != "tool" and pending:
            problems.append(f"message {i}: tool call(s) {sorted(pending)} never answered")
            pending.clear()
        if role == "system":
            if seen_user:
                problems.append(f"message {i}: system message after the conversation started")
        elif role == "user":
            seen_user = True
        elif not seen_user:
            problems.append(f"message {i}: {role} message before any user message")
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                problems += argument_problems(function.get("name"), function.get("arguments"), schemas)
                pending.add(call.get("id"))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                problems.append(f"message {i}: tool result for {call_id!r} answers no pending call")
            pending.discard(call_id)
    if pending:
        problems.append(f"end: tool call(s) {sorted(pending)} never answered")
    return problems
