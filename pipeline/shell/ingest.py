"""Raw files → canonical rows, with every record accounted for.

Pure functions: bytes and names in, table rows and counts out. The Dagster asset commits the
files to lakeFS, parses them meanwhile, binds the rows to the commit (`bind_commit`) and
writes them to DuckDB; nothing here does I/O. Files are independent, so they are parsed in
the worker processes of `file_workers` (each file's rows become Arrow tables where they
were parsed).

The accounting rule: for every file, records read = records ingested + records quarantined.
A file whose format cannot be detected is quarantined line by line (`unknown_format`), so
even an unreadable file's records are counted and kept with their source and line.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, is_dataclass, replace
from functools import partial
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.formats import (
    JSON_FORMATS,
    OpenAIMapping,
    Parsed,
    Quarantined,
    detect_format,
    parse_file,
    quarantine_unknown_format,
)
from pipeline.core.formats.containers import (
    DECOMPRESSION_ERRORS,
    READ_CHUNK,
    decompressed,
    detect_compression,
    detect_container,
    until_unreadable,
)
from pipeline.core.record import Trajectory, shallow_fields
from pipeline.core.sources import SourceRegistry, SourceSpec
from pipeline.shell.lakefs_store import FileDigest, partition_prefix
from pipeline.shell.warehouse import RAW_SCHEMA, SCHEMAS, arrow_schema, to_arrow

DETECTION_HEAD_BYTES = 64 * 1024
TABLES = tuple(SCHEMAS[RAW_SCHEMA])  # the canonical tables and the quarantine


@dataclass(frozen=True)
class SourceFile:
    name: str  # the file's path within the partition ("tau/results.json")
    uri: str  # lakefs://repo/commit/path
    data: bytes = b""
    path: Path | None = None  # when set, the file is read from here as a stream, not from `data`

    def open(self) -> IO[bytes]:
        return self.path.open("rb") if self.path is not None else io.BytesIO(self.data)


@dataclass(frozen=True)
class IngestRules:
    """Which source each file belongs to (the registry, pipeline.core.sources), and the run
    config's overrides of it, matched by glob on the file name (first match wins)."""

    registry: SourceRegistry = SourceRegistry()
    format_overrides: Mapping[str, str] = field(default_factory=dict)
    openai_mappings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def source_for(self, name: str) -> SourceSpec:
        source = self.registry.for_file(name)
        fmt = next((f for pattern, f in self.format_overrides.items() if fnmatch.fnmatch(name, pattern)), None)
        spec = next((m for pattern, m in self.openai_mappings.items() if fnmatch.fnmatch(name, pattern)), None)
        if fmt is not None:
            source = replace(source, format=fmt)
        if spec is not None:
            source = replace(source, mapping=OpenAIMapping.from_dict(dict(spec)))
        return source


@dataclass(frozen=True)
class FileLayout:
    """How a file's records are stored: declared by its source or detected from its head."""

    compression: str
    container: str | None  # None: not JSON (a text format)
    format: str | None  # None: not detected, every record quarantined as unknown_format


def file_layout(source: SourceSpec, name: str, open_file: Callable[[], IO[bytes]]) -> FileLayout:
    with open_file() as raw:
        compression = source.compression
        if compression == "auto":
            compression = detect_compression(raw.read(4))
            raw.seek(0)
        head = _head(decompressed(raw, compression))
    container = source.container if source.container != "auto" else detect_container(head)
    fmt = source.format if source.format != "auto" else detect_format(name, head, container)
    if fmt not in JSON_FORMATS:
        container = None if fmt is None and container is None else "jsonl"
    return FileLayout(compression, container, fmt)


def _head(stream: IO[bytes]) -> bytes:
    """The first DETECTION_HEAD_BYTES, or as much as a corrupt or cut-off compressed file
    yields before it breaks (reading it again says what is wrong)."""
    head = bytearray()
    try:
        while len(head) < DETECTION_HEAD_BYTES and (chunk := stream.read1(DETECTION_HEAD_BYTES - len(head))):
            head += chunk
    except DECOMPRESSION_ERRORS:
        pass
    return bytes(head)


