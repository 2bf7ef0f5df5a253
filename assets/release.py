"""Stage 4, release: write-audit-publish of the marts on the lakeFS datasets repository."""

import hashlib

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.validation import mart_key
from pipeline.core.redaction.surrogates import IssuedSurrogates
from pipeline.orchestration.automation import AFTER_BLOCKING_CHECKS, TRANSIENT_RETRY
from pipeline.orchestration.resources import LakeFSResource, dbt_project
from pipeline.settings import get_settings
from pipeline.shell.datacard import build_card, card_json, card_markdown
from pipeline.shell.marts import (
    MART_KEYS,
    SPLIT_MEMBERSHIP,
    load_mart,
    outcome_record,
    parquet_bytes,
    read_parquet,
    split_membership,
    validate_suite,
)
from pipeline.shell.release import ReleaseRejected, install_hooks, publish
from pipeline.shell.warehouse import issued_surrogates
from pipeline.version import code_version


def _judge_agreement(con) -> list[dict]:
    """intermediate.int_judge_agreement's rows (the judge's kappa against verified outcomes)."""
    cursor = con.execute("SELECT * FROM intermediate.int_judge_agreement ORDER BY judge_model, rubric_version")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _provenance(con) -> tuple[list[str], list[str]]:
    """Raw-log commits and partitions behind the curated records."""
    rows = con.execute(
        "SELECT DISTINCT raw_commit, partition_date::varchar FROM redacted.trajectories "
        "WHERE record_key IN (SELECT record_key FROM marts.curation_decisions)"
    ).fetchall()
    return sorted({r[0] for r in rows}), sorted({r[1] for r in rows})


@dg.asset(
    deps=[mart_key(name) for name in MART_KEYS],
    group_name="release",
    owners=["team:ml-platform"],
    kinds={"lakefs", "parquet"},
    tags={"stage": "release"},
    retry_policy=TRANSIENT_RETRY,
    automation_condition=AFTER_BLOCKING_CHECKS,
    description=(
        "The marts as an immutable dataset release: Parquet files and a data card on a new "
        "lakeFS branch, validated again as written (GX), committed with the audit metadata, "
        "merged into main and tagged dataset-<day>-<n> only if every suite passed. A failed "
        "audit leaves main unchanged and the branch for inspection."
    ),
)
def dataset_release(
    context: dg.AssetExecutionContext, lakefs: LakeFSResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    settings = get_settings()
    with duckdb.get_connection() as con:
        frames = {name: load_mart(con, name) for name in MART_KEYS}
        raw_commits, partitions = _provenance(con)
        issued = IssuedSurrogates(issued_surrogates(con))
        judge_agreement = _judge_agreement(con)
    files = {f"{name}.parquet": parquet_bytes(frame) for name, frame in frames.items()}

    # Audit what will be published: the suites run on the Parquet bytes read back.
    published = {name: read_parquet(files[f"{name}.parquet"]) for name in MART_KEYS}
    outcomes = [validate_suite(published[name], name, settings.gx_dir, issued) for name in MART_KEYS]
    outcomes.append(validate_suite(split_membership(published), SPLIT_MEMBERSHIP, settings.gx_dir))
    validation = [outcome_record(o) for o in outcomes]

    manifest_digest = hashlib.sha256(dbt_project.manifest_path.read_bytes()).hexdigest()
    decisions = frames["curation_decisions"]
    card = build_card(
        counts={name: len(frame) for name, frame in frames.items()},
        coverage=frames["coverage"].astype(object).where(frames["coverage"].notna(), None).to_dict("records"),
        decisions={
            f"{d}: {r or 'kept'}": int(n)
            for (d, r), n in decisions.fillna({"primary_rule_id": ""})
            .groupby(["destination", "primary_rule_id"]).size().items()
        },
        validation=validation,
        raw_commits=raw_commits,
        partitions=partitions,
        code_version=code_version(),
        dbt_manifest_digest=manifest_digest,
        content_digests={n: hashlib.sha256(d).hexdigest() for n, d in files.items()},
        judge_agreement=judge_agreement,
    )
    files["data_card.json"] = card_json(card)
    files["DATA_CARD.md"] = card_markdown(card)

    verdict = {
        "verdict": card["verdict"],
        "reasons": [v["summary"] for v in validation if not v["success"]],
        "suites": {v["suite"]: v["success"] for v in validation},
    }
    repo = lakefs.ensure_repository(settings.datasets_repo)
    install_hooks(repo)
    day = partitions[-1] if partitions else "empty"
    try:
        release = publish(
            repo, files, run_id=context.run.run_id, day=day, verdict=verdict,
            metadata={
                "partitions": f"{partitions[0]}..{day}" if partitions else "",
                "raw_log_commits": ",".join(raw_commits),
                "dbt_manifest_digest": manifest_digest,
                "code_version": code_version(),
            },
        )
    except ReleaseRejected as rejected:
        raise dg.Failure(
            description=str(rejected),
            allow_retries=False,  # the data, not the network, is at fault
            metadata={"branch": rejected.branch,
                      "failed_suites": dg.MetadataValue.json(verdict["reasons"])},
        ) from rejected

    return dg.MaterializeResult(
        metadata={
            "lakefs_commit": release.commit_id,
            "lakefs_merge_commit": release.merge_commit_id,
            "tag": release.tag,
            "content_digest": release.content_digest,
            "reused_existing_release": release.reused,
            "uris": dg.MetadataValue.json({n: release.uri(n) for n in files}),
            "data_card": dg.MetadataValue.url(release.uri("DATA_CARD.md")),
            "validation": dg.MetadataValue.json(verdict["suites"]),
            "raw_log_commits": dg.MetadataValue.json(raw_commits),
            "rows": dg.MetadataValue.json(card["counts"]),
        }
    )
