"""Landing formats → canonical `Trajectory` records, and back.

Ingestion reads raw files of four formats (docs/trajectory_schema.md): `canonical`,
`openai_chat`, `otel_genai` and `react_text`. This package is the only place that knows
their shapes. It is pure: bytes in, records out, no I/O.

The contract that ingestion's accounting rests on: `parse_file` yields exactly one `Parsed`
or one `Quarantined` per input record (a non-blank line of the JSONL formats; a transcript,
or a run of text outside one, for react_text; a trace id, or a line that yields no spans, for
otel_genai). Nothing is dropped and nothing raises: a record that cannot be read becomes a
`Quarantined` with a code from `REASONS` and a one-line detail naming the field.
`unknown_format` is the caller's: when `detect_format` returns None the caller quarantines
the file's lines itself.

`export` writes landing-format bytes from trajectories (the simulator writes its landing
files with it); `parse_file(export(...))` gives back equal trajectories apart from
provenance and the per-format losses listed in each format module's docstring.

The four adapters share their machinery, which is what makes them agree: `guard` (one
outcome per record, the reasons), `json_lines` (lines and strict JSON), `checks` (typed
checks of raw values) and `fields` (trajectory fields to plain values, dotted source paths).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, NamedTuple

from pipeline.core.formats import canonical, openai_chat, otel_genai, react_text
from pipeline.core.formats.guard import REASONS, Parsed, Quarantined, Record, Source, quarantine
from pipeline.core.formats.json_lines import is_blank, iter_lines
from pipeline.core.formats.openai_chat import OpenAIMapping
from pipeline.core.record import Trajectory

__all__ = [
    "FORMATS",
    "REASONS",
    "OpenAIMapping",
    "Parsed",
    "Quarantined",
    "detect_format",
    "export",
    "parse_file",
    "quarantine_unknown_format",
]

# The same names as pipeline.core.record.SOURCE_FORMATS (a test keeps them equal).
FORMATS: tuple[str, ...] = ("canonical", "openai_chat", "otel_genai", "react_text")

DEFAULT_MAX_RECORD_BYTES = 4_000_000
_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_TEXT_SUFFIXES = (".txt",)
_REACT_MARK = re.compile(r"=== TRAJECTORY|Thought:|Action:")
_JSON_PREFIX = {"resourceSpans": "otel_genai", "schema_version": "canonical"}
_FIRST_KEY = re.compile(r'\{\s*"([^"]+)"')


class _Codec(NamedTuple):
    parse: Callable[[bytes, Source], Iterator[Record]]
    export: Callable[[Iterable[Trajectory]], bytes]


def _codec(fmt: str, mapping: OpenAIMapping | None) -> _Codec:
    codecs = {
        "canonical": _Codec(canonical.parse, canonical.export),
        "openai_chat": _Codec(
            partial(openai_chat.parse, mapping=mapping), partial(openai_chat.export, mapping=mapping)
        ),
        "otel_genai": _Codec(otel_genai.parse, otel_genai.export),
        "react_text": _Codec(react_text.parse, react_text.export),
    }
    if fmt not in codecs:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return codecs[fmt]


def parse_file(
    data: bytes,
    *,
    fmt: str,
    source_uri: str,
    raw_commit: str | None,
    mapping: OpenAIMapping | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Parsed | Quarantined]:
    """One Parsed or Quarantined per record of `data`, lazily. `mapping` applies to
    openai_chat (None: each record's matching preset). Raises only for an unknown `fmt`."""
    return _codec(fmt, mapping).parse(data, Source(source_uri, raw_commit, max_record_bytes))


def quarantine_unknown_format(data: bytes, *, source_uri: str, filename: str) -> Iterator[Quarantined]:
    """For a file whose format is unknown: one `unknown_format` per non-blank line, so its
    records are still counted and kept (with the same line numbering as `parse_file`)."""
    src = Source(source_uri, None, DEFAULT_MAX_RECORD_BYTES)
    detail = f"could not detect the format of {filename}; set a format override"
    for number, line in iter_lines(data):
        if not is_blank(line):
            yield quarantine("unknown_format", detail, src, number, line)


def export(fmt: str, trajectories: Iterable[Trajectory], mapping: OpenAIMapping | None = None) -> bytes:
    """Landing-format bytes for `trajectories` (provenance is not written)."""
    return _codec(fmt, mapping).export(trajectories)


def detect_format(filename: str, head: bytes) -> str | None:
    """The format of a file from its name and first few KB, or None when unknown.

    JSON: the first line that parses decides (`schema_version`+`steps` → canonical,
    `resourceSpans` → otel_genai, a conversation list at a mapping preset's path →
    openai_chat); if none parses (the head cut a long first line), the first key decides.
    Text: `=== TRAJECTORY`, `Thought:` or `Action:` at a line start → react_text. A `.txt`
    name rules out the JSON formats and a `.jsonl`/`.json`/`.ndjson` name rules out text.
    """
    name = filename.lower()
    lines = [
        s for s in (line.strip() for line in head.decode("utf-8-sig", errors="replace").splitlines()) if s
    ]
    if not name.endswith(_TEXT_SUFFIXES):
        json_lines = [s for s in lines if s.startswith("{")]
        for line in json_lines:
            try:
                return _classify(json.loads(line))
            except (ValueError, RecursionError):  # too deeply nested to look at: not detected
                continue
        if json_lines:
            key = _FIRST_KEY.match(json_lines[0])
            return _JSON_PREFIX.get(key[1]) if key else None
    if not name.endswith(_JSON_SUFFIXES) and any(_REACT_MARK.match(s) for s in lines):
        return "react_text"
    return None


def _classify(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if "schema_version" in record and "steps" in record:
        return "canonical"
    if "resourceSpans" in record:
        return "otel_genai"
    return "openai_chat" if openai_chat.match_preset(record) else None
