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
from typing import TYPE_CHECKING, Any

from pipeline.shell.dbt_vars import dbt_vars

if TYPE_CHECKING:
    from pipeline.core.redaction.surrogates import IssuedSurrogates

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
    rows: list[dict[str, Any]] = field(default_factory=list)  # sample failing rows

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
    docs_url: str | None = None

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed"
        lines = "; ".join(f.describe() for f in self.failures)
        return f"{self.suite}: {len(self.failures)} of {self.evaluated} expectations failed: {lines}"


DBT_VAR = "$dbt_var"


def load_suite(path: Path) -> dict[str, Any]:
    """A suite file is GX 1.x's own JSON form (`ExpectationSuite.to_json_dict()`), except that
    an expectation's argument may be `{"$dbt_var": "name"}`: the value of that dbt var, so a
    bound that curation guarantees (the balancing cap, the weight cap) is written once."""
    with path.open() as handle:
        suite = json.load(handle)
    variables = dbt_vars()
    for expectation in suite.get("expectations", []):
        for name, value in expectation.get("kwargs", {}).items():
            if isinstance(value, dict) and set(value) == {DBT_VAR}:
                if value[DBT_VAR] not in variables:
                    raise KeyError(f"{path.name}: {name} names dbt var {value[DBT_VAR]!r}, "
                                   "which dbt_project.yml does not define")
                expectation["kwargs"][name] = variables[value[DBT_VAR]]
    return suite


def _context(docs_root: Path | None) -> Any:
    """An ephemeral GX context, or a file context under `docs_root` that writes Data Docs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import pipeline.shell.gx_expectations  # noqa: F401 - registers our custom expectations

    if docs_root is None:
        context = gx.get_context(mode="ephemeral")
    else:
        context = gx.get_context(mode="file", project_root_dir=str(docs_root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _batch_definition(context: Any, asset_name: str) -> Any:
    try:
        source = context.data_sources.get("frames")
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas("frames")
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


def _exception_message(info: Any) -> str | None:
    """GX reports an expectation that raised either flat or keyed by metric id."""
    if not info:
        return None
    if "exception_message" in info:
        return info["exception_message"] if info.get("raised_exception") else None
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict)]
    return "; ".join(m for m in messages if m) or None


def _sample_rows(frame: Any, indices: list[Any] | None, columns: list[str]) -> list[dict[str, Any]]:
    rows = []
    for index in (indices or [])[:FAILURE_SAMPLE]:
        row = frame.loc[index]
        rows.append({c: _short(row[c]) for c in columns if c in frame.columns})
    return rows


def _short(value: Any) -> Any:
    text = value if isinstance(value, (int, float, bool)) or value is None else str(value)
    return text[:200] + "…" if isinstance(text, str) and len(text) > 200 else text


def validate_dataframe(
    frame: Any,
    suite: dict[str, Any],
    *,
    docs_root: Path | None = None,
    id_columns: tuple[str, ...] = (),
    issued: IssuedSurrogates | None = None,
) -> ValidationOutcome:
    """Validate a pandas DataFrame against a suite dict; report every failure with a sample
    of failing values and rows (`id_columns` + the failing column). With `docs_root`, the
    result is also rendered into the GX Data Docs site there. `issued`: the surrogates
    redaction wrote, which the no-PII expectation accepts."""
    import great_expectations as gx

    context = _context(docs_root)
    name = suite["name"]
    gx_suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=name, expectations=suite["expectations"])
    )
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=_batch_definition(context, name), suite=gx_suite)
    )
    actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if docs_root else []
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(name=name, validation_definitions=[definition], actions=actions,
                      result_format="COMPLETE")
    )
    from pipeline.core.redaction.surrogates import IssuedSurrogates
    from pipeline.shell.gx_expectations import issued_surrogates

    with issued_surrogates(issued if issued is not None else IssuedSurrogates(())):
        run = checkpoint.run(batch_parameters={"dataframe": frame})
    [result] = run.run_results.values()
    failures = []
    for r in result.results:
        if r.success:
            continue
        kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
        column = kwargs.get("column")
        raised = _exception_message(r.exception_info)
        failures.append(ExpectationFailure(
            expectation=r.expectation_config.type,
            column=column,
            kwargs=kwargs,
            unexpected_count=r.result.get("unexpected_count"),
            sample=[_short(v) for v in list(r.result.get("partial_unexpected_list") or [])[:FAILURE_SAMPLE]],
            observed=raised or r.result.get("observed_value"),
            rows=_sample_rows(frame, r.result.get("unexpected_index_list"),
                              [*id_columns, *([column] if column else [])]),
        ))
    docs_url = None
    if docs_root is not None:
        sites = context.get_docs_sites_urls()
        docs_url = sites[0]["site_url"] if sites else None
    return ValidationOutcome(
        suite=name, success=bool(result.success), evaluated=len(result.results),
        failures=failures, docs_url=docs_url,
    )
