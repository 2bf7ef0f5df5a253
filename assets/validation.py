"""Stage 3, validation: one Great Expectations suite per mart as a blocking asset check.

A failing suite stops everything downstream of its mart (the release, and through it
training); its metadata names the failing expectations with sample values and rows, and
links the Data Docs site under the state directory.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipeline.core.redaction.surrogates import IssuedSurrogates
from pipeline.settings import get_settings
from pipeline.shell.marts import (
    MART_KEYS,
    SPLIT_MEMBERSHIP,
    load_mart,
    outcome_record,
    split_membership,
    validate_suite,
)
from pipeline.shell.warehouse import issued_surrogates


def mart_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", name])


def check_result(outcome) -> dg.AssetCheckResult:
    record = outcome_record(outcome)
    metadata = {
        "expectations_evaluated": outcome.evaluated,
        "expectations_failed": len(outcome.failures),
        "summary": dg.MetadataValue.text(record["summary"]),
    }
    if record["failures"]:
        metadata["failures"] = dg.MetadataValue.json(record["failures"])
    if outcome.docs_url:
        metadata["data_docs"] = dg.MetadataValue.url(outcome.docs_url)
    return dg.AssetCheckResult(
        passed=outcome.success, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata
    )


def _gx_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=mart_key(name),
        name=f"gx_{name}",
        blocking=True,
        description=f"Great Expectations suite expectations/{name}.json on marts.{name}.",
    )
    def _check(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            frame = load_mart(con, name)
            issued = IssuedSurrogates(issued_surrogates(con))
        return check_result(validate_suite(frame, name, docs_root=get_settings().gx_dir, issued=issued))

    return _check


@dg.asset_check(
    asset=mart_key("curation_decisions"),
    name="gx_split_membership",
    blocking=True,
    additional_deps=[mart_key(n) for n in MART_KEYS if n != "curation_decisions"],
    description=(
        "No split group (user, session or template) is used in both train and eval, across "
        "every mart that is released (expectations/split_membership.json)."
    ),
)
def gx_split_membership(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        frames = {n: load_mart(con, n) for n in MART_KEYS}
    return check_result(
        validate_suite(split_membership(frames), SPLIT_MEMBERSHIP, docs_root=get_settings().gx_dir)
    )


gx_checks = [_gx_check(name) for name in MART_KEYS] + [gx_split_membership]
