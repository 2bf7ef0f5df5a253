"""Stage 2b, labelling: a judge model's rubric verdicts for the day's records that nothing
verified and no human rated (off unless FLYWHEEL_JUDGE_URL names an endpoint)."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.redaction import redacted_trajectories
from pipeline.core.judge import RUBRIC_VERSION
from pipeline.orchestration.automation import TRANSIENT_RETRY
from pipeline.orchestration.partitions import daily_partitions
from pipeline.settings import get_settings
from pipeline.shell.judge import JudgeClient, conversations, judge_targets, label_rows
from pipeline.shell.warehouse import LABELS_SCHEMA, replace_partition


@dg.asset(
    deps=[redacted_trajectories],
    partitions_def=daily_partitions,
    group_name="capture",
    owners=["team:ml-platform"],
    kinds={"duckdb", "python"},
    tags={"stage": "labelling"},
    retry_policy=TRANSIENT_RETRY,
    description=(
        "A judge model's verdict (rubric: goal achieved, policy followed, tool use correct) on "
        "the day's redacted records that have no verified outcome and no human feedback, and on "
        "a sample of verified ones to measure its agreement. labels.judge_labels; curation ranks "
        "them below verified and human labels. Writes nothing when no judge is configured."
    ),
)
def judge_labels(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    settings = get_settings()
    partition = context.partition_key
    if not settings.judge_url:
        with duckdb.get_connection() as con:
            replace_partition(con, partition, {"judge_labels": []}, schema=LABELS_SCHEMA)
        return dg.MaterializeResult(metadata={"judge": "not configured (FLYWHEEL_JUDGE_URL)", "labels": 0})
    with duckdb.get_connection() as con:
        targets = judge_targets(con, partition, settings.judge_agreement_sample)
        messages = conversations(con, partition, [key for key, _ in targets])
    client = JudgeClient(settings.judge_url, settings.judge_model,
                         settings.judge_api_key.reveal() if settings.judge_api_key else None)
    try:
        labels = {key: client.label(messages[key]) for key, _ in targets}
    finally:
        client.close()
    rows = label_rows(partition, labels)
    with duckdb.get_connection() as con:
        replace_partition(con, partition, {"judge_labels": rows}, schema=LABELS_SCHEMA)
    verified = {key for key, is_verified in targets if is_verified}
    return dg.MaterializeResult(metadata={
        "judge_model": settings.judge_model,
        "rubric_version": RUBRIC_VERSION,
        "labels": len(rows),
        "unreadable_replies": sum(r["passed"] is None for r in rows),
        "passed": sum(r["passed"] is True for r in rows),
        "scored_for_agreement_only": len(verified),
        "dagster/row_count": len(rows),
    })
