"""Landing formats → canonical `Trajectory` records, and back.

Ingestion reads raw files of four formats (docs/trajectory_schema.md): `canonical`,
`openai_chat`, `otel_genai` and `react_text`. This package is the only place that knows
their shapes. It is pure: bytes (or a stream of them) in, records out, no other I/O. JSON
records may come one per line, or in a JSON array or object (`containers`, which also
reads gzip and zstd).

The contract that ingestion's accounting rests on: `parse_file` yields exactly one `Parsed`
or one `Quarantined` per input record (a non-blank line of a JSONL file or an element of a
JSON array or object, for the JSON formats; a transcript,
or a run of text outside one, for react_text; a trace id, or a line that yields no spans, for
otel_genai). Nothing is dropped and nothing raises: a record that cannot be read becomes a
`Quarantined` with a code from `REASONS` and a one-line detail naming the field.
`unknown_format` is the caller's: when `detect_format` returns None the caller quarantines
the file's lines itself.

`export` writes landing-format bytes from trajectories (the simulator writes its landing
files with it); `parse_file(export(...))` gives back equal trajectories apart from
provenance and the per-format losses listed in each format module's docstring.

The four adapters share their machinery, which is what makes them agree: `guard` (one
outcome per record, the reasons), `json_lines` (lines and strict JSON), `containers` (how a
file holds its records), `checks` (typed
checks of raw values) and `fields` (trajectory fields to plain values, dotted source paths).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from pipeline.core.formats import canonical, openai_chat, otel_genai, react_text
from pipeline.core.formats.containers import first_record, json_items
from pipeline.core.formats.guard import REASONS, Parsed, Quarantined, Record, Source, attempt, quarantine
from pipeline.core.formats.json_lines import Prepare, is_blank, iter_lines
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


JSON_FORMATS: tuple[str, ...] = ("canonical", "openai_chat")  # records are JSON objects: any container
Finish = Callable[[Trajectory], Trajectory]


def parse_file(
    data: bytes | IO[bytes],
    *,
    fmt: str,
    source_uri: str,
    raw_commit: str | None,
    container: str = "jsonl",
    mapping: OpenAIMapping | None = None,
    prepare: Prepare | None = None,
    finish: Finish | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Parsed | Quarantined]:
    """One Parsed or Quarantined per record of `data` (bytes, or a decompressed binary stream
    read once, a record at a time), lazily.

    `container` says how a JSON format's records are held (containers.CONTAINERS); the other
    formats are line-based text. `mapping` applies to openai_chat (None: each record's
    matching preset). A source's hooks (pipeline.core.sources): `prepare` rewrites each JSON
    record before it is read, `finish` completes each parsed trajectory; an error in either
    quarantines that record only. Raises only for an unknown `fmt` or `container`."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    src = Source(source_uri, raw_commit, max_record_bytes)
    records: Iterator[Record]
    if fmt == "canonical":
        records = canonical.parse(json_items(stream, container), src, prepare)
    elif fmt == "openai_chat":
        records = openai_chat.parse(json_items(stream, container), src, mapping, prepare)
    elif fmt in FORMATS:
        if container != "jsonl":
            raise ValueError(f"{fmt} files are line-based: container {container!r} does not apply")
        records = _TEXT_PARSERS[fmt](stream, src)
    else:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return records if finish is None else (_finished(r, finish, src) for r in records)


_TEXT_PARSERS = {"otel_genai": otel_genai.parse, "react_text": react_text.parse}


def _finished(record: Record, finish: Finish, src: Source) -> Record:
    if isinstance(record, Quarantined):
        return record
    t = record.trajectory
    return attempt(src, t.provenance.line, f"trajectory_id={t.trajectory_id}", lambda: Parsed(finish(t)))


def quarantine_unknown_format(
    data: bytes | IO[bytes], *, source_uri: str, filename: str
) -> Iterator[Quarantined]:
    """For a file whose format is unknown: one `unknown_format` per non-blank line, so its
    records are still counted and kept (with the same line numbering as `parse_file`)."""
    src = Source(source_uri, None, DEFAULT_MAX_RECORD_BYTES)
    detail = f"could not detect the format of {filename}; declare it in the source registry"
    for number, line in iter_lines(data):
        if not is_blank(line):
            yield quarantine("unknown_format", detail, src, number, line)


def export(fmt: str, trajectories: Iterable[Trajectory], mapping: OpenAIMapping | None = None) -> bytes:
    """Landing-format bytes for `trajectories` (provenance is not written)."""
    if fmt == "openai_chat":
        return openai_chat.export(trajectories, mapping)
    exporters = {"canonical": canonical.export, "otel_genai": otel_genai.export, "react_text": react_text.export}
    if fmt not in exporters:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return exporters[fmt](trajectories)


def detect_format(filename: str, head: bytes, container: str | None = "jsonl") -> str | None:
    """The format of a file from its name and first few KB, or None when unknown.

    An array or object container (`container`, see containers.detect_container): its first
    record decides, when the head holds all of it. JSONL: the first line that parses decides
    (`schema_version`+`steps` → canonical, `resourceSpans` → otel_genai, a conversation list
    at a mapping preset's path → openai_chat); if none parses (the head cut a long first
    line), the first key decides.
    Text: `=== TRAJECTORY`, `Thought:` or `Action:` at a line start → react_text. A `.txt`
    name rules out the JSON formats and a `.jsonl`/`.json`/`.ndjson` name rules out text.
    """
    if container in ("json_array", "json_object"):
        return _classify(first_record(head, container))
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
