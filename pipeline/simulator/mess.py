"""The mess of real logs, planted on purpose and written down as ground truth.

Real landing folders hold re-sent batches (exact replays), the same conversation logged
twice by two integrations (near duplicates), lines cut off by a crashing writer, records
from a buggy logger (wrong types), invalid UTF-8, stray text, unknown fields and blank
lines. Each defect here is a pure function of one exported record's bytes, paired with the
quarantine reason `pipeline.core.formats.parse_file` must give for it, so ingestion's accounting
can be checked record by record. Corrupted records are extra copies: every simulated
trajectory still lands intact at least once, so outcome ground truth stays complete.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from random import Random
from typing import Any

from pipeline.core.formats import OpenAIMapping
from pipeline.simulator.traffic import SimRecord, locate_pii

NEAR_DUPLICATE_RATE = 0.03  # per trajectory: logged again by a second integration
EXACT_REPLAY_RATE = 0.03  # per trajectory: re-sent in a later batch
DEFECT_RATE = 0.04  # per record in a file: a corrupted copy (or an in-place oddity)
BLANK_LINE_RATE = 0.01  # per record: a blank line after it


@dataclass(frozen=True)
class Piece:
    """Bytes at one place in a landing file and what the parser must make of them."""

    data: bytes
    trajectory_id: str | None  # carried, or derived from (corrupted copies)
    kind: str  # record / exact_replay / near_duplicate / corrupt_copy / blank_line
    defect: str | None = None  # planted defect, in place or as this copy
    reason: str | None = None  # quarantine reason parse_file must give; None: parses (or is skipped)
    records: int = 1  # results parse_file yields for it


# -- near duplicates ---------------------------------------------------------------------------

# Trivial rewordings of the first user message: greeting swaps and sign-offs.
_REWORDINGS: tuple[Callable[[str], str], ...] = (
    lambda s: s + " Thanks!",
    lambda s: s + " Thank you.",
    lambda s: "Hello again. " + s,
    lambda s: s.replace("Hi, ", "Hello, ", 1) if s.startswith("Hi, ") else "Hi! " + s,
)


def near_duplicate(rec: SimRecord, rng: Random) -> SimRecord:
    """The same task logged again: new ids, shifted times, slightly different wording."""
    t = rec.trajectory
    new_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    shift = timedelta(seconds=rng.uniform(1, 900))
    first_user = next(s for s in t.steps if s.role == "user")
    reword = rng.choice(_REWORDINGS)
    steps = [replace(s, content=reword(s.content or "")) if s is first_user else s for s in t.steps]
    near = replace(
        t,
        trajectory_id=new_id,
        session_id=f"sess-{rng.getrandbits(48):012x}",
        started_at=_shift(t.started_at, shift),
        ended_at=_shift(t.ended_at, shift),
        steps=steps,
    )
    values = list(dict.fromkeys((p.entity_type, p.value) for p in rec.pii))
    return SimRecord(near, locate_pii(new_id, steps, values), rec.feedback_conflict)


def _shift(iso: str | None, by: timedelta) -> str | None:
    if iso is None:
        return None
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + by
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- defects of JSON-lines records ---------------------------------------------------------------


def truncated_line(data: bytes, rng: Random) -> bytes:
    """A line cut off mid-record, at an ASCII byte (so it stays valid UTF-8)."""
    cut = rng.randrange(10, len(data) - 2)
    while data[cut] >= 0x80:
        cut -= 1
    return data[:cut] + b"\n"


def invalid_utf8(data: bytes, rng: Random) -> bytes:
    """A Latin-1 'é' written into a line, the classic encoding bug."""
    letters = [i for i, b in enumerate(data[:-1]) if 0x61 <= b <= 0x7A]
    at = rng.choice(letters[len(letters) // 4 :])  # past the first keys
    return data[:at] + b"\xe9" + data[at + 1 :]


def _edit(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """A JSON line after `change` edits its object in place, written as the exporters write."""
    record = json.loads(data)
    change(record)
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def set_json_field(data: bytes, path: str, value: object) -> bytes:
    """The line with `value` at dotted `path` (through objects only)."""

    def change(record: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = record
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return _edit(data, change)


def otel_wrong_type(data: bytes) -> bytes:
    """A batch whose `scopeSpans` is an object instead of a list (a hand-rolled exporter)."""

    def change(record: dict[str, Any]) -> None:
        batch = record["resourceSpans"][0]
        batch["scopeSpans"] = batch["scopeSpans"][0]

    return _edit(data, change)


def otel_unknown_attribute(data: bytes, key: str, value: str) -> bytes:
    """An extra attribute on the root span (the first span of the batch)."""
    new = {"key": key, "value": {"stringValue": value}}
    return _edit(data, lambda record: record["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(new))


# -- defects of react_text transcripts -----------------------------------------------------------


def truncated_transcript(data: bytes, rng: Random) -> bytes:
    """A transcript cut off after some lines, before its Reward line."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[: rng.randrange(2, len(lines) - 1)])


