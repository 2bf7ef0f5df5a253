"""Per-file format overrides and openai_chat field mappings (IngestConfig in the Dagster
launchpad, over the source registry): a file detection cannot place is quarantined as unknown_format until a rule
names its format and where its fields sit."""

from test_formats import full_trajectory, minimal_trajectory

from pipeline.core.formats import OpenAIMapping, export
from pipeline.shell.ingest import IngestRules, SourceFile, ingest_files

VENDOR_PATHS = {"id": "req.id", "messages": "chat.turns", "tools": "chat.functions",
                "success": "verdict.ok", "task_type": "req.kind"}


def _vendor_file() -> SourceFile:
    data = export("openai_chat", [full_trajectory("v-1"), minimal_trajectory("v-2")],
                  OpenAIMapping.from_dict(VENDOR_PATHS))
    return SourceFile("vendor-dump.log", "lakefs://raw/c0/dt=p/vendor-dump.log", data)


def test_without_rules_an_unrecognised_file_is_quarantined_line_by_line():
    result = ingest_files([_vendor_file()], partition="p", raw_commit="c0")
    assert (result.records_read, result.ingested, result.quarantined) == (2, 0, 2)
    assert result.by_reason() == {"unknown_format": 2}


def test_a_format_override_and_a_field_mapping_ingest_it():
    rules = IngestRules(format_overrides={"vendor-*.log": "openai_chat", "*.jsonl": "canonical"},
                        openai_mappings={"vendor-*": VENDOR_PATHS})
    result = ingest_files([_vendor_file()], partition="p", raw_commit="c0", rules=rules)
    assert (result.records_read, result.ingested, result.quarantined) == (2, 2, 0)
    assert result.by_format() == {"openai_chat": 2}
    rows = {row["trajectory_id"]: row for row in result.tables["trajectories"]}
    assert set(rows) == {"v-1", "v-2"}
    assert rows["v-1"]["task_type"] == full_trajectory().task_type


def test_rules_match_by_glob_first_match_wins_and_presets_resolve():
    rules = IngestRules(format_overrides={"a*": "react_text", "ab*": "canonical"},
                        openai_mappings={"w-*": {"preset": "wrapped"}})
    assert rules.source_for("abc.jsonl").format == "react_text"
    assert rules.source_for("zzz.jsonl").format == "auto"  # no rule: detection
    assert rules.source_for("w-1.jsonl").mapping == OpenAIMapping.preset("wrapped")
    assert rules.source_for("x.jsonl").mapping is None
