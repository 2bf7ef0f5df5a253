"""Run the main job in-process against the persistent Dagster instance.

Runs go to the same DAGSTER_HOME that `flywheel up` gives `dagster dev`, so each one shows
in the Dagster UI with its logs and materializations, while the terminal shows progress.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pipeline.settings import get_settings
from pipeline.shell.local_stack import prepare_dagster_home

# Lifecycle stages in order, with the asset that implements each; the runner says plainly
# which ones this build does not have yet.
LIFECYCLE = (
    ("raw_agent_logs", "capture into lakeFS + canonical tables"),
    ("redacted_trajectories", "PII and secret redaction"),
    ("marts/sft_examples", "curation marts (labels, dedup, balance, splits)"),
    ("dataset_release", "GX gates + write-audit-publish on lakeFS"),
    ("fine_tuned_model", "fine-tuning tracked in MLflow"),
    ("evaluation_report", "evaluation and promotion"),
)


class JobFailed(RuntimeError):
    """A run failed; the message names the run and the failing step."""


def run_main_job(defs, partitions: list[str], echo: Callable[[str], None] = print) -> None:
    """Ingest each partition, then run everything downstream, with the jobs of `defs` (the
    code location, which sits above this package: the CLI passes it in)."""
    settings = get_settings()
    os.environ["DAGSTER_HOME"] = str(prepare_dagster_home(settings))
    import dagster as dg

    instance = dg.DagsterInstance.get()
    ingest = defs.resolve_job_def("ingest_job")
    for i, partition in enumerate(partitions, start=1):
        started = time.monotonic()
        echo(f"[{i}/{len(partitions)}] ingest {partition} ...")
        result = ingest.execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False
        )
        _report(result, echo, started)
    started = time.monotonic()
    echo("curate, validate, release (over all ingested days) ...")
    result = defs.resolve_job_def("curate_release_train_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    _report(result, echo, started)

    built = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    missing = [f"{key} ({what})" for key, what in LIFECYCLE if key not in built]
    if missing:
        echo("not built yet in this version: " + "; ".join(missing))
    echo_where_to_look(settings, instance, echo)


def echo_where_to_look(settings, instance, echo: Callable[[str], None]) -> None:
    """The UIs, the newest evaluation report and promotion decision, and the audit trail."""
    import dagster as dg

    echo("where to look:")
    echo(f"  Dagster UI       http://127.0.0.1:{settings.dagster_port}")
    echo(f"  MLflow UI        http://127.0.0.1:{settings.mlflow_port}")
    evaluation = instance.get_latest_materialization_event(dg.AssetKey("evaluation_report"))
    if evaluation is None:
        return
    metadata = {k: v.value for k, v in evaluation.asset_materialization.metadata.items()}
    echo(f"  evaluation       {metadata['report']}")
    echo(f"  promotion        challenger v{metadata['challenger_version']} {metadata['promotion']} "
         f"(compared with {metadata['compared_with']}):")
    for reason in str(metadata["promotion_reasons"]).splitlines():
        echo(f"                   {reason}")
    echo("")
    _echo_trace(settings, echo)


def _echo_trace(settings, echo: Callable[[str], None]) -> None:
    """The audit trail of the model now serving (the champion, else the newest challenger)."""
    from mlflow import MlflowClient

    from pipeline.orchestration.resources import LakeFSResource
    from pipeline.shell.audit import MODEL_NAME, format_trace, trace_model

    aliases = MlflowClient(settings.mlflow_tracking_uri).get_registered_model(MODEL_NAME).aliases
    model = f"{MODEL_NAME}@{'champion' if 'champion' in aliases else 'challenger'}"
    echo(f"$ flywheel trace {model}")
    try:
        echo(format_trace(trace_model(
            model, tracking_uri=settings.mlflow_tracking_uri,
            lakefs_client=LakeFSResource(endpoint=settings.lakefs_endpoint).client(),
            datasets_repo=settings.datasets_repo, raw_repo=settings.raw_repo)))
    except Exception as error:  # noqa: BLE001 - the run succeeded; say why the trace did not
        echo(f"cannot trace {model}: {type(error).__name__}: {error}")


def _root_cause(error) -> str:
    """The innermost error's first line: Dagster wraps user errors in its own."""
    while error.cause is not None:
        error = error.cause
    lines = error.message.strip().splitlines()
    return lines[0] if lines else error.cls_name or "unknown error"


SHOWN_METADATA = ("records_read", "records_ingested", "records_quarantined", "replacements",
                  "raw_commit", "dagster/row_count")


def _report(result, echo: Callable[[str], None], started: float) -> None:
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        shown = {
            k: v.value for k, v in materialization.metadata.items() if k in SHOWN_METADATA
        }
        echo(f"    {materialization.asset_key.to_user_string()} {shown or ''}".rstrip())
    checks = [
        e.event_specific_data for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    if checks:
        failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
        echo(f"    checks: {len(checks) - len(failed)} passed, {len(failed)} failed"
             + (f" ({', '.join(failed)})" if failed else ""))
    if not result.success:
        failures = [
            f"{e.step_key}: {_root_cause(e.event_specific_data.error)}"
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
        ]
        raise JobFailed(
            f"run {result.run_id} failed after {time.monotonic() - started:.1f}s: "
            + ("; ".join(failures) or "see the Dagster UI")
        )
    echo(f"    run {result.run_id} succeeded in {time.monotonic() - started:.1f}s")
