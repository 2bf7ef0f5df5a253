"""Next-action metrics on eval cases: pure functions over (case, prediction) pairs.

A case is a row of `marts.eval_cases` (see `cases.load_case`); a prediction is the
assistant message a policy returned (see `policy.py`). `score_case` judges one pair,
`summarize` aggregates scores overall and per task type, `confusion` tabulates tool
choices. Definitions, in the manner of the Berkeley Function Calling Leaderboard's AST
match (one expected call per case; the prediction's calls are compared with it):

Tool-call cases (`expected_kind = 'tool_call'`)
  tool_name_accuracy    the prediction's first tool call names the expected tool.
  args_exact_accuracy   the name matches, there is exactly one call, and its arguments equal
                        the expected ones as JSON values: same keys (order never matters),
                        strings identical, numbers equal as numbers (3 == 3.0; JSON has a single
                        number type), booleans never equal numbers, arrays in order.
  args_schema_accuracy  the name matches, there is exactly one call, and the arguments are
                        equivalent under the tool's JSON schema (`arguments_equivalent`):
                        * integer: ints, integral floats and integer strings ("3", " 3 ",
                          "3.0") are coerced; booleans are never numbers;
                        * number: ints, floats and numeric strings ("12.50", "1.25e1",
                          "1,234.5") are coerced and compared with math.isclose (rel 1e-9,
                          abs 1e-9);
                        * boolean: true/false or the strings "true"/"false" (any case);
                        * string with `enum`, `pattern` or `format` (ids, codes, categories):
                          equal after trimming surrounding whitespace, case-sensitive (the
                          tools look ids up exactly); other strings (free text): equal after
                          trimming, collapsing inner whitespace and case-folding; a number
                          sent for a string compares by its JSON text;
                        * object: key order is ignored, values compared recursively with the
                          property's schema; array: same length, items compared in order;
                        * a parameter missing on one side is fine only when the schema
                          declares a `default` and the other side's value equals it (an
                          optional parameter left at its default may be omitted, or sent);
                          any other missing or extra key is a mismatch;
                        * no schema for a value: compared by the expected value's JSON type
                          with the rules above.
                        Schema equivalence is semantic: a call can match with coerced
                        types ("3" for 3) and still count in invalid_call_rate.
Final-answer cases (`expected_kind = 'final_answer'`)
  answer_kind_accuracy  the prediction answers in text (non-empty content, no tool call).
  answer_exact_match    the normalised token sequences are equal. Normalisation: Unicode
                        NFKC, case-fold, redaction placeholders (<EMAIL_1>) kept as one
                        token, tokens are runs of letters/digits joined by . - @ / : _,
                        numbers canonical ("$16.00" and "16" are both "16"), the articles
                        a/an/the dropped, all other punctuation dropped.
  answer_f1             SQuAD-style token-overlap F1 over those tokens (multiset overlap;
                        1.0 when both are empty); 0 for a tool call or unparseable output.
All cases
  action_accuracy       the right decision: args_schema match on tool-call cases,
                        answer_kind match on final-answer cases.
  invalid_call_rate     share of predictions that are unparseable (a `parse_error`, or a
                        call without a name), call an unknown tool, or send arguments the
                        tool's schema rejects (`pipeline.core.curation.conversation.argument_problems`,
                        which tolerates redaction placeholders); also split as
                        unparseable_rate, unknown_tool_rate, schema_invalid_rate.
A rate whose denominator is empty (no cases of that kind in a segment) is None.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.core.curation.conversation import argument_problems, tool_schemas
from pipeline.evaluation.policy import calls_of

FINAL = "<final_answer>"
UNPARSEABLE = "<unparseable>"
EMPTY = "<empty>"
UNKNOWN_TOOL = "<unknown_tool>"

INVALID_REASONS = ("unparseable", "unknown_tool", "schema_invalid")
METRICS = (
    "action_accuracy", "tool_name_accuracy", "args_exact_accuracy", "args_schema_accuracy",
    "answer_kind_accuracy", "answer_exact_match", "answer_f1", "invalid_call_rate",
    "unparseable_rate", "unknown_tool_rate", "schema_invalid_rate",
)
NUMBER_REL_TOL = 1e-9
NUMBER_ABS_TOL = 1e-9


# -- value equivalence under a JSON schema ------------------------------------------------


def arguments_equivalent(expected: Any, predicted: Any, schema: Mapping[str, Any] | None) -> list[str]:
    """Why `predicted` arguments are not equivalent to `expected` under the tool's parameter
    schema (empty when they are). Both should be objects."""
    if not isinstance(predicted, Mapping):
        return [f"arguments are {type(predicted).__name__}, not an object"]
    return _object_mismatches(expected, predicted, schema or {}, "")


def _object_mismatches(expected: Mapping[str, Any], predicted: Mapping[str, Any],
                       schema: Mapping[str, Any], where: str) -> list[str]:
    props: Mapping[str, Any] = schema.get("properties") or {}
    problems = []
    for key in sorted(set(expected) | set(predicted)):
        prop = props.get(key) or {}
        path = f"{where}{key}"
        if key in expected and key in predicted:
            problem = value_mismatch(expected[key], predicted[key], prop)
            if problem:
                problems.append(f"{path}: {problem}")
        elif key in expected:
            if not ("default" in prop and value_mismatch(expected[key], prop["default"], prop) is None):
                problems.append(f"{path}: missing (expected {json.dumps(expected[key])})")
        elif not ("default" in prop and value_mismatch(prop["default"], predicted[key], prop) is None):
            problems.append(f"{path}: unexpected argument ({json.dumps(predicted[key], default=repr)})")
    return problems


def value_mismatch(expected: Any, predicted: Any, schema: Mapping[str, Any] | None) -> str | None:
    """Why `predicted` is not equivalent to `expected` under `schema`, or None."""
    schema = schema or {}
    kind = _schema_type(schema, expected)
    show = f"expected {json.dumps(expected, default=repr)}, got {json.dumps(predicted, default=repr)}"
    if kind == "integer":
        e, p = _as_integer(expected), _as_integer(predicted)
        return None if e is not None and e == p else show
    if kind == "number":
        e, p = _as_number(expected), _as_number(predicted)
        ok = e is not None and p is not None and math.isclose(e, p, rel_tol=NUMBER_REL_TOL, abs_tol=NUMBER_ABS_TOL)
        return None if ok else show
    if kind == "boolean":
        e, p = _as_bool(expected), _as_bool(predicted)
        return None if e is not None and e == p else show
    if kind == "string":
        e, p = _as_string(expected), _as_string(predicted)
        if e is None or p is None:
            return show
        if any(k in schema for k in ("enum", "pattern", "format")):
            return None if e.strip() == p.strip() else show
        return None if _free_text(e) == _free_text(p) else show
    if kind == "object":
        if not isinstance(expected, Mapping) or not isinstance(predicted, Mapping):
            return show
        problems = _object_mismatches(expected, predicted, schema, "")
        return "; ".join(problems) if problems else None
    if kind == "array":
        if not isinstance(expected, list) or not isinstance(predicted, list):
            return show
        if len(expected) != len(predicted):
            return f"expected {len(expected)} items, got {len(predicted)}"
        items = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
        for i, (e, p) in enumerate(zip(expected, predicted)):
            problem = value_mismatch(e, p, items)
            if problem:
                return f"item {i}: {problem}"
        return None
    return None if expected is None and predicted is None else show  # null


def _schema_type(schema: Mapping[str, Any], expected: Any) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):  # e.g. ["string", "null"]: the branch the expected value is in
        declared = next((t for t in declared if t == _json_type(expected)), None) or \
            next((t for t in declared if t != "null"), None)
    if declared in ("integer", "number", "boolean", "string", "object", "array", "null"):
        if declared == "integer" and _as_integer(expected) is None and _as_number(expected) is not None:
            return "number"  # a schema/data disagreement: compare as numbers rather than fail
        return declared
    if "properties" in schema:
        return "object"
    return _json_type(expected)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    return "array" if isinstance(value, list) else "string"


_INT_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _as_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(float(value.strip())) if "." in value else int(value.strip())
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _as_string(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    return None


def _free_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def json_equal(a: Any, b: Any) -> bool:
    """Strict equality of JSON values (see args_exact_accuracy)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# -- final answers ------------------------------------------------------------------------

