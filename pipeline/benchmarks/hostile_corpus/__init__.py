"""A hostile-input corpus for ingestion: seeded, deterministic, with a manifest of what each
record must become.

`generate_hostile_corpus(out_dir)` writes a landing folder the way a careless (or malicious)
integration would fill one: several files of mixed formats and names, holding truncated JSON,
multi-MB fields, nesting thousands of levels deep, invalid UTF-8, wrong types everywhere,
prompt-injection text inside otherwise valid records, unknown formats (CSV, XML, binary
garbage, a pretty-printed JSON document, an empty file, a file of blank lines), NUL bytes,
CRLF line endings, a BOM and one single 10 MB line.

The returned `HostileManifest` says, per file, the intended format and, per record (as the
format defines a record, see pipeline/core/formats), the 1-based line it starts on, whether it must
be ingested or quarantined and, where it is determined, the acceptable quarantine reasons.
Records carrying prompt-injection text name that text: it must come out verbatim as the
content of one of the record's steps (data, never instructions).

`pipeline.benchmarks.hostile_ingestion` ingests a corpus and measures it (the reliability
benchmark's first count).

Three parser bugs this corpus found (a too-deep first line in format detection; a record
that parses but is too deep to serialise; a lone surrogate) are fixed and kept as
regression tests in tests/unit/test_hostile_input.py.
"""

from pipeline.benchmarks.hostile_corpus.corpus import generate_hostile_corpus
from pipeline.benchmarks.hostile_corpus.manifest import (
    DEEP_DEPTHS,
    INGESTED,
    INJECTIONS,
    MB,
    QUARANTINED,
    ExpectedRecord,
    HostileFile,
    HostileManifest,
)

__all__ = [
    "DEEP_DEPTHS", "INGESTED", "INJECTIONS", "MB", "QUARANTINED", "ExpectedRecord", "HostileFile",
    "HostileManifest", "generate_hostile_corpus",
]
