"""Typed checks of the raw values a format reads: a value is checked, never coerced, except
that a JSON integer is accepted where a float is expected (JSON has one number type); a
wrong value raises the RecordError that quarantines its record, naming the field's path."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.core.formats.guard import DETAIL_CHARS, RecordError
from pipeline.core.formats.json_lines import json_type, strict_json
from pipeline.core.record import ROLES, Step


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a key that is absent, as opposed to present and null


# kind → accepted Python types; "?" suffix = may also be null
_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "int32": (int,),  # an integer stored in a 32-bit column (step index, token counts)
    "float": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "list": (list,),
    "any": (object,),
}
_KIND_NAMES = {
    "str": "string",
    "int": "integer",
    "int32": "integer",
    "float": "number",
    "bool": "boolean",
    "object": "object",
    "list": "array",
    "any": "any value",
}
_INT32 = range(-(2**31), 2**31)
# kind → the exact types a JSON parser produces that pass as they are. The common case is
# then one set lookup; conversions, range checks and errors take the slow path.
_PASS_AS_IS: dict[str, frozenset[type]] = {
    "str": frozenset({str}),
    "int": frozenset({int}),  # bool is a subclass of int, but not `type(value) is int`
    "int32": frozenset(),
    "float": frozenset({float}),
    "bool": frozenset({bool}),
    "object": frozenset({dict}),
    "list": frozenset({list}),
    "any": frozenset(),
}
_PASS_AS_IS.update({f"{kind}?": types | {type(None)} for kind, types in list(_PASS_AS_IS.items())})


def check(value: Any, kind: str, path: str) -> Any:
    """`value` if it is of `kind` (int widened to float for "float"), else wrong_type."""
    if type(value) in _PASS_AS_IS[kind]:
        return value
    return _check_slowly(value, kind, path)


def _check_slowly(value: Any, kind: str, path: str) -> Any:
    base, nullable = kind.rstrip("?"), kind.endswith("?")
    if value is None and (nullable or base == "any"):
        return value
    ok = isinstance(value, _KINDS[base]) and not (isinstance(value, bool) and base in ("int", "int32", "float"))
    if ok and base == "float":
        try:
            return float(value)
        except OverflowError:  # a JSON integer beyond any float
            raise RecordError("wrong_type", f"{path}: {str(value)[:20]}... is too large for a number") from None
    if ok and base == "int32" and value not in _INT32:
        shown = str(value) if abs(value) < 10**20 else f"{str(value)[:20]}..."
        raise RecordError("wrong_type", f"{path}: {shown} is outside the 32-bit integer range")
    if ok:
        return value
    expected = _KIND_NAMES[base] + (" or null" if nullable else "")
    raise RecordError("wrong_type", f"{path}: expected {expected}, got {json_type(value)}")


def check_items(values: list[Any], kind: str, path: str) -> list[Any]:
    """Each item of an already checked list as `kind` (item paths built only for an error)."""
    return [item if type(item) in _PASS_AS_IS[kind] else _check_slowly(item, kind, join(path, i))
            for i, item in enumerate(values)]


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def required(obj: Mapping[str, Any], key: str, kind: str, path: str) -> Any:
    if key not in obj:
        raise RecordError("missing_required_field", f"{join(path, key)}: required field is missing")
    value = obj[key]
    return value if type(value) in _PASS_AS_IS[kind] else _check_slowly(value, kind, join(path, key))


def read_object(
    value: Any, kinds: Mapping[str, str], path: str, extra: dict[str, Any], needed: Iterable[str] = ()
) -> dict[str, Any]:
    """Check the known keys of an object; unknown keys go to `extra` under their path."""
    obj = check(value, "object", path)
    for key in needed:
        if key not in obj:
            raise RecordError("missing_required_field", f"{join(path, key)}: required field is missing")
    out = {}
    for key, item in obj.items():
        kind = kinds.get(key)
        if kind is None:
            extra[join(path, key)] = item
        elif type(item) in _PASS_AS_IS[kind]:
            out[key] = item
        else:
            out[key] = _check_slowly(item, kind, join(path, key))
    return out


def require_id(value: Any, path: str) -> str:
    if value is MISSING or value is None or value == "":
        raise RecordError("missing_required_field", f"{path}: trajectory id is missing")
    trajectory_id: str = check(value, "str", path)
    return trajectory_id


def check_role(value: Any, path: str) -> str:
    role: str = check(value, "str", path)
    if role not in ROLES:
        expected = ", ".join(ROLES)
        raise RecordError(
            "invalid_step_order", f"{path}: unknown role {role!r} (expected one of {expected})"
        )
    return role


def parse_arguments(value: Any, path: str) -> dict[str, Any]:
    """Tool-call arguments → dict: the one place a JSON-string form is decoded."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise RecordError(
            "wrong_type", f"{path}: expected object or JSON string, got {json_type(value)}"
        )
    try:
        parsed = strict_json(value)
    except json.JSONDecodeError as err:
        detail = f"{path}: not valid JSON ({err.msg} at column {err.colno})"
        raise RecordError("invalid_tool_arguments", detail) from None
    except ValueError as err:  # e.g. an integer literal over Python's 4300-digit limit
        raise RecordError("invalid_tool_arguments", f"{path}: {err}"[:DETAIL_CHARS]) from None
    if not isinstance(parsed, dict):
        raise RecordError("invalid_tool_arguments", f"{path}: JSON {json_type(parsed)} is not an object")
    return parsed


def leading_system_prompt(steps: list[Step]) -> str | None:
    """The formats that carry the system prompt as a message derive the field from it."""
    return steps[0].content if steps and steps[0].role == "system" else None
