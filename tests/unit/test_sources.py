"""The source registry and the containers it declares, without Dagster: a bad registry fails
in one line naming the source and field; each container and compression is read record by
record (a 50 MB array in bounded memory); `flywheel sources check` and `flywheel import`."""

import gzip
import json
import random
import tracemalloc
from pathlib import Path

import pytest
import yaml
import zstandard
from click.testing import CliRunner
from external_logs import write_big_array, write_external_logs

from pipeline.cli import main
from pipeline.core.sources import RegistryError
from pipeline.shell.ingest import IngestRules, SourceFile, ingest_file, ingest_file_columnar, ingest_files
from pipeline.shell.sources import check_file, load_registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return write_external_logs(tmp_path_factory.mktemp("external"))


@pytest.fixture(scope="module")
def registry(logs):
    return load_registry(logs.registry)


def _ingest(logs, registry, source):
    path = logs.paths[source]
    name = path.relative_to(logs.root).as_posix()
    return ingest_files([SourceFile(name, f"dt=p/{name}", path=path)], partition="p", raw_commit=None,
                        rules=IngestRules(registry))


def test_the_checked_in_registry_loads_with_its_catalogs():
    registry = load_registry(PROJECT_ROOT / "sources.yaml")
    names = [s.name for s in registry.sources]
    assert {"tau_retail", "agent_instruct", "ops_agent"} <= set(names)
    assert len(registry.get("tau_retail").tools) == 15
    assert registry.get("ops_agent").consent.scope == "unknown"  # declares none


