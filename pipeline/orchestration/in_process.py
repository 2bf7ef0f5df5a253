"""Run the main job in this process against the persistent Dagster instance.

Runs go to the same DAGSTER_HOME that `flywheel up` gives `dagster dev`, so each one shows
in the Dagster UI with its logs and materializations. The terminal gets one line per step
and a summary (`terminal.py`); Dagster's own log stream, DEBUG included, and whatever the
steps print (dbt's log) go to `$STATE/logs/flywheel-run.log`, and to the terminal as well
when asked (`flywheel run -v`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pipeline.orchestration.terminal import RunTotals, StepLines, root_cause
from pipeline.settings import get_settings
from pipeline.shell.local_stack import dagster_instance_env

RUN_LOG = "flywheel-run.log"
# Lifecycle stages in order, with the asset that implements each; the runner says plainly
# which ones this build does not have yet.
LIFECYCLE = (
    ("raw_agent_logs", "capture into lakeFS + canonical tables"),
    ("redacted_trajectories", "PII and secret redaction"),
    ("judge_labels", "judge labels for what nothing verified (when a judge is configured)"),
    ("marts/sft_examples", "curation marts (labels, dedup, balance, splits)"),
    ("dataset_release", "GX gates + write-audit-publish on lakeFS"),
    ("fine_tuned_model", "fine-tuning tracked in MLflow"),
    ("evaluation_report", "evaluation and promotion"),
)


class JobFailed(RuntimeError):
    """A run failed; the message names the run and the failing step."""


def run_main_job(defs: Any, partitions: list[str], echo: Callable[[str], None] = print, verbose: bool = False,
                 status: Callable[[str], None] | None = None) -> None:
    """Ingest each partition, then run everything downstream, with the jobs of `defs` (the
    code location, which sits above this package: the CLI passes it in). `echo` gets the
    step lines and the summary, `status` (an interactive terminal) the running step's latest
    log message; `verbose` also copies Dagster's log stream to stderr."""
    with _session(echo, status, verbose) as (instance, echo, status, totals):
        ingest = defs.resolve_job_def("ingest_job")
        for i, partition in enumerate(partitions, start=1):
            echo(f"[{i}/{len(partitions)}] ingest {partition}")
            _execute(ingest, instance, echo, status, totals, partition_key=partition)
        echo("curate, validate, release, train, evaluate (over all ingested days)")
        _execute(defs.resolve_job_def("curate_release_train_job"), instance, echo, status, totals)
    built = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    missing = [f"{key} ({what})" for key, what in LIFECYCLE if key not in built]
    if missing:
        echo("not built yet in this version: " + "; ".join(missing))
    echo_where_to_look(get_settings(), instance, echo)


def run_rl_job(defs: Any, run_config: dict[str, Any], echo: Callable[[str], None] = print, verbose: bool = False,
               status: Callable[[str], None] | None = None) -> None:
    """`rl_job` (RL from the latest SFT model, then its evaluation), as `run_main_job` runs its jobs."""
    with _session(echo, status, verbose) as (instance, echo, status, totals):
        echo("reinforcement learning in the sandbox, then evaluation (base, SFT, RL, champion)")
        _execute(defs.resolve_job_def("rl_job"), instance, echo, status, totals, run_config=run_config)
    echo_where_to_look(get_settings(), instance, echo)


@contextlib.contextmanager
def _session(echo: Callable[[str], None], status: Callable[[str], None] | None, verbose: bool) -> Iterator[tuple]:
    """(instance, echo, status, totals) for runs in this process: the persistent instance,
    Dagster's log stream in $STATE/logs (and stderr when `verbose`), the terminal writers,
    and the run totals, printed at the end whatever happens."""
    settings = get_settings()
    # DAGSTER_HOME, and in the production profile the PostgreSQL connection its dagster.yaml
    # refers to. Runs made here execute in this process: the production run queue (and its
    # one-training-run limit) governs the runs dagster-daemon launches, not these.
    os.environ.update(dagster_instance_env(settings))
    import dagster as dg

    instance = dg.DagsterInstance.get()
    log_path = settings.logs_dir / RUN_LOG
    echo(f"Dagster's log: {log_path}" + ("" if verbose else " (-v shows it here)"))
    echo, status = _to(sys.stdout, echo), status and _to(sys.stdout, status)
    totals, started = RunTotals(), time.monotonic()
    try:
        with dagster_log(log_path, verbose):
            yield instance, echo, status, totals
    finally:
        echo(totals.summary(time.monotonic() - started))


def _execute(job: Any, instance: Any, echo: Callable[[str], None], status: Callable[[str], None] | None,
             totals: RunTotals, **kwargs: Any) -> None:
    """One run of `job`, its steps echoed as they finish; JobFailed names the failing steps."""
    run_id = str(uuid.uuid4())
    instance.add_event_listener(run_id, StepLines(echo, totals, status))
    started = time.monotonic()
    result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False, **kwargs)
    if not result.success:
        failures = [
            f"{e.step_key}: {root_cause(e.event_specific_data.error)}"
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
        ]
        raise JobFailed(
            f"run {result.run_id} failed after {time.monotonic() - started:.1f}s: "
            + ("; ".join(failures) or "see the Dagster UI")
        )


def _to(terminal: TextIO, write: Callable[[str], None]) -> Callable[[str], None]:
    """`write` with stdout pointing at `terminal` (the runs' stdout goes to the log)."""
    def written(text: str) -> None:
        with contextlib.redirect_stdout(terminal):
            write(text)

    return written


class _Tee:
    """A text stream that writes to several."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def dagster_log(path: Path, verbose: bool) -> Iterator[None]:
    """Dagster's console logger, and whatever else writes to stderr or stdout meanwhile
    (warnings, dbt's log lines), appends to `path`; `verbose` copies each stream to where
    it was going. The logger looks up sys.stderr for each message, so redirecting it is
    enough."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        out, err = (_Tee(log, sys.stdout), _Tee(log, sys.stderr)) if verbose else (log, log)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield


def echo_where_to_look(settings, instance, echo: Callable[[str], None]) -> None:
    """The UIs, the newest evaluation report and promotion decision, and the audit trail."""
    import dagster as dg

    echo("where to look:")
    echo(f"  Dagster UI       http://127.0.0.1:{settings.dagster_port}")
    echo(f"  MLflow UI        http://127.0.0.1:{settings.mlflow_port}")
    # the newer of the two evaluations (after `flywheel rl`, the RL model's)
    events = [instance.get_latest_materialization_event(dg.AssetKey(key))
              for key in ("evaluation_report", "rl_evaluation_report")]
    evaluation = max((e for e in events if e is not None), key=lambda e: e.timestamp, default=None)
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
