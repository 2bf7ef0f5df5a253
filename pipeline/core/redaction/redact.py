"""Redaction of texts, JSON documents, trajectories and the raw tables.

How one trajectory is redacted (`TrajectoryRedactor`):
1. Every field is analysed: JSON text is parsed and walked, and each string leaf is either
   replaced whole (its key names PII: see `keys.py`) or scanned by the text detectors; a
   string leaf that is itself a JSON document is walked in turn. Anything else, and JSON that
   does not parse, goes through the text detectors.
2. Every value found anywhere in the trajectory (a name from "I'm Maria Keller", an address
   under a `shipping_address` key, a password) is then searched for verbatim in all of the
   trajectory's texts, so a value detected once by context is redacted everywhere it recurs.
3. Spans are replaced from one map per trajectory, so one value has one replacement across
   all fields and tables of the trajectory: a realistic surrogate from a `SurrogateMap`
   (the default: agents must not learn to write placeholders) or a placeholder from a
   `PlaceholderMap` (`<EMAIL_1>`).

JSON is rewritten in place: only the replaced leaves change, every other byte (key order,
spacing, escapes) stays as it was, and the result is valid JSON. Spans are reported in the
coordinates of the original text, so they can be scored against ground truth.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.core.redaction.detectors import Span, detect, resolve
from pipeline.core.redaction.keys import AMBIGUOUS, key_entity_type, static_key_type
from pipeline.core.redaction.placeholders import PlaceholderMap
from pipeline.core.redaction.surrogates import SurrogateMap

# Columns redacted per raw table: True = a JSON column (any JSON value; malformed → text),
# None = text that is parsed as JSON when it looks like an object/array (tool results).
REDACTED_COLUMNS: dict[str, dict[str, bool | None]] = {
    "trajectories": {"goal": None, "system_prompt": None, "request_params": True, "task_spec": True,
                     "extra": True},
    "steps": {"content": None, "reasoning": None, "error": None, "raw_text": None},
    "tool_calls": {"arguments": True},
    "feedback": {"value": True, "comment": None, "corrected_output": None},
    # Quarantined records are raw excerpts of what could not be parsed: they carry PII too.
    "quarantine": {"detail": None, "raw_excerpt": None},
}
TABLE_ORDER: tuple[str, ...] = ("trajectories", "steps", "tool_calls", "feedback", "quarantine")
MIN_SWEEP_CHARS = 4  # shorter values are not searched for again (too many accidental hits)
MIN_NAME_PART = 3

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|NaN|-?Infinity')
_LOOKS_JSON = re.compile(r"\s*[\[{]")


class ReplacementMap(Protocol):
    """value -> what replaces it, for one trajectory (`PlaceholderMap`, `SurrogateMap`)."""

    def prepare(self, found: Sequence[tuple[str, str]]) -> None:
        """Everything detected in the trajectory as (value, entity_type), before any is replaced."""

    def replacement(self, entity_type: str, value: str) -> str: ...


@dataclass(frozen=True)
class Replacement:
    """One replaced value: never the value itself."""

    entity_type: str
    replacement: str  # the placeholder or surrogate written in its place
    path: str | None = None  # JSON path of the leaf ("$.customer.email"), None in plain text


@dataclass(frozen=True)
class RedactedText:
    text: str
    spans: tuple[Span, ...]  # what was replaced, in the coordinates of the original text
    replacements: tuple[Replacement, ...]
    mode: str  # "text", "json", or "json_as_text" (JSON expected but malformed)


@dataclass(frozen=True)
class Finding:
    record_key: str
    table: str
    row: int  # index of the row in the input table
    column: str
    entity_type: str
    replacement: str
    path: str | None = None


@dataclass
class RedactionResult:
    tables: dict[str, list[dict[str, Any]]]
    findings: list[Finding] = field(default_factory=list)
    malformed_json: int = 0  # JSON cells that did not parse and were redacted as text
    # (record_key, entity_type, surrogate) for every surrogate written (none with placeholders)
    surrogates: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Replaced values per entity type."""
        return dict(sorted(Counter(f.entity_type for f in self.findings).items()))


