"""Stage 2, redaction: the boundary after which no raw PII or secret exists."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.ingestion import raw_agent_logs
from pipeline.core.redaction import redact_tables
from pipeline.orchestration.partitions import daily_partitions
from pipeline.settings import get_settings
from pipeline.shell.warehouse import REDACTED_SCHEMA, read_partition, replace_partition


@dg.asset(
    deps=[raw_agent_logs],
    partitions_def=daily_partitions,
    group_name="capture",
    owners=["team:data-platform"],
    kinds={"duckdb", "python"},
    tags={"stage": "redaction", "pii": "removed"},
    description=(
        "The day's canonical tables with PII and secrets replaced in text, tool-call arguments "
        "and tool results, consistently within a trajectory: by realistic surrogates "
        "(made-up values of the same format, keyed per trajectory; the default) or by "
        "placeholders (<EMAIL_1>; FLYWHEEL_REDACTION=placeholders). Schema `redacted`, with "
        "`redacted.surrogates` listing what was issued; the only input of curation."
    ),
)
def redacted_trajectories(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    partition = context.partition_key
    settings = get_settings()
    with duckdb.get_connection() as con:
        raw = read_partition(con, partition)
        result = redact_tables(raw, surrogate_key=settings.surrogate_key_bytes())
        surrogates = [{"partition_date": partition, "record_key": key, "entity_type": kind, "surrogate": value}
                      for key, kind, value in result.surrogates]
        written = replace_partition(con, partition, {**result.tables, "surrogates": surrogates},
                                    schema=REDACTED_SCHEMA)
    return dg.MaterializeResult(
        metadata={
            # Counts only: a finding never carries the value it replaced.
            "replacements_by_type": dg.MetadataValue.json(result.counts),
            "replaced_with": settings.redaction,
            "replacements": sum(result.counts.values()),
            "malformed_json_redacted_as_text": result.malformed_json,
            "rows_written": dg.MetadataValue.json(written),
            "dagster/row_count": written["trajectories"],
        }
    )
