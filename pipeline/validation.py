"""Great Expectations (GX Core 1.x) validation of DataFrames against suites kept as files.

DuckDB is not a GX datasource, so marts are read into pandas and validated here. GX takes
~5 s to import: it is imported inside the functions, never at module import, so loading
the Dagster code location stays fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Sample of failing values kept per expectation: enough to debug, small enough for metadata.
FAILURE_SAMPLE = 5


@dataclass(frozen=True)
class ExpectationFailure:
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    unexpected_count: int | None
    sample: list[Any]
    observed: Any = None

    def describe(self) -> str:
        where = f" on column `{self.column}`" if self.column else ""
        count = f": {self.unexpected_count} unexpected" if self.unexpected_count else ""
        sample = f", e.g. {self.sample}" if self.sample else ""
        observed = f", observed {self.observed!r}" if self.observed is not None else ""
        return f"{self.expectation}{where}{count}{sample}{observed}"


@dataclass(frozen=True)
class ValidationOutcome:
    suite: str
    success: bool
    evaluated: int
    failures: list[ExpectationFailure] = field(default_factory=list)

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed"
        lines = "; ".join(f.describe() for f in self.failures)
        return f"{self.suite}: {len(self.failures)} of {self.evaluated} expectations failed: {lines}"


def load_suite(path: Path) -> dict[str, Any]:
    """A suite file is GX 1.x's own JSON form (`ExpectationSuite.to_json_dict()`)."""
    with path.open() as handle:
        return json.load(handle)


def _ephemeral_context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_dataframe(frame: Any, suite: dict[str, Any]) -> ValidationOutcome:
    """Validate a pandas DataFrame against a suite dict; report every failure with a sample."""
    import great_expectations as gx

    context = _ephemeral_context()
    batch_definition = (
        context.data_sources.add_pandas("frames")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite["name"], expectations=suite["expectations"])
    )
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        gx_suite, result_format="SUMMARY"
    )
    failures = [
        ExpectationFailure(
            expectation=r.expectation_config.type,
            column=r.expectation_config.kwargs.get("column"),
            kwargs={k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
            unexpected_count=r.result.get("unexpected_count"),
            sample=list(r.result.get("partial_unexpected_list") or [])[:FAILURE_SAMPLE],
            observed=r.result.get("observed_value"),
        )
        for r in result.results
        if not r.success
    ]
    return ValidationOutcome(
        suite=suite["name"], success=bool(result.success), evaluated=len(result.results),
        failures=failures,
    )