class _Misaligned(Exception):
    """The token stream does not line up with the parsed document (duplicate keys)."""


class _Seg:
    """One replaceable piece of a field: the whole text, or one JSON leaf."""

    __slots__ = ("start", "end", "text", "quoted", "forced", "path", "spans", "sub")

    def __init__(self, start: int, end: int, text: str, quoted: bool, forced: str | None, path: str | None):
        self.start, self.end = start, end  # raw range (JSON strings: with the quotes)
        self.text = text  # decoded text
        self.quoted = quoted
        self.forced = forced  # entity type that replaces the whole leaf
        self.path = path
        self.spans: list[Span] = []
        self.sub: _Field | None = None  # a string leaf that is itself JSON


class _Field:
    __slots__ = ("raw", "segs", "mode", "canonical", "nested")

    def __init__(self, raw: str, mode: str) -> None:
        self.raw = raw
        self.segs: list[_Seg] = []
        self.mode = mode
        self.canonical = True  # False: the JSON was re-serialised, spans are not in original coordinates
        self.nested = False  # some leaf is itself a JSON document

    def leaves(self) -> list[_Seg]:
        if not self.nested:
            return self.segs
        out: list[_Seg] = []
        for seg in self.segs:
            if seg.sub is not None:
                out.extend(seg.sub.leaves())
            else:
                out.append(seg)
        return out


# -- analysis ----------------------------------------------------------------------------------


def _text_field(text: str, mode: str = "text") -> _Field:
    f = _Field(text, mode)
    seg = _Seg(0, len(text), text, False, None, None)
    seg.spans = detect(text)
    f.segs.append(seg)
    return f


