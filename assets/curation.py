"""Stage 2, curation: the Python inputs of curation, then the dbt project (staging →
intermediate → marts) as Dagster assets.

dbt tests become asset checks; error-severity tests block downstream assets. The checks
that need Python (JSON Schema, MinHash) run first, as plain assets that write schema
`derived` through the warehouse (DuckDB, or PostgreSQL on the `warehouse` dbt target), so
the dbt project is SQL only and runs unchanged on either.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_duckdb import DuckDBResource

from assets.redaction import redacted_trajectories
from pipeline.orchestration.resources import dbt_project
from pipeline.settings import get_settings
from pipeline.shell.curation_inputs import write_near_duplicate_graph, write_tool_call_validity
from pipeline.shell.dbt_vars import dbt_vars
from pipeline.shell.sql_warehouse import DuckDBWarehouse, Warehouse, open_warehouse

# The four `redacted` source tables are all produced by one asset, redacted_trajectories.
translator = DagsterDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)
)


@contextmanager
def _warehouse(duckdb: DuckDBResource) -> Iterator[Warehouse]:
    """The warehouse dbt builds in: the DuckDB resource's file, or PostgreSQL on the
    `warehouse` target (the FLYWHEEL_WAREHOUSE_* variables dbt's profile reads too)."""
    target = get_settings().dbt_target
    if target == "duckdb":
        with duckdb.get_connection() as con:
            yield DuckDBWarehouse(con)
    else:
        with open_warehouse(target) as warehouse:
            yield warehouse


@dg.asset(
    deps=[redacted_trajectories],
    group_name="curation",
    owners=["team:data-platform"],
    kinds={"duckdb", "python"},
    tags={"stage": "curation"},
    description=(
        "Every tool call checked against the JSON schema of its tool as offered in that "
        "trajectory (the release's GX check, pipeline.core.curation.conversation): "
        "derived.tool_call_validity, read by dbt (int_tool_call_validity, rule R13)."
    ),
)
def tool_call_validity(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with _warehouse(duckdb) as warehouse:
        written = write_tool_call_validity(warehouse)
    return dg.MaterializeResult(metadata={**written, "dagster/row_count": written["tool_calls"]})


@dg.asset(
    deps=[redacted_trajectories],
    group_name="curation",
    owners=["team:data-platform"],
    kinds={"duckdb", "python"},
    tags={"stage": "curation"},
    description=(
        "Near-duplicate candidates over every record (MinHash + LSH on word shingles, per "
        "task type; knobs near_dup_* of dbt_project.yml): each record's document and the "
        "verified pairs between documents, in derived.near_duplicate_documents and "
        "derived.near_duplicate_pairs. dbt clusters them among the exact-dedup "
        "representatives (int_near_duplicates, rule R02)."
    ),
)
def near_duplicate_candidates(duckdb: DuckDBResource) -> dg.MaterializeResult:
    knobs = dbt_vars()
    with _warehouse(duckdb) as warehouse:
        written = write_near_duplicate_graph(
            warehouse, threshold=float(knobs["near_dup_threshold"]), num_perm=int(knobs["near_dup_num_perm"]),
            width=int(knobs["near_dup_shingle_words"]))
    return dg.MaterializeResult(metadata={**written, "dagster/row_count": written["records"]})


@dbt_assets(
    manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=translator
)
def curation_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # One `dbt build` per run: dbt's ~8 s start-up is paid once, and tests run right after
    # the model they check, so a failing test stops the models downstream of it.
    yield from dbt.cli(["build"], context=context).stream()


# What a run materializes for curation, in order (tests and jobs list these together).
CURATION_ASSETS = (tool_call_validity, near_duplicate_candidates, curation_dbt_models)
