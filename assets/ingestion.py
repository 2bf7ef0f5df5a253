"""Stage 1, capture: raw landing files → lakeFS commit → canonical DuckDB tables."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipeline.core.redaction import redact_tables
from pipeline.core.sources import RegistryError
from pipeline.orchestration.automation import TRANSIENT_RETRY
from pipeline.orchestration.partitions import daily_partitions
from pipeline.orchestration.resources import LakeFSResource
from pipeline.settings import get_settings
from pipeline.shell.failpoints import failpoint
from pipeline.shell.ingest import (
    FileStats,
    IngestRules,
    SourceFile,
    bind_commit,
    file_workers,
    merge_columnar,
    parse_files_columnar,
)
from pipeline.shell.lakefs_store import commit_partition_files, partition_prefix, verify_commit
from pipeline.shell.landing import landing_files
from pipeline.shell.sources import load_registry
from pipeline.shell.warehouse import replace_partition


class IngestConfig(dg.Config):
    """Launch-time overrides of the source registry (settings.sources_file), matched by glob
    on a file's path in the day's landing folder."""

    format_overrides: dict[str, str] = {}
    # glob -> {"preset": "wrapped"} or a full OpenAIMapping as dotted paths
    openai_mappings: dict[str, dict[str, str]] = {}


@dg.asset(
    partitions_def=daily_partitions,
    group_name="capture",
    owners=["team:data-platform"],
    kinds={"lakefs", "duckdb"},
    tags={"stage": "capture"},
    retry_policy=TRANSIENT_RETRY,
    description=(
        "The day's landing files, committed unchanged to the raw-logs lakeFS repository and "
        "parsed into canonical tables raw.trajectories/steps/tool_calls/feedback, each row "
        "naming the commit (checked to hold the parsed bytes); every record that cannot be "
        "parsed goes to raw.quarantine with a reason."
    ),
)
def raw_agent_logs(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    lakefs: LakeFSResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    settings = get_settings()
    partition = context.partition_key
    landing = settings.landing_dir / partition
    try:
        registry = load_registry(settings.sources_file)
    except RegistryError as err:
        raise dg.Failure(str(err), allow_retries=False) from None
    # Files are streamed from disk (a record at a time), never read whole: a source's folder
    # in the landing day holds its files.
    files = landing_files(landing)
    if not files:
        context.log.warning(f"no landing files in {landing}; the partition will be empty")

    rules = IngestRules(registry, config.format_overrides, config.openai_mappings)
    # The files are parsed in worker processes while lakeFS commits them: rows name their file
    # by its object path until the commit exists, then `bind_commit` makes them name it.
    with file_workers(min(settings.ingest_workers, len(files))) as map_files:
        parsing = parse_files_columnar(
            [SourceFile(name=name, uri=partition_prefix(partition) + name, path=path) for name, path in files.items()],
            partition=partition, raw_commit=None, rules=rules, map_files=map_files,
        )
        repo = lakefs.ensure_repository(settings.raw_repo)
        raw = commit_partition_files(repo, partition, files, run_id=context.run.run_id)
        context.log.info(f"committed {len(raw.paths)} raw files as {raw.commit_id}")
        failpoint("ingest.raw_committed")
        parsed = merge_columnar(parsing)
        # What was parsed is what the commit holds, byte for byte, or nothing is written.
        verify_commit(repo, raw, {f.name: f.digest for f in parsed.files if f.digest is not None})
        result = bind_commit(parsed, f"lakefs://{raw.repo}/{raw.commit_id}/", raw.commit_id)
    if result.records_read != result.ingested + result.quarantined:
        raise dg.Failure(
            f"accounting broken for {partition}: read {result.records_read}, ingested "
            f"{result.ingested}, quarantined {result.quarantined}; nothing was written",
            allow_retries=False,  # a bug in the code, not a transient error: retrying cannot help
        )
    # Quarantined excerpts are shown to operators: they get the same redaction as the data
    # (the untouched line stays in the restricted raw repository, at its file and line).
    quarantine = redact_tables({"quarantine": result.tables["quarantine"].to_pylist()}).tables["quarantine"]
    tables = {**result.tables, "quarantine": quarantine}
    with duckdb.get_connection() as con:
        written = replace_partition(con, partition, tables)

    return dg.MaterializeResult(
        metadata={
            "raw_commit": raw.commit_id,
            "raw_main_merge_commit": raw.merge_commit_id,
            "raw_uri": dg.MetadataValue.url(f"lakefs://{raw.repo}/{raw.commit_id}/dt={partition}/"),
            "files": len(raw.paths),
            "records_read": result.records_read,
            "records_ingested": result.ingested,
            "records_quarantined": result.quarantined,
            "ingested_by_format": dg.MetadataValue.json(result.by_format()),
            "quarantined_by_reason": dg.MetadataValue.json(result.by_reason()),
            "rows_written": dg.MetadataValue.json(written),
            "per_file": dg.MetadataValue.md(_file_table(result.files)),
            "dagster/row_count": written["trajectories"],
        }
    )


def _file_table(files: list[FileStats]) -> str:
    lines = ["| file | source | format | container | read | ingested | quarantined |", "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {f.name} | {f.source} | {f.source_format or 'unknown'} | {_container(f)} | {f.records_read} "
        f"| {f.ingested} | {f.quarantined} |"
        for f in files
    ]
    return "\n".join(lines)


def _container(f: FileStats) -> str:
    return f"{f.container or 'text'}" + ("" if f.compression == "none" else f" ({f.compression})")