def _json_field(text: str, *, any_value: bool, depth: int = 0) -> _Field | None:
    """Analyse JSON text; None when it is not JSON (or, unless any_value, not an object/array)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not any_value and not isinstance(doc, (dict, list)):
        return None
    try:
        f = _Field(text, "json")
        try:
            tokens = _JSON_TOKEN.finditer(text)
            _walk(doc, tokens, "$", None, f, depth)
            if next(tokens, None) is not None:
                raise _Misaligned
        except (_Misaligned, StopIteration):
            # Duplicate keys (or an exotic token): rewrite canonically, then analyse that.
            canonical = json.dumps(doc, ensure_ascii=False)
            f = _Field(canonical, "json")
            f.canonical = False
            _walk(doc, _JSON_TOKEN.finditer(canonical), "$", None, f, depth)
    except RecursionError:  # nested deeper than we walk: treat as text
        return None
    return f


def _walk(node: Any, tokens: Iterator[re.Match[str]], path: str, inherited: str | None, f: _Field,
          depth: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            tok = next(tokens)
            if tok.group()[0] != '"':
                raise _Misaligned
            own = static_key_type(key)
            if own is AMBIGUOUS:
                own = key_entity_type(key, value, node)
            child_path = f"{path}.{key}"
            if isinstance(value, (dict, list)):
                # Lists under a PII key are lists of such values; an address object is an address.
                inherit = own if own and (isinstance(value, list) or own == "STREET_ADDRESS") else inherited
                _walk(value, tokens, child_path, inherit, f, depth)
            else:
                _leaf(value, tokens, child_path, own or inherited, f, depth)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, tokens, f"{path}[{i}]", inherited, f, depth)
    else:
        _leaf(node, tokens, path, inherited, f, depth)


def _leaf(value: Any, tokens: Iterator[re.Match[str]], path: str, forced: str | None, f: _Field,
          depth: int) -> None:
    tok = next(tokens)
    raw = tok.group()
    if isinstance(value, str):
        if raw[0] != '"':
            raise _Misaligned
        seg = _Seg(tok.start(), tok.end(), value, True, forced if value.strip() else None, path)
        if seg.forced is None and len(value) >= 6:  # shorter than anything detectable
            if depth < 3 and _LOOKS_JSON.match(value):
                seg.sub = _json_field(value, any_value=False, depth=depth + 1)
                f.nested = f.nested or seg.sub is not None
            if seg.sub is None:
                seg.spans = detect(value)
        f.segs.append(seg)
    elif isinstance(value, bool) or value is None:
        if raw not in ("true", "false", "null"):
            raise _Misaligned
    else:  # a number: replaced only under a PII key (a card or phone number stored as a number)
        if raw[0] == '"' or raw in ("true", "false", "null"):
            raise _Misaligned
        if forced:
            f.segs.append(_Seg(tok.start(), tok.end(), raw, False, forced, path))


def analyse(text: str, *, json_column: bool | None = None) -> _Field:
    """json_column: True = a JSON column (any JSON value), None = JSON if it looks like an
    object/array, False = plain text."""
    if json_column is not False and (json_column or _LOOKS_JSON.match(text)):
        parsed = _json_field(text, any_value=bool(json_column))
        if parsed is not None:
            return parsed
        if json_column:
            return _text_field(text, "json_as_text")
    return _text_field(text)


# -- sweep: values found once are redacted wherever they recur --------------------------------


def _is_boundary(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isalnum() or not text[start].isalnum()) and (
        end == len(text) or not text[end].isalnum() or not text[end - 1].isalnum()
    )


def _known_values(fields: Sequence[_Field]) -> list[tuple[str, str]]:
    """(value, entity_type) of everything detected, longest first."""
    known: dict[str, str] = {}
    for f in fields:
        for seg in f.leaves():
            if seg.forced:
                value = seg.text.strip()
                if len(value) >= MIN_SWEEP_CHARS:
                    known.setdefault(value, seg.forced)
                if seg.forced == "PERSON":
                    _add_name_parts(known, value)
                continue
            for s in seg.spans:
                value = seg.text[s.start:s.end].strip()
                if len(value) >= MIN_SWEEP_CHARS:
                    known.setdefault(value, s.entity_type)
                if s.entity_type == "PERSON":
                    _add_name_parts(known, value)
    return sorted(known.items(), key=lambda kv: -len(kv[0]))


def _add_name_parts(known: dict[str, str], name: str) -> None:
    parts = name.split()
    if len(parts) > 1:
        for part in parts:
            if len(part) >= MIN_NAME_PART and part[0].isupper():
                known.setdefault(part, "PERSON")


def _sweep(seg: _Seg, known: Sequence[tuple[str, str]]) -> None:
    text = seg.text
    spans = seg.spans  # sorted, non-overlapping
    starts = [s.start for s in spans]
    added: list[tuple[int, int, str, int]] = []
    for value, entity_type in known:
        if len(value) > len(text):
            continue
        start = text.find(value)
        while start >= 0:
            end = start + len(value)
            i = bisect_right(starts, start) - 1
            free = (i < 0 or spans[i].end <= start) and (i + 1 >= len(spans) or spans[i + 1].start >= end)
            if free and _is_boundary(text, start, end):
                added.append((start, end, entity_type, 0))
            start = text.find(value, start + 1)
    if added:  # added occurrences may overlap each other (a name and its surname): resolve
        seg.spans = resolve([(s.start, s.end, s.entity_type, 0) for s in spans] + added)


# -- rendering ---------------------------------------------------------------------------------


def _offset_map(inner: str, decoded_len: int) -> list[int] | None:
    """Raw offset (within a JSON string body) of each decoded character, plus the end."""
    pos: list[int] = []
    i, n = 0, len(inner)
    while i < n:
        pos.append(i)
        if inner[i] == "\\":
            if inner[i + 1] == "u":
                code = int(inner[i + 2:i + 6], 16)
                i += 12 if 0xD800 <= code < 0xDC00 and inner[i + 6:i + 8] == "\\u" else 6
            else:
                i += 2
        else:
            i += 1
    pos.append(n)
    return pos if len(pos) == decoded_len + 1 else None


def _render_spans(text: str, spans: Sequence[Span], pmap: ReplacementMap, path: str | None,
                  out: list[Replacement]) -> str:
    pieces: list[str] = []
    last = 0
    for s in spans:
        new = pmap.replacement(s.entity_type, text[s.start:s.end])
        pieces.append(text[last:s.start])
        pieces.append(new)
        out.append(Replacement(s.entity_type, new, path))
        last = s.end
    pieces.append(text[last:])
    return "".join(pieces)


def _leaf_span_mapper(raw: str, seg: _Seg):
    """Maps offsets in a string leaf's decoded text to offsets in the raw JSON text."""
    body_start = seg.start + 1
    body = raw[body_start:seg.end - 1]
    if "\\" not in body:
        return lambda i: body_start + i
    pos = _offset_map(body, len(seg.text))
    if pos is None:  # cannot map inside an oddly escaped string: report the whole leaf
        return lambda i: body_start if i == 0 else seg.end - 1
    return lambda i: body_start + pos[i]