@pytest.mark.parametrize(("entry", "message"), [
    ({"match": "a/*", "outcome": {"success_threshold": "high"}},
     "source 'broken': outcome.success_threshold: Input should be a valid number"),
    ({"match": "a/*", "outcome": {"success_threshold": 1, "graded": True}},
     "source 'broken': outcome: give exactly one of success_threshold or graded: true"),
    ({"match": "a/*", "mapping": {"mesages": "traj"}},
     "source 'broken': mapping: unknown openai_chat mapping keys: mesages"),
    ({"match": "a/*", "format": "csv"}, "source 'broken': format: Input should be"),
    ({"match": "a/*", "id": {"template": "{task_id"}}, "source 'broken': id: template '{task_id'"),
    ({"match": "a/*", "coerce": {"trajectory_id": "number"}}, "source 'broken': coerce.trajectory_id.[key]"),
    ({"match": "a/*", "tool_catalog": "missing.json"}, "source 'broken': tool_catalog: "),
    ({"match": "a/*", "consnt": {"may_train": True}}, "source 'broken': consnt: Extra inputs are not permitted"),
    ({"format": "openai_chat"}, "source 'broken': match: Field required"),
])
def test_a_bad_registry_fails_at_load_in_one_line_naming_source_and_field(tmp_path, entry, message):
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "sources": {"fine": {"match": "x/*"}, "broken": entry}}))
    with pytest.raises(RegistryError) as error:
        load_registry(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_no_registry_file_means_every_file_is_detected(tmp_path):
    assert load_registry(tmp_path / "absent.yaml").sources == ()


@pytest.mark.parametrize("source", ["tau_retail", "agent_instruct", "ops_agent"])
def test_each_container_is_read_to_the_files_truth(logs, registry, source):
    truth = logs.expected[source]
    result = _ingest(logs, registry, source)
    [stats] = result.files
    assert (stats.records_read, stats.ingested) == (truth.records, truth.trajectories)
    assert stats.quarantined_by_reason == truth.quarantined
    rows = result.tables["trajectories"]
    assert [r["trajectory_id"] for r in rows] == truth.ids
    assert sum(r["success"] is True for r in rows) == truth.successes
    assert sum(r["success"] is False for r in rows) == truth.failures
    assert len(result.tables["tool_calls"]) == truth.tool_calls
    assert len(result.tables["tool_sets"]) == truth.tool_sets  # each distinct set once
    assert all(r["tool_set_id"] in {s["tool_set_id"] for s in result.tables["tool_sets"]} for r in rows)
    assert sum(r["flag"] == "unparsed_action" for r in result.tables["steps"]) == truth.flagged_unparsed_actions
    # quarantined records keep their position (array/object: their ordinal) and say why
    for bad, row in zip(truth.bad, sorted(result.tables["quarantine"], key=lambda q: q["source_line"]), strict=True):
        assert (row["source_line"], row["reason"]) == (bad.index + 1, bad.reason)


def test_consent_defaults_to_unknown_only_for_a_declared_source_without_one(logs, registry):
    consent = {r["consent_scope"] for r in _ingest(logs, registry, "ops_agent").tables["trajectories"]}
    assert consent == {"unknown"}
    tau = _ingest(logs, registry, "tau_retail").tables["trajectories"]
    assert {(r["consent_may_train"], r["consent_scope"]) for r in tau} == {(True, "training")}


def test_containers_are_detected_and_compression_by_content_not_name(logs, registry, tmp_path):
    """The same records as gzip under a misleading name, and as JSONL, give the same rows."""
    data = json.loads(logs.paths["tau_retail"].read_text())
    jsonl = tmp_path / "results.json"
    jsonl.write_bytes(b"\n".join(json.dumps(r).encode() for r in data) + b"\n")
    disguised = tmp_path / "results.json.bak"
    disguised.write_bytes(gzip.compress(logs.paths["tau_retail"].read_bytes()))
    rules = IngestRules(registry)
    results = [ingest_file(SourceFile(f"tau_retail/{p.name}", f"dt=p/tau_retail/{p.name}", path=p),
                           partition="p", raw_commit=None, rules=rules) for p in (jsonl, disguised)]
    assert [(r.files[0].container, r.files[0].compression) for r in results] == [("jsonl", "none"),
                                                                                  ("json_array", "gzip")]
    ids = [[row["trajectory_id"] for row in r.tables["trajectories"]] for r in results]
    assert ids[0] == ids[1] == logs.expected["tau_retail"].ids


def test_a_truncated_compressed_file_keeps_what_came_before_and_counts_the_rest(registry, tmp_path):
    rng = random.Random(3)  # text that does not compress to nothing: the file spans several zstd blocks
    words = [f"word{i}" for i in range(5000)]
    lines = [json.dumps({"id": f"r{i}", "messages": [{"role": "user", "content": " ".join(rng.choices(words, k=400))}]})
             for i in range(200)]
    whole = zstandard.ZstdCompressor().compress("\n".join(lines).encode())
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(whole[: len(whole) // 2])
    result = ingest_file(SourceFile("cut.jsonl.zst", "dt=p/cut.jsonl.zst", path=path), partition="p",
                         raw_commit=None, rules=IngestRules(registry))
    [stats] = result.files
    assert stats.records_read == stats.ingested + stats.quarantined
    assert stats.quarantined_by_reason == {"corrupt_compression": 1}
    assert 0 < stats.ingested < 200
    [row] = result.tables["quarantine"]
    assert row["source_line"] == stats.ingested + 1 and "cannot be read past record" in row["detail"]


def _peak_ingesting(path: Path, registry) -> tuple[int, int]:
    """(Python heap peak, records ingested) of one file."""
    tracemalloc.start()
    result = ingest_file_columnar(SourceFile(f"tau_retail/{path.name}", f"dt=p/tau_retail/{path.name}", path=path),
                                  partition="p", raw_commit=None, rules=IngestRules(registry))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, result.files[0].ingested


def test_a_50_mb_json_array_is_ingested_in_bounded_memory(registry, tmp_path):
    """Reading is bounded: Python's heap peak (tracemalloc) for a 50 MB array is no larger
    than for a 12.5 MB one and far below the file's size, because the array is streamed a
    record at a time and rows become Arrow every 100 records. What grows with the file is
    the output itself (Arrow tables, outside Python's heap)."""
    sizes = {"small.json": 12_500_000, "big.json": 50_000_000}
    peaks = {}
    for name, target in sizes.items():
        path = tmp_path / name
        n_records = write_big_array(path, target_bytes=target)
        peaks[name], ingested = _peak_ingesting(path, registry)
        assert ingested == n_records
    size = (tmp_path / "big.json").stat().st_size
    assert size >= 50_000_000
    assert peaks["big.json"] < 1.25 * peaks["small.json"], peaks
    assert peaks["big.json"] < size / 2, f"peak {peaks['big.json'] / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"


def test_sources_check_prints_what_ingestion_would_make_of_a_file(logs, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(logs.registry))
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    truth = logs.expected["ops_agent"]
    out = CliRunner().invoke(main, ["sources", "check", str(logs.paths["ops_agent"])])
    get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "source: ops_agent   format: openai_chat   container: json_object   compression: zstd" in out.output
    assert f"records: {truth.records}   parsed: {truth.trajectories}   quarantined: 2" in out.output
    assert "missing_required_field: 1" in out.output and "#100: " in out.output
    assert "        | {" in out.output  # the start of each quarantined record
    assert f"tool calls: {truth.tool_calls}" in out.output
    assert '"trajectory_id": "run-0001"' in out.output  # the canonical first record


def test_sources_check_hints_at_react_text_when_no_call_was_structured(logs, registry):
    source = registry.get("agent_instruct")
    plain = type(registry)((type(source)(**{**source.__dict__, "react_in_chat": False}),), registry.path)
    check = check_file(logs.paths["agent_instruct"], plain)
    assert check.tool_calls == 0 and check.react_text_turns > 0


def test_import_puts_files_in_the_sources_landing_folder_and_refuses_a_changed_one(logs, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(logs.registry))
    monkeypatch.setenv("FLYWHEEL_LANDING_DIR", str(tmp_path / "landing"))
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        args = ["import", str(logs.paths["tau_retail"]), "--source", "tau_retail", "--day", "2026-11-30"]
        first = runner.invoke(main, args)
        assert first.exit_code == 0, first.output
        landed = tmp_path / "landing" / "2026-11-30" / "tau_retail" / "results.json"
        assert landed.read_bytes() == logs.paths["tau_retail"].read_bytes()
        assert "(1 copied, 0 already there)" in first.output
        again = runner.invoke(main, args)
        assert again.exit_code == 0 and "(0 copied, 1 already there)" in again.output
        changed = tmp_path / "results.json"
        changed.write_text("[]")
        refused = runner.invoke(main, ["import", str(changed), "--source", "tau_retail", "--day", "2026-11-30"])
        assert refused.exit_code == 1 and "already exists with other content" in refused.output
        unknown = runner.invoke(main, ["import", str(changed), "--source", "nope"])
        assert unknown.exit_code == 1 and "no source 'nope'" in unknown.output
    finally:
        get_settings.cache_clear()
