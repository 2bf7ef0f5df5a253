"""How the pipeline runs unattended: jobs, the nightly schedule, the new-log sensor, retries
and the failure summary.

- `nightly_retrain_job` takes one day's partition from landing files to evaluation; the
  `nightly_retrain` schedule runs it for the day that just ended (cron from settings).
- `new_landing_files` watches the landing folder and ingests a day whenever its files
  change; its cursor (a digest of names, sizes and mtimes per day) and run keys make sure
  the same files are never ingested twice.
- Steps that talk to lakeFS or MLflow retry with exponential backoff; a failure that a
  retry cannot fix (a rejected release) says so and is not retried.
- `failure_summary` writes one Markdown file per failed run under the state directory:
  what failed, where, and the root cause, so an operator does not dig through logs.
- The jobs that train carry TRAINING_RUN_TAGS (`flywheel/stage: training`): the production
  instance's run queue launches one such run at a time (pipeline/shell/production.py).
- In the production profile the schedule and sensors start RUNNING (dagster-daemon serves
  them unattended); in the local one they start stopped and `flywheel run` drives the jobs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import dagster as dg

from pipeline.orchestration.partitions import daily_partitions
from pipeline.settings import get_settings
from pipeline.shell.landing import landing_files
from pipeline.shell.production import TRAINING_RUN_TAGS

# Transient lakeFS/MLflow hiccups (restarts, timeouts) clear within seconds to a minute.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)
# Declarative automation that honours upstream blocking checks across runs, not only within one.
AFTER_BLOCKING_CHECKS = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
)


def landing_fingerprints(landing_dir: Path) -> dict[str, str]:
    """Per day folder, a digest of its landing files' paths, sizes and mtimes: the files
    ingestion reads (`landing_files`: sources' folders included, hidden files such as an
    import in progress not)."""
    if not landing_dir.is_dir():
        return {}
    prints = {}
    for day in sorted(p for p in landing_dir.iterdir() if p.is_dir()):
        if not daily_partitions.has_partition_key(day.name):
            continue
        files = [(name, f.stat().st_size, f.stat().st_mtime_ns) for name, f in landing_files(day).items()]
        if files:
            prints[day.name] = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
    return prints


def changed_days(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    return [day for day, digest in sorted(current.items()) if previous.get(day) != digest]


def build_automation(all_assets: dg.AssetSelection, ingest: dg.AssetSelection,
                     downstream: dg.AssetSelection):
    settings = get_settings()
    schedule_status = dg.DefaultScheduleStatus.RUNNING if settings.production else dg.DefaultScheduleStatus.STOPPED
    sensor_status = dg.DefaultSensorStatus.RUNNING if settings.production else dg.DefaultSensorStatus.STOPPED
    ingest_job = dg.define_asset_job(
        "ingest_job",
        selection=ingest,
        description="Capture one day of landing files: lakeFS commit, parse, quarantine, redact.",
    )
    downstream_job = dg.define_asset_job(
        "curate_release_train_job",
        selection=downstream,
        description="Everything after capture, over all ingested days: curate, validate, "
        "release, train, evaluate, promote.",
        tags=TRAINING_RUN_TAGS,
    )
    nightly_job = dg.define_asset_job(
        "nightly_retrain_job",
        selection=all_assets,
        description="One day from landing files to evaluation and promotion.",
        tags=TRAINING_RUN_TAGS,
    )

    @dg.schedule(
        name="nightly_retrain",
        cron_schedule=settings.nightly_cron,
        job=nightly_job,
        execution_timezone="UTC",
        description="Retrain on the day that just ended (cron: FLYWHEEL_NIGHTLY_CRON).",
        default_status=schedule_status,
    )
    def nightly_retrain(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
        return dg.RunRequest(run_key=f"nightly-{day}", partition_key=day)

    @dg.sensor(
        name="new_landing_files",
        job=ingest_job,
        minimum_interval_seconds=60,
        description="Ingest a landing day whenever its files appear or change.",
        default_status=sensor_status,
    )
    def new_landing_files(context: dg.SensorEvaluationContext):
        previous = json.loads(context.cursor) if context.cursor else {}
        current = landing_fingerprints(get_settings().landing_dir)
        days = changed_days(previous, current)
        context.update_cursor(json.dumps(current, sort_keys=True))
        if not days:
            return dg.SkipReason("no new or changed landing files")
        return [dg.RunRequest(run_key=f"{day}-{current[day]}", partition_key=day) for day in days]

    @dg.run_failure_sensor(
        name="failure_summary",
        monitor_all_code_locations=False,
        description="Write one summary per failed run (each failed step and its root cause) to "
        "the state directory's failures/ folder.",
        default_status=sensor_status,
    )
    def failure_summary(context: dg.RunFailureSensorContext):
        path = write_failure_summary(context)
        context.log.info(f"failure summary written to {path}")

    return [ingest_job, downstream_job, nightly_job], [nightly_retrain], [new_landing_files, failure_summary]


def write_failure_summary(context: dg.RunFailureSensorContext) -> Path:
    run = context.dagster_run
    lines = [
        f"# Run {run.run_id} failed",
        "",
        f"- job: `{run.job_name}`",
        f"- partition: `{run.tags.get('dagster/partition', '-')}`",
        "",
        "| step | error |",
        "|---|---|",
    ]
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error
        while error and error.cause is not None:
            error = error.cause
        message = (error.message.strip().splitlines() or ["?"])[0] if error else "?"
        lines.append(f"| `{event.step_key}` | {message.replace('|', '/')} |")
    path = get_settings().state_dir / "failures" / f"{run.run_id}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