def _render(f: _Field, pmap: ReplacementMap, out: list[Replacement], spans_out: list[Span] | None) -> str:
    """The redacted text of a field; what was replaced is appended to `out`, and its spans (in
    the field's raw coordinates) to `spans_out` unless that is None."""
    if f.mode != "json":
        seg = f.segs[0]
        if not seg.spans:
            return seg.text
        if spans_out is not None:
            spans_out.extend(seg.spans)
        return _render_spans(seg.text, seg.spans, pmap, None, out)
    pieces: list[str] = []
    last = 0
    for seg in f.segs:
        if seg.forced:
            replacement = pmap.replacement(seg.forced, seg.text)
            out.append(Replacement(seg.forced, replacement, seg.path))
            new = json.dumps(replacement, ensure_ascii=False)
            if spans_out is not None:
                start, end = (seg.start + 1, seg.end - 1) if seg.quoted else (seg.start, seg.end)
                spans_out.append(Span(start, end, seg.forced))
        elif seg.sub is not None:
            inner_spans: list[Span] | None = [] if spans_out is not None and seg.sub.canonical else None
            inner = _render(seg.sub, pmap, out, inner_spans)
            if inner == seg.sub.raw:
                continue
            new = json.dumps(inner, ensure_ascii=False)
            if inner_spans:
                to_raw = _leaf_span_mapper(f.raw, seg)
                spans_out.extend(Span(to_raw(s.start), to_raw(s.end), s.entity_type) for s in inner_spans)
        elif seg.spans:
            new = json.dumps(_render_spans(seg.text, seg.spans, pmap, seg.path, out), ensure_ascii=False)
            if spans_out is not None:
                to_raw = _leaf_span_mapper(f.raw, seg)
                spans_out.extend(Span(to_raw(s.start), to_raw(s.end), s.entity_type) for s in seg.spans)
        else:
            continue
        pieces.append(f.raw[last:seg.start])
        pieces.append(new)
        last = seg.end
    if not pieces:
        return f.raw
    pieces.append(f.raw[last:])
    return "".join(pieces)


# -- public API --------------------------------------------------------------------------------


class TrajectoryRedactor:
    """Redacts all texts of one trajectory with one replacement map (two passes: `add` all
    texts, then `finish`); placeholders unless a map is given."""

    def __init__(self, replacements: ReplacementMap | None = None, *, sweep: bool = True) -> None:
        self.replacements = replacements if replacements is not None else PlaceholderMap()
        self.sweep = sweep
        self._fields: list[_Field | None] = []

    def add(self, text: str | None, *, json_column: bool | None = None) -> int:
        """Queue a text; returns its index in `finish()`'s list. None stays None."""
        self._fields.append(None if text is None else analyse(text, json_column=json_column))
        return len(self._fields) - 1

    def finish(self) -> list[RedactedText | None]:
        fields = [f for f in self._fields if f is not None]
        known = _known_values(fields)
        self.replacements.prepare(known)
        if self.sweep:
            if known:
                for f in fields:
                    for seg in f.leaves():
                        if not seg.forced and seg.text:
                            _sweep(seg, known)
        results: list[RedactedText | None] = []
        for f in self._fields:
            if f is None:
                results.append(None)
                continue
            made: list[Replacement] = []
            spans: list[Span] = []
            text = _render(f, self.replacements, made, spans if f.canonical else None)
            results.append(RedactedText(text, tuple(sorted(spans)), tuple(made), f.mode))
        return results


