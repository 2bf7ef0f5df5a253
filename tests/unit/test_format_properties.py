"""Property-based tests of the format adapters (hypothesis): whatever the bytes, `parse_file`
never raises, every record it yields is a `Parsed` or a `Quarantined` with a reason from
`REASONS`, and records are accounted for (one per non-blank line for the JSONL formats).

The example-based tests of the same contract are in test_formats.py; these search the input
space around them: arbitrary bytes, arbitrary JSON lines, valid records with one value
replaced, huge integers, and byte edits of valid exported files. Every test is derandomized
and keeps no example database, so each run checks the same inputs.

`parse_error` (an unexpected exception, caught per record) must never occur: each one these
properties found (integers past float range or Python's 4300-digit limit, OTLP times outside
fixed64) now has its own reason.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_formats import URI, full_trajectory, minimal_trajectory, parse

from pipeline.core.formats import (
    FORMATS,
    REASONS,
    OpenAIMapping,
    Parsed,
    Quarantined,
    detect_format,
    export,
    quarantine_unknown_format,
)
from pipeline.core.formats.guard import DETAIL_CHARS, EXCERPT_CHARS


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


WRAPPED = OpenAIMapping.preset("wrapped")
# Every way of calling parse_file: each format, and openai_chat with no mapping (per-record
# preset detection) and with an explicit one.
CODECS: list[tuple[str, OpenAIMapping | None]] = [
    ("canonical", None),
    ("openai_chat", None),
    ("openai_chat", WRAPPED),
    ("otel_genai", None),
    ("react_text", None),
]
JSON_CODECS = [c for c in CODECS if c[0] != "react_text"]
JSONL_FORMATS = ("canonical", "openai_chat")  # one record per non-blank line, in line order
CODEC_IDS = [fmt if mapping is None else f"{fmt}-wrapped" for fmt, mapping in CODECS]
JSON_CODEC_IDS = [i for i in CODEC_IDS if not i.startswith("react_text")]


# --- what every result must satisfy -----------------------------------------------------------


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    """(1-based number, line) as the adapters number them, written out here rather than taken
    from pipeline.core.formats.json_lines.iter_lines so that it is checked too: split on \\n, a \\r
    before it is not part of the line, and a leading UTF-8 byte order mark is not part of
    line 1 (see test_formats' byte-order-mark test)."""
    data = data.removeprefix(codecs.BOM_UTF8)
    if not data:
        return []
    lines = data.removesuffix(b"\n").split(b"\n")
    return [(n, line.removesuffix(b"\r")) for n, line in enumerate(lines, start=1)]


def _non_blank(data: bytes) -> list[int]:
    return [number for number, line in _lines(data) if line.strip()]


def _record_line(record: Parsed | Quarantined) -> int:
    return record.trajectory.provenance.line if isinstance(record, Parsed) else record.line


def check_records(
    data: bytes, fmt: str, mapping: OpenAIMapping | None = None, **kwargs: Any
) -> list[Parsed | Quarantined]:
    """Parse `data` and check the contract every format keeps; return the records."""
    records = parse(data, fmt, mapping=mapping, **kwargs)
    non_blank = _non_blank(data)
    for record in records:
        assert isinstance(record, (Parsed, Quarantined)), record
        if isinstance(record, Quarantined):
            assert record.reason in REASONS, record
            assert record.reason != "unknown_format", record  # only the caller emits it
            # parse_error is the guard's catch-all for an unexpected exception: a bug to fix
            assert record.reason != "parse_error", record
            assert record.source_uri == URI
            assert record.detail and len(record.detail.splitlines()) == 1, record
            assert len(record.detail) <= DETAIL_CHARS
            assert len(record.raw_excerpt) <= EXCERPT_CHARS
        else:
            provenance = record.trajectory.provenance
            assert (provenance.source_format, provenance.source_uri) == (fmt, URI)
            assert record.trajectory.steps, "a parsed trajectory has steps"
        # every record starts on a non-blank line of the input (so numbers are >= 1)
        assert _record_line(record) in non_blank, (_record_line(record), non_blank)
    # nothing is silently dropped: any non-blank content gives at least one record
    assert bool(records) == bool(non_blank)
    lines = [_record_line(r) for r in records]
    if fmt in JSONL_FORMATS:
        assert lines == non_blank  # exactly one record per non-blank line, in order
    elif fmt == "react_text":
        assert lines == sorted(set(lines))  # in order, each starting on its own line
        separators = [n for n, line in _lines(data) if line.startswith(b"=== TRAJECTORY")]
        assert set(separators) <= set(lines)  # every transcript header starts a record
    return records


# --- strategies ----------------------------------------------------------------------------------

# Bytes that mean something to one of the formats, so random input reaches past the first check.
_TOKENS = [
    b"\n", b"\r\n", b" ", b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b"1", b"\xff",
    b"\xc3", codecs.BOM_UTF8, b"=== TRAJECTORY t ===", b"Reward: 1", b"User: hi", b"Thought: x",
    b"Action: f[{}]", b"Observation: ok", b'{"schema_version": "1.0", "steps": []}',
    b'{"resourceSpans": []}', b'{"id": "x", "messages": []}',
]  # fmt: skip
noisy_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(_TOKENS) | st.binary(max_size=8), max_size=40).map(b"".join),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def _exported(fmt: str, mapping: OpenAIMapping | None) -> bytes:
    return export(fmt, [full_trajectory("t-1"), minimal_trajectory("t-2")], mapping)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _json_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys / indices) to a value inside `value`, the root included."""
    paths = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _json_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            paths += _json_paths(item, (*path, i))
    return paths


# --- properties ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "mapping"), CODECS, ids=CODEC_IDS)
@_settings(max_examples=150)
@given(data=noisy_bytes)
def test_arbitrary_bytes_never_raise(fmt: str, mapping: OpenAIMapping | None, data: bytes) -> None:
    check_records(data, fmt, mapping)


@pytest.mark.parametrize(("fmt", "mapping"), JSON_CODECS, ids=JSON_CODEC_IDS)
@_settings(max_examples=150)
@given(values=st.lists(json_values, min_size=1, max_size=4), blank=st.sampled_from([b"", b" \t"]))
def test_arbitrary_json_lines_never_raise(
    fmt: str, mapping: OpenAIMapping | None, values: list[Any], blank: bytes
) -> None:
    """Any JSON value per line, blank lines between: the JSONL formats give one record per
    line (check_records). otel_genai groups spans by trace across lines, so for it only the
    general contract is checked."""
    lines = [json.dumps(v, ensure_ascii=False).encode() for v in values]
    check_records(b"\n".join(line + b"\n" + blank for line in lines), fmt, mapping)


@pytest.mark.parametrize(("fmt", "mapping"), JSON_CODECS, ids=JSON_CODEC_IDS)
@_settings(max_examples=150)
@given(data=st.data())
def test_a_valid_record_with_one_value_replaced_never_raises(
    fmt: str, mapping: OpenAIMapping | None, data: st.DataObject
) -> None:
    """Take a valid exported record, replace (or delete) one value anywhere inside it with an
    arbitrary JSON value: still the contract (one record per line for the JSONL formats)."""
    record = json.loads(_exported(fmt, mapping).splitlines()[0])
    *parents, last = data.draw(st.sampled_from(_json_paths(record)[1:]), label="path")
    node = _at(record, tuple(parents))
    if isinstance(node, dict) and data.draw(st.booleans(), label="delete"):
        del node[last]
    else:
        node[last] = data.draw(json_values, label="value")
    line = json.dumps(record, ensure_ascii=False).encode() + b"\n"
    check_records(line, fmt, mapping)


def _is_number(value: Any) -> bool:
    numeric_string = isinstance(value, str) and value.lstrip("-").isdigit()  # OTLP's 64-bit ints
    return numeric_string or (isinstance(value, (int, float)) and not isinstance(value, bool))


# Integer literals of any size, up to past Python's 4300-digit int/str conversion limit.
_BIG_INTEGERS = st.builds(
    lambda sign, digits, first: sign + str(first) + "0" * digits,
    st.sampled_from(["", "-"]),
    st.integers(0, 6000),
    st.integers(1, 9),
)


@pytest.mark.parametrize(("fmt", "mapping"), JSON_CODECS, ids=JSON_CODEC_IDS)
@_settings(max_examples=100)
@given(data=st.data())
def test_huge_integers_never_raise(
    fmt: str, mapping: OpenAIMapping | None, data: st.DataObject
) -> None:
    """Replace one number of a valid record (or an OTLP integer string, such as a span time)
    with an integer of any size, past float range and past Python's int/str digit limit: the
    record still parses or is quarantined with a reason."""
    record = json.loads(_exported(fmt, mapping).splitlines()[0])
    numbers = [p for p in _json_paths(record)[1:] if _is_number(_at(record, p))]
    *parents, last = data.draw(st.sampled_from(numbers), label="path")
    literal = data.draw(_BIG_INTEGERS, label="integer")
    as_string = isinstance(_at(record, (*parents, last)), str)
    _at(record, tuple(parents))[last] = "\0number\0"
    text = json.dumps(record, ensure_ascii=False)
    line = text.replace('"\\u0000number\\u0000"', f'"{literal}"' if as_string else literal)
    check_records(line.encode() + b"\n", fmt, mapping)


_EDITS = st.sampled_from(["delete", "insert", "truncate", "replace"])


@pytest.mark.parametrize(("fmt", "mapping"), CODECS, ids=CODEC_IDS)
@_settings(max_examples=150)
@given(data=st.data())
def test_edited_export_never_raises(
    fmt: str, mapping: OpenAIMapping | None, data: st.DataObject
) -> None:
    """A valid exported file with a few byte edits (cut a slice, insert bytes, truncate,
    overwrite one byte)."""
    content = bytearray(_exported(fmt, mapping))
    for edit in data.draw(st.lists(_EDITS, min_size=1, max_size=4), label="edits"):
        at = data.draw(st.integers(0, len(content)), label="at")
        if edit == "delete":
            del content[at : data.draw(st.integers(at, min(len(content), at + 64)), label="to")]
        elif edit == "insert":
            inserted = st.sampled_from(_TOKENS) | st.binary(max_size=8)
            content[at:at] = data.draw(inserted, label="bytes")
        elif edit == "truncate":
            del content[at:]
        elif at < len(content):
            content[at] = data.draw(st.sampled_from(b'{}[]":,\\\n\r\xff0a '), label="byte")
    check_records(bytes(content), fmt, mapping)


@pytest.mark.parametrize(("fmt", "mapping"), CODECS, ids=CODEC_IDS)
@_settings(max_examples=60)
@given(data=noisy_bytes, limit=st.integers(0, 64))
def test_a_tiny_size_limit_never_raises(
    fmt: str, mapping: OpenAIMapping | None, data: bytes, limit: int
) -> None:
    """Records over `max_record_bytes` are quarantined, never half-read."""
    records = check_records(data, fmt, mapping, max_record_bytes=limit)
    if fmt in JSONL_FORMATS:
        lines = dict(_lines(data))
        for record in records:
            if len(lines[_record_line(record)]) > limit:
                assert isinstance(record, Quarantined) and record.reason == "record_too_large"


_FILENAMES = st.builds(
    lambda stem, suffix: stem + suffix,
    st.text(max_size=12),
    st.sampled_from(["", ".jsonl", ".json", ".ndjson", ".txt", ".JSONL", ".TXT", ".log", ".gz"]),
)


@_settings(max_examples=300)
@given(
    filename=_FILENAMES,
    head=noisy_bytes | st.sampled_from(FORMATS).map(lambda fmt: _exported(fmt, None)[:200]),
)
def test_detect_format_never_raises(filename: str, head: bytes) -> None:
    detected = detect_format(filename, head)
    assert detected is None or detected in FORMATS
    name = filename.lower()
    if name.endswith(".txt"):
        assert detected in (None, "react_text")  # a .txt name rules out the JSON formats
    if name.endswith((".jsonl", ".json", ".ndjson")):
        assert detected != "react_text"  # and a JSON name rules out text


@_settings(max_examples=150)
@given(data=noisy_bytes, filename=st.text(max_size=20))
def test_unknown_format_quarantines_every_non_blank_line(data: bytes, filename: str) -> None:
    records = list(quarantine_unknown_format(data, source_uri=URI, filename=filename))
    assert [r.line for r in records] == _non_blank(data)
    for record in records:
        assert isinstance(record, Quarantined)
        assert (record.reason, record.source_uri) == ("unknown_format", URI)
        assert record.detail and len(record.detail.splitlines()) == 1
        assert len(record.raw_excerpt) <= EXCERPT_CHARS


def _outcome(decode: Any, text: str | bytes) -> tuple[str, Any]:
    try:
        return "value", decode(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError too
        return "refused", type(error).__name__


def _reference(text: str | bytes) -> Any:
    """What ingestion read before msgspec: the stdlib's strict decoder, bytes as UTF-8."""
    from pipeline.core.formats.json_lines import STRICT_JSON

    return STRICT_JSON.decode(text if isinstance(text, str) else text.decode("utf-8"))


_json_texts = (
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False))
    | json_values.map(lambda v: json.dumps(v))  # \\u escapes, lone surrogates included
    | st.text(max_size=40)
    | st.sampled_from(['{"a": NaN}', "[1e400]", "-Infinity", "1" * 5000, "[" * 3000 + "]" * 3000, '"\\ud800"'])
)


@_settings(max_examples=600)
@given(text=_json_texts | _json_texts.map(str.encode) | noisy_bytes)
def test_the_fast_json_decoder_reads_exactly_what_the_strict_stdlib_reader_reads(text: str | bytes) -> None:
    """msgspec decodes ingestion's JSON; anything it refuses falls back to the stdlib reader.
    Whatever the input, the result is the stdlib reader's: the same value (and value types),
    or a refusal."""
    from pipeline.core.formats.json_lines import strict_json

    fast, reference = _outcome(strict_json, text), _outcome(_reference, text)
    assert fast[0] == reference[0]
    if fast[0] == "value":
        assert json.dumps(fast[1], sort_keys=True) == json.dumps(reference[1], sort_keys=True)
        assert _types(fast[1]) == _types(reference[1])


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__
