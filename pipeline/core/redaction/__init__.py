"""PII and secret redaction for trajectories (functional core: pure functions, no Dagster).

- `detectors`: compiled patterns + validators → `Span`s (`detect(text)`).
- `placeholders`: `PlaceholderMap`, one per trajectory, value → `<TYPE_n>`.
- `keys`: JSON keys that name PII (`email`, `firstName`, `api_key`, ...).
- `redact`: JSON-aware redaction of texts, trajectories and the raw tables (`redact_tables`).
- `surrogates`: realistic made-up values of the same kind, keyed per trajectory (the default).

Its benchmark against Presidio and detect-secrets, on the simulated corpus and an external one,
lives in `pipeline.benchmarks` (`redact`, `redact_scoring`, `presidio_baseline`,
`secret_scanner_baseline`, `external_corpus`).
"""

from pipeline.core.redaction.detectors import ENTITY_TYPES, SECRET_TYPES, STRUCTURED_TYPES, Span, detect
from pipeline.core.redaction.placeholders import PlaceholderMap
from pipeline.core.redaction.redact import (
    REDACTED_COLUMNS,
    Finding,
    RedactedText,
    RedactionResult,
    Replacement,
    TrajectoryRedactor,
    redact_json,
    redact_messages,
    redact_tables,
    redact_text,
)

__all__ = [
    "ENTITY_TYPES", "REDACTED_COLUMNS", "SECRET_TYPES", "STRUCTURED_TYPES", "Finding", "PlaceholderMap",
    "RedactedText", "RedactionResult", "Replacement", "Span", "TrajectoryRedactor", "detect", "redact_json",
    "redact_messages", "redact_tables", "redact_text",
]