class _HashingReader(io.RawIOBase):
    """The file's bytes as they are read, counted and MD5-hashed on the way: the digest of
    exactly what was parsed, which the lakeFS commit is checked against."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.md5.update(data)
        self.size += len(data)
        return len(data)

    def drain(self) -> FileDigest:
        while self.readinto(bytearray(READ_CHUNK)):
            pass
        return FileDigest(self.size, self.md5.hexdigest())


@dataclass
class FileStats:
    name: str
    uri: str
    source_format: str | None
    source: str = SourceSpec().name
    container: str | None = None
    compression: str = "none"
    digest: FileDigest | None = None  # of the bytes parsed
    records_read: int = 0
    ingested: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


Rows = list[dict[str, Any]]
TableT = TypeVar("TableT", Rows, pa.Table)
_T = TypeVar("_T")


@dataclass
class IngestResult(Generic[TableT]):
    tables: dict[str, TableT]  # table name → its rows, as row dicts or as one Arrow table
    files: list[FileStats]

    @property
    def records_read(self) -> int:
        return sum(f.records_read for f in self.files)

    @property
    def ingested(self) -> int:
        return sum(f.ingested for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def by_format(self) -> dict[str, int]:
        return by_format(self.files)

    def by_reason(self) -> dict[str, int]:
        return by_reason(self.files)




def by_format(files: Iterable[FileStats]) -> dict[str, int]:
    """Trajectories ingested per source format (a file's records all have the file's format)."""
    counts: Counter[str] = Counter()
    for f in files:
        if f.ingested:
            counts[f.source_format or "unknown"] += f.ingested
    return dict(sorted(counts.items()))


def by_reason(files: Iterable[FileStats]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for f in files:
        counts.update(f.quarantined_by_reason)
    return dict(sorted(counts.items()))


_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


def _json(value: Any) -> str:
    """Compact JSON, keys sorted, by orjson (several times faster than the stdlib on
    ingestion's hot path). Values come from strict JSON (formats reject NaN and Infinity,
    which orjson would write as null). The stdlib writes what orjson refuses (integers beyond
    64 bits, nesting deeper than 254 levels); its floats may be spelled differently (1e-07
    for 1e-7), but always the same way for the same value."""
    try:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                          default=_json_default)


def _json_default(value: Any) -> Any:
    """Dataclasses serialise as their fields (what `asdict` would give, without copying)."""
    if is_dataclass(value) and not isinstance(value, type):
        return shallow_fields(value)
    return str(value)


def content_digest(trajectory: Trajectory) -> str:
    """Digest of what the trajectory says, independent of where it was read from: equal for
    exact replays, so curation can dedup on it. Serialised straight from the dataclasses
    (no intermediate copy: this is on ingestion's hot path)."""
    body = shallow_fields(trajectory)
    del body["provenance"]
    return hashlib.sha256(_json(body).encode()).hexdigest()


def record_key(partition: str, file_name: str, line: int) -> str:
    """A record's place in its partition, not in one ingestion's commit: re-ingesting the
    same files keeps every key (and so dedup, balancing and the marts) unchanged, while
    raw_commit/source_uri still name the exact commit that run read."""
    return f"{partition}/{file_name}#{line}"


def _file_name(source_uri: str, partition: str) -> str:
    """A file's path within its partition (sources may keep their files in folders)."""
    marker = partition_prefix(partition)
    return source_uri.split(marker, 1)[1] if marker in source_uri else source_uri.rsplit("/", 1)[-1]


def trajectory_rows(t: Trajectory, partition: str) -> dict[str, list[dict[str, Any]]]:
    """Flatten one trajectory into rows of the canonical tables (its tool set as one row of
    `tool_sets`, which ingestion keeps once per distinct id)."""
    p = t.provenance
    tools = _json(t.tools)
    tool_set_id = hashlib.sha256(tools.encode()).hexdigest()
    key = {"partition_date": partition,
           "record_key": record_key(partition, _file_name(p.source_uri, partition), p.line)}
    trajectory = {
        **key,
        "trajectory_id": t.trajectory_id,
        "session_id": t.session_id,
        "user_id": t.user_id,
        "tenant": t.tenant,
        "agent_name": t.agent_name,
        "agent_version": t.agent_version,
        "model": t.model,
        "task_type": t.task_type,
        "goal": t.goal,
        "started_at": t.started_at,
        "ended_at": t.ended_at,
        "system_prompt": t.system_prompt,
        "tool_set_id": tool_set_id,
        "request_params": _json(t.request_params),
        "success": t.outcome.success,
        "reward": t.outcome.reward,
        "verified_by": t.outcome.verified_by,
        "termination": t.outcome.termination,
        "consent_may_train": t.consent.may_train,
        "consent_scope": t.consent.scope,
        "task_spec": _json(t.task_spec) if t.task_spec is not None else None,
        "extra": _json(t.extra),
        "n_steps": len(t.steps),
        "content_digest": content_digest(t),
        "source_format": p.source_format,
        "source_uri": p.source_uri,
        "source_line": p.line,
        "raw_commit": p.raw_commit,
        "schema_version": p.schema_version,
    }
    steps, calls = [], []
    for step in t.steps:
        steps.append({
            **key,
            "trajectory_id": t.trajectory_id,
            "step_index": step.index,
            "role": step.role,
            "content": step.content,
            "reasoning": step.reasoning,
            "tool_call_id": step.tool_call_id,
            "error": step.error,
            "latency_ms": step.latency_ms,
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "n_tool_calls": len(step.tool_calls),
            "raw_text": step.raw_text,
            "flag": step.flag,
        })
        calls.extend(
            {
                **key,
                "trajectory_id": t.trajectory_id,
                "step_index": step.index,
                "call_index": i,
                "call_id": call.id,
                "name": call.name,
                "arguments": _json(call.arguments),
            }
            for i, call in enumerate(step.tool_calls)
        )
    feedback = [
        {
            **key,
            "trajectory_id": t.trajectory_id,
            "feedback_index": i,
            "name": f.name,
            "value": _json(f.value),
            "source": f.source,
            "comment": f.comment,
            "corrected_output": f.corrected_output,
            "feedback_at": f.at,
        }
        for i, f in enumerate(t.feedback)
    ]
    tool_set = {"partition_date": partition, "tool_set_id": tool_set_id, "tools": tools}
    return {"trajectories": [trajectory], "steps": steps, "tool_calls": calls, "feedback": feedback,
            "tool_sets": [tool_set]}


def quarantine_row(q: Quarantined, partition: str, file_name: str, fmt: str | None) -> dict[str, Any]:
    return {
        "partition_date": partition,
        "source_file": file_name,
        "source_uri": q.source_uri,
        "source_line": q.line,
        "source_format": fmt,
        "reason": q.reason,
        "detail": q.detail,
        "raw_excerpt": q.raw_excerpt,
    }


def _rows_or_quarantine(parsed: Parsed, partition: str) -> dict[str, list[dict[str, Any]]] | Quarantined:
    """Flattening is part of reading a record: a value that parsed but cannot be stored
    (nesting too deep to serialise, a lone surrogate that is not UTF-8) quarantines the
    record instead of stopping the file."""
    try:
        return trajectory_rows(parsed.trajectory, partition)
    except (RecursionError, UnicodeError, ValueError) as error:
        p = parsed.trajectory.provenance
        detail = f"{type(error).__name__} while storing the record: {error}"
        excerpt = f"trajectory_id={parsed.trajectory.trajectory_id}"
        # The error may quote the very character that cannot be stored (a lone surrogate):
        # the quarantine row must itself be storable.
        return Quarantined("parse_error", _storable(detail[:500]), p.source_uri, p.line, _storable(excerpt))


def _storable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def ingest_file(
    source: SourceFile,
    *,
    partition: str,
    raw_commit: str | None,
    rules: IngestRules = IngestRules(),
) -> IngestResult[Rows]:
    """One file's rows and counts (files are independent: the unit of parallel ingestion).
    The file is read once as a stream: one record in memory at a time."""
    return _collect(source, partition, raw_commit, rules, _rows_of)


def _rows_of(records: Iterator[dict[str, Rows]], seen_tool_sets: set[str] | None = None) -> dict[str, Rows]:
    """The records' rows per table, each tool set once (`seen_tool_sets`: ids already kept)."""
    tables: dict[str, Rows] = {table: [] for table in TABLES}
    seen = set() if seen_tool_sets is None else seen_tool_sets
    for record in records:
        for table, rows in record.items():
            if table == "tool_sets":
                rows = [r for r in rows if r["tool_set_id"] not in seen]
                seen.update(r["tool_set_id"] for r in rows)
            tables[table].extend(rows)
    return tables


def _collect(
    source: SourceFile, partition: str, raw_commit: str | None, rules: IngestRules,
    tabulate: Callable[[Iterator[dict[str, Rows]]], dict[str, TableT]],
) -> IngestResult[TableT]:
    """Parse one file and hand its records' rows, as a stream, to `tabulate`."""
    with read_file(source, rules, raw_commit) as (spec, layout, hashing, records):
        stats = FileStats(source.name, source.uri, layout.format, spec.name, layout.container, layout.compression)
        tables = tabulate(_accounted(records, stats, partition, source.name, layout.format))
        stats.digest = hashing.drain()
    return IngestResult(tables, [stats])


@contextmanager
def read_file(
    source: SourceFile, rules: IngestRules, raw_commit: str | None = None
) -> Iterator[tuple[SourceSpec, FileLayout, _HashingReader, Iterator[Parsed | Quarantined]]]:
    """A file's source, layout and records (parsed lazily while the file stays open), and the
    reader that hashes the bytes as they are parsed."""
    spec = rules.source_for(source.name)
    layout = file_layout(spec, source.name, source.open)
    hooks = {"prepare": spec.prepare, "finish": spec.finish} if spec.declared else {}
    with source.open() as raw:
        hashing = _HashingReader(raw)
        stream = decompressed(io.BufferedReader(hashing, READ_CHUNK), layout.compression)
        records = (
            parse_file(stream, fmt=layout.format, source_uri=source.uri, raw_commit=raw_commit,
                       container=layout.container or "jsonl", mapping=spec.mapping, **hooks)
            if layout.format
            else quarantine_unknown_format(stream, source_uri=source.uri, filename=source.name)
        )
        yield spec, layout, hashing, until_unreadable(records, source.uri) if layout.compression != "none" else records


def _accounted(
    records: Iterable[Parsed | Quarantined], stats: FileStats, partition: str, name: str, fmt: str | None
) -> Iterator[dict[str, Rows]]:
    """Each record's rows (a quarantined record's quarantine row), counted in `stats`."""
    for record in records:
        stats.records_read += 1
        if isinstance(record, Parsed):
            record = _rows_or_quarantine(record, partition)
        if isinstance(record, dict):
            stats.ingested += 1
            yield record
        else:
            stats.quarantined += 1
            reasons = stats.quarantined_by_reason
            reasons[record.reason] = reasons.get(record.reason, 0) + 1
            yield {"quarantine": [quarantine_row(record, partition, name, fmt)]}


def ingest_files(
    files: Iterable[SourceFile],
    *,
    partition: str,
    raw_commit: str | None,
    rules: IngestRules = IngestRules(),
) -> IngestResult[Rows]:
    """Every file's rows and counts, in file order."""
    merged: IngestResult[Rows] = IngestResult({table: [] for table in TABLES}, [])
    seen_tool_sets: set[str] = set()
    for source in files:
        part = ingest_file(source, partition=partition, raw_commit=raw_commit, rules=rules)
        for table, rows in _rows_of(iter([part.tables]), seen_tool_sets).items():
            merged.tables[table].extend(rows)
        merged.files.extend(part.files)
    return merged


ParseOne = Callable[[SourceFile], "IngestResult[pa.Table]"]
MapFiles = Callable[[ParseOne, Iterable[SourceFile]], Iterator["IngestResult[pa.Table]"]]


def parse_files_columnar(
    files: Iterable[SourceFile],
    *,
    partition: str,
    raw_commit: str | None,
    rules: IngestRules = IngestRules(),
    map_files: MapFiles = map,
) -> Iterator[IngestResult[pa.Table]]:
    """Each file's `ingest_file_columnar`, in file order, one file per call of `map_files`
    (`merge_columnar` makes them one result). A process pool's `map` starts on all files at
    once (the caller can do its own I/O meanwhile); the builtin `map` parses each file as it
    is consumed."""
    return map_files(partial(ingest_file_columnar, partition=partition, raw_commit=raw_commit, rules=rules), files)


def merge_columnar(parts: Iterable[IngestResult[pa.Table]]) -> IngestResult[pa.Table]:
    """Per-file results as one: each table concatenated, file stats in order."""
    parts = list(parts)
    tables = {table: pa.concat_tables([arrow_schema(table).empty_table()] + [p.tables[table] for p in parts])
              for table in TABLES}
    tables["tool_sets"] = _first_per_id(tables["tool_sets"])  # files share tool sets
    return IngestResult(tables, [stats for p in parts for stats in p.files])


def _first_per_id(tool_sets: pa.Table) -> pa.Table:
    ids = tool_sets["tool_set_id"].to_pylist()
    first = {tool_set_id: i for i, tool_set_id in reversed(list(enumerate(ids)))}
    return tool_sets.take(sorted(first.values()))


ARROW_BATCH_RECORDS = 100


def ingest_file_columnar(
    source: SourceFile, *, partition: str, raw_commit: str | None, rules: IngestRules
) -> IngestResult[pa.Table]:
    """`ingest_file` with each table as Arrow (what a worker process returns: Arrow pickles
    back cheaply and DuckDB scans it in place; row dicts would cost the parent as much again
    to rebuild). Rows become Arrow every ARROW_BATCH_RECORDS records, so a large file's rows
    are never all held as Python dicts (several times the size of the same Arrow data)."""
    return _collect(source, partition, raw_commit, rules, _arrow_tables)


def _arrow_tables(records: Iterator[dict[str, Rows]]) -> dict[str, pa.Table]:
    batches: dict[str, list[pa.Table]] = {table: [arrow_schema(table).empty_table()] for table in TABLES}
    seen_tool_sets: set[str] = set()
    for chunk in iter(lambda: list(itertools.islice(records, ARROW_BATCH_RECORDS)), []):
        for table, rows in _rows_of(iter(chunk), seen_tool_sets).items():
            if rows:
                batches[table].append(to_arrow(rows, table))
    return {table: pa.concat_tables(parts) for table, parts in batches.items()}


# The tables whose `source_uri` names where a record was read from (the rest of a row is the
# same for any commit holding the same bytes).
_TABLES_WITH_SOURCE_URI = ("trajectories", "quarantine")


def bind_commit(result: IngestResult[pa.Table], uri_prefix: str, raw_commit: str) -> IngestResult[pa.Table]:
    """Files parsed before their commit existed, as read from it: parse them with their
    object path as `SourceFile.uri` and `raw_commit=None`; this prefixes every source URI
    with `uri_prefix` (`lakefs://repo/<commit>/`) and sets `raw_commit`. The result equals
    parsing the committed files with their full URIs."""
    trajectories = result.tables["trajectories"]
    if trajectories["raw_commit"].null_count != trajectories.num_rows:
        raise ValueError("these rows were parsed with a raw commit already")
    tables = dict(result.tables)
    for table in _TABLES_WITH_SOURCE_URI:
        t = tables[table]
        uris = pc.binary_join_element_wise(pa.scalar(uri_prefix), t["source_uri"], "")
        tables[table] = t.set_column(t.schema.get_field_index("source_uri"), "source_uri", uris)
    trajectories = tables["trajectories"]
    tables["trajectories"] = trajectories.set_column(
        trajectories.schema.get_field_index("raw_commit"), "raw_commit",
        pa.repeat(pa.scalar(raw_commit, pa.string()), trajectories.num_rows))
    files = [replace(f, uri=uri_prefix + f.uri) for f in result.files]
    return IngestResult(tables, files)


@contextmanager
def file_workers(workers: int) -> Iterator[MapFiles]:
    """A `map` over files for `parse_files_columnar`: `workers` processes, or this process
    when `workers` <= 1.

    The processes fork from a forkserver that imports ingestion once (no fork of a threaded
    Dagster process, no imports per worker; pandas too, which pyarrow imports on the first
    `from_pylist`). Starting them takes a few hundred ms and a submit waits for it, so files
    are submitted from a thread: the caller's `map` returns at once and it goes on with its
    own I/O. Each worker exits when this process dies (see `_exit_with`)."""
    if workers <= 1:
        yield map
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.shell.ingest", "pandas"])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),)) as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="submit-files") as submitter:
        # The pool spawns a process per submit while none is idle: one no-op per worker.
        submitter.submit(lambda: [pool.submit(int) for _ in range(workers)])

        def map_files(parse_one: ParseOne, files: Iterable[SourceFile]) -> Iterator[IngestResult[pa.Table]]:
            return _results(submitter.submit(pool.map, parse_one, list(files)))

        try:
            yield map_files
        except BaseException:
            # Files not yet parsed would be parsed before the pool exits: drop them.
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _results(submitted: Future[Iterator[_T]]) -> Iterator[_T]:
    yield from submitted.result()


OWNER_POLL_SECONDS = 0.5


def _exit_with(owner_pid: int) -> None:
    """Worker initializer: exit as soon as the pool's owner is dead or a zombie. A step that is
    SIGKILLed (OOM, a cancelled run) cannot shut its pool down, and an idle worker would wait
    on its task queue forever, holding the step's stdout and the forkserver open."""
    import psutil

    owner = psutil.Process(owner_pid)

    def watch() -> None:
        while True:
            try:
                if not owner.is_running() or owner.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:
                break
            time.sleep(OWNER_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-owner", daemon=True).start()
