"""Stage 2, redaction: the boundary after which no raw PII or secret exists."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.ingestion import raw_agent_logs
from pipeline.partitions import daily_partitions
from pipeline.redaction import redact_tables
from pipeline.warehouse import REDACTED_SCHEMA, read_partition, replace_partition


@dg.asset(
    deps=[raw_agent_logs],
    partitions_def=daily_partitions,
    group_name="capture",
    owners=["team:data-platform"],
    kinds={"duckdb", "python"},
    tags={"stage": "redaction", "pii": "removed"},
    description=(
        "The day's canonical tables with PII and secrets replaced by consistent placeholders "
        "(<EMAIL_1>, <PERSON_2>, ...) in text, tool-call arguments and tool results. Schema "
        "`redacted`; the only input of curation."
    ),
)
def redacted_trajectories(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    partition = context.partition_key
    with duckdb.get_connection() as con:
        raw = read_partition(con, partition)
        result = redact_tables(raw)
        written = replace_partition(con, partition, result.tables, schema=REDACTED_SCHEMA)
    return dg.MaterializeResult(
        metadata={
            # Counts only: a finding never carries the value it replaced.
            "replacements_by_type": dg.MetadataValue.json(result.counts),
            "replacements": sum(result.counts.values()),
            "malformed_json_redacted_as_text": result.malformed_json,
            "rows_written": dg.MetadataValue.json(written),
            "dagster/row_count": written["trajectories"],
        }
    )