def redact_messages(texts: Sequence[str | None], replacements: ReplacementMap | None = None,
                    *, json_columns: Sequence[bool | None] | None = None) -> list[RedactedText | None]:
    """Redact the texts of one trajectory together (consistent replacements, sweep)."""
    r = TrajectoryRedactor(replacements)
    for i, text in enumerate(texts):
        r.add(text, json_column=json_columns[i] if json_columns is not None else None)
    return r.finish()


def redact_text(text: str, replacements: ReplacementMap | None = None) -> RedactedText:
    """Plain-text redaction of one text (no JSON parsing)."""
    r = TrajectoryRedactor(replacements)
    r.add(text, json_column=False)
    out = r.finish()[0]
    assert out is not None
    return out


def redact_json(text: str, replacements: ReplacementMap | None = None) -> RedactedText:
    """JSON-aware redaction of one JSON text; malformed JSON falls back to text redaction
    (mode "json_as_text")."""
    r = TrajectoryRedactor(replacements)
    r.add(text, json_column=True)
    out = r.finish()[0]
    assert out is not None
    return out


def _row_key(table: str, row: Mapping[str, Any]) -> str:
    key = row.get("record_key")
    if key is not None:
        return str(key)
    return f"{row.get('source_uri')}#{row.get('source_line')}"  # quarantine rows


def redact_tables(tables: Mapping[str, Sequence[Mapping[str, Any]]],
                  surrogate_key: bytes | None = None) -> RedactionResult:
    """Redact the raw tables; replacements are consistent across all tables of one record_key:
    surrogates keyed by `surrogate_key` and the record key, or placeholders when it is None.

    Returns new rows (same columns, same order; input rows are not modified), findings without
    original values, counts by entity type, and the surrogates written. Tables not listed in
    REDACTED_COLUMNS are copied.
    """
    out: dict[str, list[dict[str, Any]]] = {name: [dict(r) for r in rows] for name, rows in tables.items()}
    # record_key → [(table, row index, column, json?, original type)]
    groups: dict[str, list[tuple[str, int, str, bool | None, str]]] = defaultdict(list)
    names = [t for t in TABLE_ORDER if t in tables] + [t for t in tables if t not in TABLE_ORDER]
    for table in names:
        columns = REDACTED_COLUMNS.get(table)
        if not columns:
            continue
        for i, row in enumerate(tables[table]):
            key = _row_key(table, row)
            for column, is_json in columns.items():
                value = row.get(column)
                if value is None or (isinstance(value, (bool, int, float)) and not is_json):
                    continue
                groups[key].append((table, i, column, is_json, type(value).__name__))
    findings: list[Finding] = []
    malformed = 0
    surrogates: list[tuple[str, str, str]] = []
    for key, cells in groups.items():
        replacements = SurrogateMap(surrogate_key, key) if surrogate_key is not None else PlaceholderMap()
        r = TrajectoryRedactor(replacements)
        for table, i, column, is_json, _ in cells:
            value = tables[table][i][column]
            if not isinstance(value, str):  # already-parsed JSON (dict/list/number)
                value = json.dumps(value, ensure_ascii=False)
                is_json = True
            r.add(value, json_column=is_json)
        for (table, i, column, _, original_type), red in zip(cells, r.finish()):
            assert red is not None
            if red.mode == "json_as_text":
                malformed += 1
            if red.replacements:
                new: Any = red.text
                if original_type not in ("str",):
                    new = json.loads(red.text)
                out[table][i][column] = new
                findings.extend(
                    Finding(key, table, i, column, rep.entity_type, rep.replacement, rep.path)
                    for rep in red.replacements
                )
        if isinstance(replacements, SurrogateMap):
            surrogates.extend((key, entity_type, value) for entity_type, value in sorted(replacements.issued))
    return RedactionResult(out, findings, malformed, surrogates)
