"""Bytes, lines and strict JSON as the formats read them: lines without their line endings
(a BOM marks the encoding, it is not part of line 1), UTF-8 checked, JSON read strictly
(RFC 8259: no NaN, no Infinity, no number beyond the float range), and JSON Lines parsed
one record per line through the guard."""

from __future__ import annotations

import codecs
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, NamedTuple

import msgspec

from pipeline.core.formats.guard import DETAIL_CHARS, Record, RecordError, Source, parse_record, quarantine
from pipeline.core.record import Trajectory


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def iter_lines(source: bytes | IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its \\n or \\r\\n), one line in memory at a time
    (`source` is the bytes or a binary stream of them). A leading UTF-8 byte order mark
    (Windows tools write one) marks the file's encoding; it is not part of line 1."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    for number, line in enumerate(stream, 1):
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        line = line.removesuffix(b"\n")
        yield number, line.removesuffix(b"\r")


def is_blank(line: bytes) -> bool:
    return not line.strip()


def decode_utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start : err.start + 4]
        detail = f"{where}: invalid UTF-8 at byte {err.start} ({bad!r})"
        raise RecordError("invalid_utf8", detail) from None


def check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise RecordError("record_too_large", f"record is {size} bytes, over the limit of {max_bytes}")


def _finite_number(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise ValueError(f"{literal[:20]} is beyond the range of a number")
    return number


def _not_a_json_number(constant: str) -> float:
    raise ValueError(f"{constant} is not a JSON number")


# Strict RFC 8259 JSON: Python's json module also reads NaN and Infinity, and turns a literal
# beyond the float range into inf. Neither is JSON, DuckDB's JSON columns and downstream tools
# would carry or choke on them, and orjson (which writes the JSON columns) would write null.
STRICT_JSON = json.JSONDecoder(parse_float=_finite_number, parse_constant=_not_a_json_number)
# msgspec's C decoder reads the same strict JSON to the same values, several times faster (it
# validates UTF-8 itself). It refuses a little more (a lone surrogate escape, which Python
# reads): anything it refuses goes through STRICT_JSON, which words the error or reads it.
_FAST_JSON = msgspec.json.Decoder()


def strict_json(text: str | bytes) -> Any:
    """Strict JSON, or STRICT_JSON's exception (bytes must be UTF-8)."""
    try:
        return _FAST_JSON.decode(text)
    except Exception:  # msgspec.DecodeError, RecursionError, UnicodeDecodeError, ...
        return STRICT_JSON.decode(text if isinstance(text, str) else text.decode("utf-8"))


def loads(text: str, where: str) -> Any:
    try:
        return strict_json(text)
    except json.JSONDecodeError as err:
        truncated = " (truncated?)" if err.pos >= len(text.rstrip()) else ""
        detail = f"{where}: {err.msg} at column {err.colno}{truncated}"
        raise RecordError("invalid_json", detail) from None
    except ValueError as err:  # e.g. an integer literal over Python's 4300-digit limit
        raise RecordError("invalid_json", f"{where}: {err}"[:DETAIL_CHARS]) from None


def decode_object(line: bytes, max_bytes: int) -> dict[str, Any]:
    """One JSONL line → its JSON object, or the RecordError saying why not."""
    check_size(len(line), max_bytes)
    try:
        value = _FAST_JSON.decode(line)
    except Exception:  # not UTF-8, not JSON, or JSON only Python reads: the exact reason
        value = loads(decode_utf8(line, "line"), "line is not valid JSON")
    if not isinstance(value, dict):
        raise RecordError("not_an_object", f"expected a JSON object per line, got {json_type(value)}")
    return value


class JsonItem(NamedTuple):
    """One record as a container yields it (containers.json_items): the raw line of a JSONL
    file (decoded by the guard), or the decoded value of an array/object element, or the
    error that stopped the container at this position."""

    position: int  # 1-based: the line (jsonl) or the record's place in the array/object
    raw: bytes | None = None
    value: Any = None
    key: str | None = None  # json_object: the record's key
    error: RecordError | None = None


Build = Callable[[dict[str, Any], JsonItem], Trajectory]
# A source's hook on each JSON record before its format reads it: (record, its key in a
# json_object container, where this format keeps each trajectory field) → the record to read.
Prepare = Callable[[dict[str, Any], "str | None", Mapping[str, str]], dict[str, Any]]


def parse_json_items(items: Iterable[JsonItem], src: Source, build: Build) -> Iterator[Record]:
    """One Parsed or Quarantined per item; `build(object, item)`."""
    for item in items:
        if item.error is not None:
            yield quarantine(item.error.reason, item.error.detail, src, item.position, b"")
        else:
            raw = item.raw if item.raw is not None else item.value
            yield parse_record(src, item.position, raw, _from_item, build, item, src.max_record_bytes)


def _from_item(build: Build, item: JsonItem, max_bytes: int) -> Trajectory:
    if item.raw is not None:
        return build(decode_object(item.raw, max_bytes), item)
    if not isinstance(item.value, dict):
        raise RecordError("not_an_object", f"expected a JSON object per record, got {json_type(item.value)}")
    return build(item.value, item)


def jsonl(records: Iterable[Any]) -> bytes:
    return b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in records)