_TOKEN = re.compile(r"<[a-z_]+_\d+>|[\w]+(?:[.\-@/:][\w]+)*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
ARTICLES = frozenset({"a", "an", "the"})


def answer_tokens(text: str | None) -> list[str]:
    """The normalised tokens of an answer (see answer_exact_match)."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    tokens = []
    for token in _TOKEN.findall(text):
        if _NUMBER.fullmatch(token):
            number = float(token)
            token = str(int(number)) if number.is_integer() else repr(number)
        if token not in ARTICLES:
            tokens.append(token)
    return tokens


def answer_exact(expected: str | None, predicted: str | None) -> bool:
    return answer_tokens(expected) == answer_tokens(predicted)


def answer_f1(expected: str | None, predicted: str | None) -> float:
    e, p = answer_tokens(expected), answer_tokens(predicted)
    if not e or not p:
        return float(e == p)
    overlap = sum((Counter(e) & Counter(p)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(p), overlap / len(e)
    return 2 * precision * recall / (precision + recall)


# -- one case -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseScore:
    case_id: str
    task_type: str
    expected_kind: str  # tool_call | final_answer
    expected_label: str  # the expected tool, or FINAL
    predicted_label: str  # the first called tool, FINAL, UNPARSEABLE, EMPTY or UNKNOWN_TOOL
    action_match: bool
    tool_name_match: bool | None = None  # None on final-answer cases
    args_exact_match: bool | None = None
    args_schema_match: bool | None = None
    answer_kind_match: bool | None = None  # None on tool-call cases
    answer_exact_match: bool | None = None
    answer_f1: float | None = None
    invalid_reason: str | None = None  # one of INVALID_REASONS
    problems: tuple[str, ...] = ()  # schema problems of the predicted calls
    mismatches: tuple[str, ...] = ()  # why the prediction differs from the expectation
    expected: Any = None  # {name, arguments} or the answer text
    predicted: Any = None  # [{name, arguments}] or the answer text (raw text when unparseable)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def score_case(case: Mapping[str, Any], prediction: Mapping[str, Any]) -> CaseScore:
    """Judge one prediction (an assistant message) against one eval case."""
    schemas = tool_schemas(case.get("tools"))
    kind = case["expected_kind"]
    calls = calls_of(prediction)
    content = prediction.get("content")
    parse_error = prediction.get("parse_error")
    if not parse_error and any(not isinstance(c["name"], str) or not c["name"] for c in calls):
        parse_error = "tool call without a name"

    invalid, problems = None, []
    if parse_error:
        invalid = "unparseable"
        predicted_label = UNPARSEABLE
    elif calls:
        for c in calls:
            if c["name"] not in schemas:
                invalid = "unknown_tool"
                problems.append(f"call to unknown tool {c['name']}")
            else:
                found = argument_problems(c["name"], c["arguments"], schemas)
                problems += found
                if found and invalid is None:
                    invalid = "schema_invalid"
        predicted_label = calls[0]["name"] if calls[0]["name"] in schemas else UNKNOWN_TOOL
    else:
        predicted_label = FINAL if isinstance(content, str) and content.strip() else EMPTY
    predicted = (
        (prediction.get("raw_text") or content) if parse_error
        else [{"name": c["name"], "arguments": c["arguments"]} for c in calls] if calls else content
    )
    common = dict(
        case_id=str(case.get("case_id")), task_type=str(case.get("task_type")), expected_kind=kind,
        predicted_label=predicted_label, invalid_reason=invalid, problems=tuple(problems), predicted=predicted,
    )

    if kind == "tool_call":
        expected = _load(case["expected_tool_call"])
        name_match = bool(calls) and not parse_error and calls[0]["name"] == expected["name"]
        mismatches: list[str] = []
        if parse_error:
            mismatches.append(f"unparseable output: {parse_error}")
        elif not calls:
            mismatches.append(f"answered in text instead of calling {expected['name']}")
        elif not name_match:
            mismatches.append(f"called {calls[0]['name']} instead of {expected['name']}")
        elif len(calls) != 1:
            mismatches.append(f"{len(calls)} tool calls, expected 1")
        exact = schema_ok = False
        if name_match and len(calls) == 1:
            predicted_args = calls[0]["arguments"]
            exact = json_equal(expected["arguments"], predicted_args)
            arg_problems = arguments_equivalent(expected["arguments"], predicted_args, schemas.get(expected["name"]))
            schema_ok = not arg_problems
            mismatches += arg_problems
        return CaseScore(
            **common, expected_label=expected["name"], action_match=schema_ok, tool_name_match=name_match,
            args_exact_match=exact, args_schema_match=schema_ok, mismatches=tuple(mismatches),
            expected={"name": expected["name"], "arguments": expected["arguments"]},
        )

    expected_answer = case.get("expected_answer")
    answered = predicted_label == FINAL
    mismatch = () if answered else (
        (f"unparseable output: {parse_error}",) if parse_error
        else (f"called {calls[0]['name']} instead of answering",) if calls else ("empty answer",)
    )
    return CaseScore(
        **common, expected_label=FINAL, action_match=answered, answer_kind_match=answered,
        answer_exact_match=answered and answer_exact(expected_answer, content),
        answer_f1=answer_f1(expected_answer, content) if answered else 0.0,
        mismatches=mismatch, expected=expected_answer,
    )


# -- aggregation --------------------------------------------------------------------------

# Right/wrong metrics: how a case's score decides each (None: the metric does not apply to
# the case). `case_outcomes` keeps them per case, so that two models can be compared case by
# case and every rate gets its n and interval.
BINARY_METRICS: dict[str, Callable[[CaseScore], bool | None]] = {
    "action_accuracy": lambda s: s.action_match,
    "tool_name_accuracy": lambda s: s.tool_name_match,
    "args_exact_accuracy": lambda s: s.args_exact_match,
    "args_schema_accuracy": lambda s: s.args_schema_match,
    "answer_kind_accuracy": lambda s: s.answer_kind_match,
    "answer_exact_match": lambda s: s.answer_exact_match,
    "invalid_call_rate": lambda s: s.invalid_reason is not None,
}


def case_outcomes(scores: Sequence[CaseScore]) -> dict[str, dict[str, bool]]:
    """{metric: {case_id: outcome}} for every metric in BINARY_METRICS that applies."""
    out: dict[str, dict[str, bool]] = {metric: {} for metric in BINARY_METRICS}
    for s in scores:
        for metric, decide in BINARY_METRICS.items():
            value = decide(s)
            if value is not None:
                out[metric][s.case_id] = bool(value)
    return out



def _rate(values: Iterable[bool | float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def segment_metrics(scores: Sequence[CaseScore]) -> dict[str, Any]:
    """Every metric over `scores` (rates in [0, 1]; None where undefined)."""
    invalid = Counter(s.invalid_reason for s in scores)
    n = len(scores)
    metrics: dict[str, Any] = {
        "n_cases": n,
        "n_tool_call_cases": sum(s.expected_kind == "tool_call" for s in scores),
        "n_final_answer_cases": sum(s.expected_kind == "final_answer" for s in scores),
        "action_accuracy": _rate(s.action_match for s in scores),
        "tool_name_accuracy": _rate(s.tool_name_match for s in scores),
        "args_exact_accuracy": _rate(s.args_exact_match for s in scores),
        "args_schema_accuracy": _rate(s.args_schema_match for s in scores),
        "answer_kind_accuracy": _rate(s.answer_kind_match for s in scores),
        "answer_exact_match": _rate(s.answer_exact_match for s in scores),
        "answer_f1": _rate(s.answer_f1 for s in scores),
        "invalid_call_rate": (n - invalid[None]) / n if n else None,
    }
    for reason in INVALID_REASONS:
        metrics[f"{reason}_rate"] = invalid[reason] / n if n else None
    return metrics


def summarize(scores: Sequence[CaseScore]) -> dict[str, Any]:
    """{"overall": metrics, "by_task_type": {task_type: metrics}}."""
    groups: dict[str, list[CaseScore]] = defaultdict(list)
    for s in scores:
        groups[s.task_type].append(s)
    return {
        "overall": segment_metrics(scores),
        "by_task_type": {t: segment_metrics(groups[t]) for t in sorted(groups)},
    }


def confusion(scores: Sequence[CaseScore]) -> dict[str, Any]:
    """Tool choices: {"labels", "counts"[expected][predicted]} over expected and predicted
    labels (tool names, FINAL, UNPARSEABLE, EMPTY, UNKNOWN_TOOL), rows expected."""
    labels = sorted({s.expected_label for s in scores} | {s.predicted_label for s in scores},
                    key=lambda x: (x.startswith("<"), x))
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for s in scores:
        counts[index[s.expected_label]][index[s.predicted_label]] += 1
    return {"labels": labels, "counts": counts}