def transcript_invalid_utf8(data: bytes, rng: Random) -> bytes:
    """A transcript with a Latin-1 byte in one of its User lines."""
    lines = data.splitlines(keepends=True)
    at = rng.choice([i for i, line in enumerate(lines) if line.startswith(b"User: ")])
    lines[at] = invalid_utf8(lines[at], rng)
    return b"".join(lines)


def replace_header(data: bytes, key: str, value: str) -> bytes:
    """A transcript with header `key` set to the raw text `value` (added after the id line)."""
    lines = data.splitlines(keepends=True)
    header = f"{key}: {value}\n".encode()
    kept = [line for line in lines if not line.startswith(f"{key}: ".encode())]
    return b"".join([kept[0], header, *kept[1:]])


STRAY_TEXT = (
    b"WARN transcript-exporter: flush timed out, retrying batch\n",
    b"-- log rotated --\n",
    b"Traceback (most recent call last): exporter.py line 88, in flush\n",
)


# -- the defects of each landing format ------------------------------------------------------------


@dataclass(frozen=True)
class Defect:
    name: str
    reason: str  # what parse_file must say about the corrupted copy
    make: Callable[[bytes, Random], bytes]  # intact record bytes → corrupted copy


def defects_for(fmt: str, mapping: OpenAIMapping | None) -> tuple[Defect, ...]:
    """The corrupted-copy defects that fit a format."""
    if fmt == "react_text":
        return (
            Defect("truncated", "missing_required_field", truncated_transcript),
            Defect("invalid_utf8", "invalid_utf8", transcript_invalid_utf8),
            Defect("wrong_type", "wrong_type", lambda d, r: replace_header(d, "success", '"yes"')),
            Defect("stray_text", "missing_required_field", lambda d, r: r.choice(STRAY_TEXT)),
        )
    wrong_type: dict[str, Callable[[bytes, Random], bytes]] = {
        "canonical": lambda d, r: set_json_field(d, *r.choice((("steps", "oops"), ("outcome.success", "yes")))),
        "openai_chat": lambda d, r: set_json_field(d, (mapping or OpenAIMapping.default()).success, "yes"),
        "otel_genai": lambda d, r: otel_wrong_type(d),
    }
    return (
        Defect("truncated", "invalid_json", truncated_line),
        Defect("invalid_utf8", "invalid_utf8", invalid_utf8),
        Defect("wrong_type", "wrong_type", wrong_type[fmt]),
    )


def with_unknown_field(fmt: str, data: bytes, rng: Random) -> bytes:
    """The record with a field no schema knows (it must parse, the field kept in `extra`)."""
    client = f"support-widget/{rng.randint(1, 4)}.{rng.randint(0, 20)}"
    if fmt == "react_text":
        return replace_header(data, "x_client", json.dumps(client))
    if fmt == "otel_genai":
        return otel_unknown_attribute(data, "app.client_version", client)
    return set_json_field(data, "x_client", {"sdk": client, "region": rng.choice(("us-east-1", "eu-west-1"))})


def plant(pieces: list[Piece], fmt: str, mapping: OpenAIMapping | None, rng: Random) -> list[Piece]:
    """One file's pieces with defects planted: a corrupted copy right after its source record
    (so stray text always follows a complete transcript), an unknown field in place, blank
    lines. Exact replays stay byte-identical to their original."""
    copies = defects_for(fmt, mapping)
    out: list[Piece] = []
    for piece in pieces:
        if piece.kind != "exact_replay" and rng.random() < DEFECT_RATE:
            pick = rng.randrange(len(copies) + 1)
            if pick == len(copies):
                out.append(replace(piece, data=with_unknown_field(fmt, piece.data, rng), defect="unknown_field"))
            else:
                d = copies[pick]
                out += [piece, Piece(d.make(piece.data, rng), piece.trajectory_id, "corrupt_copy", d.name, d.reason)]
        else:
            out.append(piece)
        if rng.random() < BLANK_LINE_RATE:
            out.append(Piece(rng.choice((b"\n", b"   \n")), None, "blank_line", "blank_line", records=0))
    return out
