"""The per-record guard every format adapter parses through: each record becomes exactly one
`Parsed` or one `Quarantined` (a reason from REASONS and a one-line detail an operator can
act on), and whatever goes wrong inside one record never stops the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.core.record import Provenance, Trajectory

REASONS: tuple[str, ...] = (
    "invalid_utf8",  # the record's bytes are not UTF-8
    "invalid_json",  # not parseable JSON, truncated lines included
    "not_an_object",  # a JSONL line holds JSON that is not an object
    "record_too_large",  # over max_record_bytes; not decoded at all
    "missing_required_field",  # e.g. no trajectory id, a trace without its root span, no Reward line
    "wrong_type",  # a field holds the wrong JSON type; detail names the path
    "invalid_tool_arguments",  # arguments not JSON, or JSON but not an object
    "unsupported_schema_version",  # canonical record of another major schema version
    "empty_trajectory",  # no steps
    "invalid_step_order",  # unknown role, or canonical step indices not 0..n-1
    "unknown_format",  # the file's format could not be detected (emitted by the caller)
    "corrupt_compression",  # a gzip/zstd stream that cannot be read on: the rest of the file
    "parse_error",  # any unexpected exception while parsing one record
)
EXCERPT_CHARS = 500
DETAIL_CHARS = 500
_T = TypeVar("_T")


@dataclass(frozen=True)
class Parsed:
    trajectory: Trajectory  # provenance (source, line) is inside


@dataclass(frozen=True)
class Quarantined:
    reason: str  # one of REASONS
    detail: str  # one line: what exactly was wrong, with the field path
    source_uri: str
    line: int  # 1-based line of the record
    raw_excerpt: str  # first EXCERPT_CHARS of the record, undecodable bytes replaced


Record = Parsed | Quarantined


class RecordError(Exception):
    """Raised while parsing one record; `attempt` turns it into a Quarantined."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Source:
    """Where the bytes came from, and the per-record size limit."""

    uri: str
    raw_commit: str | None
    max_record_bytes: int

    def provenance(self, fmt: str, line: int) -> Provenance:
        return Provenance(source_format=fmt, source_uri=self.uri, line=line, raw_commit=self.raw_commit)


# --- the per-record guard ---------------------------------------------------------------


def excerpt(raw: Any) -> str:
    """The start of a record: its bytes or text, or a decoded JSON value (an array element)
    written back as JSON."""
    if isinstance(raw, bytes):
        return raw[:EXCERPT_CHARS].decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raw = json.dumps(raw, ensure_ascii=False, default=str)
    return raw[:EXCERPT_CHARS]


def quarantine(reason: str, detail: str, src: Source, line: int, raw: Any) -> Quarantined:
    one_line = " ".join(detail.splitlines())
    if len(one_line) > DETAIL_CHARS:
        one_line = one_line[: DETAIL_CHARS - 1] + "…"
    return Quarantined(reason, one_line, src.uri, line, excerpt(raw))


def attempt(
    src: Source, line: int, raw: bytes | str, build: Callable[..., _T], *args: Any
) -> _T | Quarantined:
    """`build(*args)` for one record; whatever goes wrong becomes that record's Quarantined."""
    try:
        return build(*args)
    except RecordError as err:
        return quarantine(err.reason, err.detail, src, line, raw)
    except Exception as err:  # one bad record must never stop the file
        return quarantine("parse_error", f"{type(err).__name__}: {err}", src, line, raw)


def parse_record(
    src: Source, line: int, raw: bytes | str, build: Callable[..., Trajectory], *args: Any
) -> Record:
    """One record's outcome: Parsed(build(*args)), or the Quarantined saying why not."""
    return attempt(src, line, raw, _parsed, build, *args)


def _parsed(build: Callable[..., Trajectory], *args: Any) -> Parsed:
    return Parsed(build(*args))
