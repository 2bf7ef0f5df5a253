"""Hostile input through the pure ingestion core (no lakeFS): nothing raises, every record is
accounted for (ingested or quarantined with a reason and a one-line detail), the outcome of
each record matches the corpus manifest, prompt injections are kept verbatim as data, and
peak memory stays bounded relative to the input size."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.benchmarks.hostile_corpus import (
    DEEP_DEPTHS,
    INGESTED,
    MB,
    QUARANTINED,
    HostileManifest,
    generate_hostile_corpus,
)
from pipeline.benchmarks.hostile_ingestion import compare_outcomes, run_hostile_ingestion
from pipeline.core.formats import REASONS, detect_format, parse_file
from pipeline.shell.ingest import IngestResult, SourceFile, ingest_files, record_key

SEED = 13
N_RECORDS = 1200
# Expected tool names: the corpus' genuine calls are all lookup_order; any other name in the
# tool_calls table would mean text inside a record was turned into a call.
GENUINE_TOOLS = {"lookup_order"}


def _uri(name: str) -> str:
    return f"lakefs://test/c/{name}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[HostileManifest, float]:
    out = tmp_path_factory.mktemp("hostile")
    started = time.perf_counter()
    manifest = generate_hostile_corpus(out, n_records=N_RECORDS, seed=SEED)
    return manifest, time.perf_counter() - started


@pytest.fixture(scope="module")
def manifest(corpus: tuple[HostileManifest, float]) -> HostileManifest:
    return corpus[0]


@pytest.fixture(scope="module")
def result(manifest: HostileManifest) -> IngestResult:
    files = [
        SourceFile(f.name, _uri(f.name), (manifest.out_dir / f.name).read_bytes()) for f in manifest.files
    ]
    return ingest_files(files, partition="2026-11-21", raw_commit="c")


# --- the corpus itself ----------------------------------------------------------------------


def test_generation_is_fast_deterministic_and_exact(corpus, tmp_path: Path) -> None:
    manifest, seconds = corpus
    assert seconds < 10, f"generation took {seconds:.1f}s"
    assert manifest.records == N_RECORDS >= 1000
    again = generate_hostile_corpus(tmp_path / "again", n_records=N_RECORDS, seed=SEED)
    assert again.files == manifest.files
    for f in manifest.files:
        assert (tmp_path / "again" / f.name).read_bytes() == (manifest.out_dir / f.name).read_bytes()
    other = generate_hostile_corpus(tmp_path / "other", n_records=N_RECORDS + 37, seed=SEED + 1)
    assert other.records == N_RECORDS + 37
    digest = hashlib.sha256((manifest.out_dir / "canonical-export.ndjson").read_bytes()).digest()
    assert hashlib.sha256((tmp_path / "other" / "canonical-export.ndjson").read_bytes()).digest() != digest
    with pytest.raises(ValueError, match="n_records must be at least"):
        generate_hostile_corpus(tmp_path / "tiny", n_records=10)


def test_corpus_covers_every_hostile_kind(manifest: HostileManifest) -> None:
    data = {f.name: (manifest.out_dir / f.name).read_bytes() for f in manifest.files}
    cases = manifest.cases()
    for case in (
        "truncated_json", "truncated_at_eof", "huge_field_ok", "huge_field_too_large", "single_10mb_line",
        "deep_nesting_list", "deep_nesting_arguments", "deep_nesting_kvlist", "deep_nesting_header",
        "invalid_utf8", "steps_as_string", "role_as_int", "arguments_as_list", "timestamp_as_object",
        "injection_user", "injection_tool", "framing_break_forged", "nul_byte_raw", "nul_byte_escaped",
        "bom_first_line", "csv", "xml", "binary_garbage", "json_array_element", "json_array_truncated",
    ):
        assert cases.get(case, 0) >= 1, f"no {case} record in the corpus"
    formats = {f.intended_format for f in manifest.files}
    assert formats == {"canonical", "openai_chat", "otel_genai", "react_text", None}
    assert data["empty.jsonl"] == b""
    assert data["blank-lines.txt"] and not data["blank-lines.txt"].strip()
    assert data["openai-wrapped-bom.jsonl"].startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data["canonical-export.ndjson"] and b"\r\n" in data["agent-2026-11-21.log"]
    assert b"\x00" in data["agent-2026-11-21.log"] and b"\x00" in data["blob.bin"]
    assert max(len(line) for line in data["big-line.jsonl"].split(b"\n")) >= 10 * MB
    assert not data["canonical-2026-11-21-000.jsonl"].endswith(b"\n")  # a writer killed mid-line
    with pytest.raises(UnicodeDecodeError):
        data["canonical-2026-11-21-000.jsonl"].decode()


# --- ingestion ------------------------------------------------------------------------------


def test_accounting_per_file_matches_the_manifest(manifest: HostileManifest, result: IngestResult) -> None:
    stats = {s.name: s for s in result.files}
    assert set(stats) == {f.name for f in manifest.files}
    for f in manifest.files:
        s = stats[f.name]
        assert s.records_read == s.ingested + s.quarantined, f.name
        counts = (s.records_read, s.ingested, s.quarantined)
        assert counts == (f.records_written, f.ingested, f.quarantined), f.name
        assert s.source_format == f.intended_format, f.name


def test_totals_match_the_manifest(manifest: HostileManifest, result: IngestResult) -> None:
    assert result.records_read == manifest.records == result.ingested + result.quarantined
    assert (result.ingested, result.quarantined) == (manifest.ingested, manifest.quarantined)
    assert len(result.tables["trajectories"]) == manifest.ingested
    assert len(result.tables["quarantine"]) == manifest.quarantined
    unknown = sum(len(f.records) for f in manifest.files if f.intended_format is None)
    assert result.by_reason().get("unknown_format", 0) == unknown


def test_every_record_comes_out_as_the_manifest_says(manifest: HostileManifest, result: IngestResult) -> None:
    outcomes = [
        (row["source_uri"].rsplit("/", 1)[1], row["source_line"], INGESTED, None)
        for row in result.tables["trajectories"]
    ] + [
        (row["source_file"], row["source_line"], QUARANTINED, row["reason"])
        for row in result.tables["quarantine"]
    ]
    problems = compare_outcomes(manifest, outcomes)
    assert not problems, "\n".join(problems[:40])


def test_each_record_not_as_the_manifest_says_is_reported_by_name(manifest: HostileManifest) -> None:
    records = [(f.name, r) for f in manifest.files for r in f.records]
    as_expected = {(name, r.line): (name, r.line, r.outcome, r.reasons[0] if r.reasons else None)
                   for name, r in records}
    assert compare_outcomes(manifest, as_expected.values()) == []
    ingested = next((name, r.line) for name, r in records if r.outcome == INGESTED)
    pinned = next((name, r.line) for name, r in records if r.outcome == QUARANTINED and r.reasons)
    lost = (records[-1][0], records[-1][1].line)
    outcomes = {**as_expected, ingested: (*ingested, QUARANTINED, "parse_error"),
                pinned: (*pinned, QUARANTINED, "not_a_reason")}
    del outcomes[lost]
    problems = compare_outcomes(manifest, outcomes.values())
    assert len(problems) == 3, problems
    by_record = {problem.split(" ", 1)[0]: problem for problem in problems}
    assert by_record[f"{ingested[0]}:{ingested[1]}"].endswith("expected ingested, got quarantined parse_error")
    assert by_record[f"{pinned[0]}:{pinned[1]}"].endswith("got not_a_reason")
    assert by_record[f"{lost[0]}:{lost[1]}"].endswith("no record came out (lost)")


def test_quarantined_records_have_a_reason_and_a_one_line_detail(result: IngestResult) -> None:
    rows = result.tables["quarantine"]
    assert rows
    for row in rows:
        assert row["reason"] in REASONS, row
        detail = row["detail"]
        assert isinstance(detail, str) and detail.strip(), row
        assert "\n" not in detail and "\r" not in detail, row
        assert len(detail) <= 500
        assert len(row["raw_excerpt"]) <= 500  # never the whole 10 MB line


def test_prompt_injections_are_ingested_verbatim_as_data(
    manifest: HostileManifest, result: IngestResult
) -> None:
    contents: dict[str, list[str | None]] = {}
    for step in result.tables["steps"]:
        contents.setdefault(step["record_key"], []).append(step["content"])
    injected = [(f, r) for f in manifest.files for r in f.records if r.injection is not None]
    assert len(injected) >= 100
    for f, r in injected:
        key = record_key("2026-11-21", f.name, r.line)
        assert key in contents, f"{f.name}:{r.line} ({r.case}) was not ingested"
        assert r.injection in contents[key], f"{f.name}:{r.line}: injected text not kept verbatim"
    # text that looks like a tool call stays text: no call other than the genuine ones exists
    names = Counter(call["name"] for call in result.tables["tool_calls"])
    assert set(names) <= GENUINE_TOOLS, names
    # and nothing was promoted into a system prompt
    prompts = {row["system_prompt"] for row in result.tables["trajectories"]}
    assert prompts <= {None, "You are Acme's support agent."}, prompts


def test_huge_fields_under_the_limit_are_kept_whole(result: IngestResult) -> None:
    big = [s["content"] for s in result.tables["steps"] if s["content"] and len(s["content"]) > 2_000_000]
    assert len(big) >= 3  # two 3 MB tool results, one 2 MB OTel message
    assert all(len(s) >= 2 * MB for s in big)


@pytest.mark.parametrize("depth", DEEP_DEPTHS)
@pytest.mark.parametrize("fmt", ["canonical", "openai_chat"])
def test_deep_nesting_is_quarantined_not_a_crash(fmt: str, depth: int) -> None:
    first = (
        b'{"schema_version":"1.0","trajectory_id":"t","steps":[{"index":0,"role":"user","tool_calls":[]}]}'
        if fmt == "canonical"
        else b'{"id":"t","messages":[{"role":"user","content":"hi"}]}'
    )
    deep = b'{"id":"d","messages":' + b"[" * depth + b"]" * depth + b"}"
    records = list(parse_file(first + b"\n" + deep + b"\n", fmt=fmt, source_uri="u", raw_commit=None))
    assert [type(r).__name__ for r in records] == ["Parsed", "Quarantined"]
    assert records[1].reason in ("parse_error", "invalid_json")


# --- reliability summary and memory ---------------------------------------------------------


def test_reliability_summary_and_bounded_peak_memory() -> None:
    """Ingestion of the corpus in a fresh subprocess (clean RSS). Bound: the rows kept for
    the ingested records are at most about the input's size, and the transient working set is
    a few copies of the largest record (its bytes sliced from the file, decoded to str, parsed,
    then json.dumps'ed and encoded for the content digest): so growth must stay under 6× the
    largest file plus 64 MB for the interpreter, row dicts and allocator slack."""
    summary = run_hostile_ingestion(N_RECORDS, SEED)
    print("\nhostile ingestion summary:", {k: v for k, v in summary.items() if k != "mismatches"})
    assert summary["records_tried"] == N_RECORDS
    assert summary["lost"] == 0
    assert summary["records_read"] == summary["ingested"] + summary["quarantined"]
    assert not summary["mismatches"], summary["mismatches"][:20]
    assert set(summary["by_reason"]) <= set(REASONS)
    bound_mb = 6 * summary["largest_file_mb"] + 64
    assert summary["rss_growth_mb"] < bound_mb, (summary["rss_growth_mb"], bound_mb)


# --- parser bugs this corpus found, fixed; kept as regression tests ----------------------


def test_detect_format_survives_a_too_deep_first_line() -> None:
    assert detect_format("x.jsonl", b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}") is None


STEP = b'{"schema_version":"1.0","trajectory_id":"t","steps":[{"index":0,"role":"user","content":'


def test_a_record_that_parses_but_cannot_be_stored_is_quarantined() -> None:
    line = STEP + b'"\\ud800","tool_calls":[]}]}'  # a lone surrogate: parses, is not UTF-8
    result = ingest_files([SourceFile("a.jsonl", _uri("a.jsonl"), line)], partition="p", raw_commit=None)
    assert (result.records_read, result.ingested, result.quarantined) == (1, 0, 1)
    assert result.tables["quarantine"][0]["reason"] == "parse_error"


def test_a_deeply_nested_but_valid_record_is_ingested_and_stored() -> None:
    """600 levels parse, serialise (C encoder) and store; they were once quarantined only
    because the record's digest went through the recursive dataclasses.asdict."""
    import duckdb

    from pipeline.shell.warehouse import replace_partition

    line = STEP + b'"hi","tool_calls":[]}],"deep":' + b"[" * 600 + b"]" * 600 + b"}"
    result = ingest_files([SourceFile("a.jsonl", _uri("a.jsonl"), line)], partition="p", raw_commit=None)
    assert (result.records_read, result.ingested, result.quarantined) == (1, 1, 0)
    with duckdb.connect() as con:
        assert replace_partition(con, "p", result.tables)["trajectories"] == 1


def test_the_asset_path_stores_the_whole_corpus(manifest: HostileManifest, tmp_path: Path) -> None:
    """What raw_agent_logs does: parse in worker processes, Arrow back, one DuckDB write. No
    hostile value may stop the write, and every record is in exactly one table."""
    import duckdb

    from pipeline.shell.ingest import file_workers, merge_columnar, parse_files_columnar
    from pipeline.shell.warehouse import replace_partition

    files = [SourceFile(f.name, _uri(f.name), (manifest.out_dir / f.name).read_bytes()) for f in manifest.files]
    with file_workers(2) as map_files:
        result = merge_columnar(
            parse_files_columnar(files, partition="2026-11-21", raw_commit="c", map_files=map_files))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        written = replace_partition(con, "2026-11-21", result.tables)
    assert (result.records_read, result.ingested, result.quarantined) == (
        manifest.records, manifest.ingested, manifest.quarantined)
    assert (written["trajectories"], written["quarantine"]) == (manifest.ingested, manifest.quarantined)
