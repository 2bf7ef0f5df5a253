"""`flywheel`: set up, start, stop and inspect the local stack, simulate logs, run the job.

Every error a user can cause ends in one line on stderr, never a traceback: exit status 2
for a bad argument, 1 for anything else; `FLYWHEEL_DEBUG=1` re-raises for developers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Any

import click

from pipeline.benchmarks.train import ARMS
from pipeline.core.export_formats import FORMATS as EXPORT_FORMATS
from pipeline.orchestration.in_process import JobFailed, run_main_job, run_rl_job
from pipeline.settings import PROFILES, Settings, get_settings
from pipeline.shell import production
from pipeline.shell.local_stack import (
    StackError,
    ensure_lakefs_binary,
    service_status,
    services,
    start_service,
    stop_service,
    write_lakectl_config,
)


def _one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (StackError, ConnectionError, JobFailed, production.ProductionError) as error:
            if os.environ.get("FLYWHEEL_DEBUG"):
                raise
            click.echo(f"flywheel: {error}", err=True)
            sys.exit(1)

    return wrapper


class BadArguments(click.ClickException):
    """A usage error as one line: click's own also prints the usage and a hint."""

    exit_code = 2

    def __init__(self, error: click.UsageError) -> None:
        where = error.ctx.command_path if error.ctx else "flywheel"
        super().__init__(f"{where}: {error.format_message()}")

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # `flywheel` alone: the help, as click prints it
    except click.UsageError as error:
        raise BadArguments(error) from None


class FlywheelGroup(click.Group):
    """Parsing errors of the group and of every command under it become `BadArguments`."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


def _count(minimum: int = 1) -> click.IntRange:
    return click.IntRange(min=minimum)


@click.group(cls=FlywheelGroup)
def main() -> None:
    """Flywheel: agent logs in, better agents out."""


@main.command()
@_one_line_errors
def setup() -> None:
    """Build or locate the lakeFS server and compile the dbt manifest (idempotent)."""
    settings = get_settings()
    started = time.monotonic()
    binary = ensure_lakefs_binary(settings, log=click.echo)
    click.echo(f"lakeFS server: {binary}")
    _dbt_parse()
    click.echo(f"setup done in {time.monotonic() - started:.1f}s")


@main.command("base-model")
@_one_line_errors
def base_model() -> None:
    """Convert the embedded base model to safetensors under the state directory, once
    (`make setup` runs it beside the lakeFS build, so the first training need not)."""
    from transformers.utils import logging as transformers_logging

    started = time.monotonic()
    transformers_logging.disable_progress_bar()  # one line for make's output, not four progress bars
    path = _embedded_base_model()
    click.echo(f"base model: {path} ({time.monotonic() - started:.1f}s)")


def _embedded_base_model() -> Path:
    """The embedded SmolLM2 as a safetensors directory under the state dir (converted once)."""
    from pipeline.learning.base_model import EMBEDDED_MODEL, resolve_base_model

    return Path(resolve_base_model(EMBEDDED_MODEL, get_settings().state_dir / "models"))


def _dbt_parse() -> None:
    from pipeline.orchestration.resources import venv_tool
    from pipeline.settings import DBT_PROJECT_DIR

    settings = get_settings()
    env = {**os.environ, "FLYWHEEL_DUCKDB_PATH": str(settings.duckdb_path)}
    result = subprocess.run(
        [venv_tool("dbt"), "parse", "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()
        raise StackError(f"dbt parse failed: {detail[-1] if detail else 'no output'}")
    click.echo(f"dbt manifest: {DBT_PROJECT_DIR / 'target' / 'manifest.json'}")


def _profile_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--profile", type=click.Choice(PROFILES), default=None,
        help="local (sqlite, a local KV) or production (PostgreSQL for Dagster, MLflow and lakeFS); "
        "default: FLYWHEEL_PROFILE, else local.",
    )(func)


def _settings_for(profile: str | None) -> Settings:
    """The settings of `profile` (else FLYWHEEL_PROFILE's); the services this process starts
    inherit the choice through the environment."""
    if profile is not None and os.environ.get("FLYWHEEL_PROFILE") != profile:
        os.environ["FLYWHEEL_PROFILE"] = profile
        get_settings.cache_clear()
    try:
        settings = get_settings()
    except ValueError as error:  # a bad FLYWHEEL_PROFILE (or other setting): one line
        raise StackError(str(error)) from None
    click.echo(f"profile: {settings.profile}")
    return settings


def _warehouse_line(settings: Settings) -> str:
    line = f"warehouse: dbt target {settings.dbt_target}"
    if settings.dbt_target == "duckdb":
        line += f" at {settings.duckdb_path}"
    if settings.production:
        # Not PostgreSQL yet: the curation SQL is DuckDB's dialect (portable SQL is other work).
        line += " (the production profile keeps dbt on DuckDB for now)"
    return line


@main.command()
@click.option("--only", type=click.Choice(["lakefs", "mlflow", "dagster"]), multiple=True,
              help="Start only these services (default: all; dagster includes dagster-daemon in production). "
              "The production profile's PostgreSQL starts whatever is chosen.")
@_profile_option
@_one_line_errors
def up(only: tuple[str, ...], profile: str | None) -> None:
    """Start lakeFS, MLflow and Dagster under the state directory (in the production
    profile: on PostgreSQL, a local one started first unless FLYWHEEL_POSTGRES_HOST names one)."""
    from concurrent.futures import ThreadPoolExecutor

    settings = _settings_for(profile)
    if settings.production:
        click.echo(production.start_local_postgres(settings))
        click.echo(production.ensure_databases(settings))
    chosen = [service for service in services(settings)
              if not only or any(service.name == o or service.name.startswith(f"{o}-") for o in only)]
    # side by side: none needs another to start, and MLflow's first schema migration and
    # Dagster's code load take most of a minute each
    with ThreadPoolExecutor(max(len(chosen), 1)) as pool:
        started = [pool.submit(start_service, settings, service) for service in chosen]
    for service, result in zip(chosen, started):
        click.echo(result.result())
        if service.name == "lakefs":
            path = write_lakectl_config(settings)
            click.echo(f"lakefs: credentials stored in {path} (LAKECTL_CONFIG_FILE)")
            _ensure_repositories()


def _ensure_repositories() -> None:
    from pipeline.orchestration.resources import LakeFSResource

    settings = get_settings()
    lakefs = LakeFSResource(endpoint=settings.lakefs_endpoint)
    for name in (settings.raw_repo, settings.datasets_repo):
        lakefs.ensure_repository(name)
    click.echo(f"lakefs: repositories {settings.raw_repo}, {settings.datasets_repo} ready")


@main.command()
@_profile_option
@_one_line_errors
def down(profile: str | None) -> None:
    """Stop every service of the profile's stack (data stays under the state directory),
    and the production profile's local PostgreSQL (a managed one is left alone)."""
    settings = _settings_for(profile)
    for service in reversed(services(settings)):
        click.echo(stop_service(settings, service))
    if settings.production:
        click.echo(production.stop_local_postgres(settings))


@main.command()
@_profile_option
@_one_line_errors
def status(profile: str | None) -> None:
    """Say which profile is in use, which services are up and where each keeps its state
    (never a password); exit 1 if any is not up."""
    settings = _settings_for(profile)
    healthy = True
    if settings.production:
        healthy, line = production.postgres_status(settings)
        click.echo(line)
    for service in services(settings):
        ok, line = service_status(settings, service)
        healthy &= ok
        click.echo(f"{line}; {service.backend}" if service.backend else line)
    click.echo(_warehouse_line(settings))
    sys.exit(0 if healthy else 1)


@main.command()
@click.option("--days", type=_count(), default=3, show_default=True)
@click.option("--per-day", type=_count(), default=150, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (landing/ and ground_truth/ go under it). "
                   "Default: the state directory, so landing files land where ingestion looks.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start-date", type=click.DateTime(["%Y-%m-%d"]), default="2026-11-16",
              show_default=True)
@_one_line_errors
def simulate(days: int, per_day: int, out_dir: Path | None, seed: int, start_date: Any) -> None:
    """Write N days of simulated agent logs (several formats, planted mess, ground truth)."""
    from pipeline.simulator import simulate as run_simulation

    settings = get_settings()
    target = out_dir or settings.landing_dir.parent
    summary = run_simulation(
        days=days, per_day=per_day, out_dir=target, seed=seed, start_date=start_date.date()
    )
    for day in summary.days:
        formats = ", ".join(f"{lane} {n}" for lane, n in sorted(day.records_by_format.items()))
        defects = ", ".join(f"{kind} {n}" for kind, n in sorted(day.defects_planted.items()))
        click.echo(f"{day.date}: {day.trajectories} trajectories, {len(day.files)} files "
                   f"({formats}); planted defects: {defects or 'none'}")
    click.echo(f"landing files in {target / 'landing'}, ground truth in {target / 'ground_truth'}")


@main.command()
@click.option("--user", "user_id", required=True, callback=lambda ctx, param, value: _not_blank(value),
              help="Pseudonymous user id, as in the logs.")
@click.option("--reason", default=None, help="Why (ticket id, request type); stored with it.")
@_one_line_errors
def forget(user_id: str, reason: str | None) -> None:
    """Record a consent revocation: the next release excludes the user's trajectories
    (R14_consent_revoked). Lists the releases and models that contained them."""
    import duckdb

    from pipeline.orchestration.resources import LakeFSResource
    from pipeline.shell.audit import find_in_releases, models_trained_on
    from pipeline.shell.warehouse import record_consent_revocation

    settings = get_settings()
    try:
        with duckdb.connect(str(settings.duckdb_path)) as con:
            record_consent_revocation(con, user_id, reason)
    except duckdb.IOException as error:
        raise StackError(f"cannot record the revocation in {settings.duckdb_path}: {error}") from error
    click.echo(f"recorded: consent of user {user_id} revoked; the next release excludes them")
    repo = LakeFSResource(endpoint=settings.lakefs_endpoint).repository(settings.datasets_repo)
    all_hits = find_in_releases(repo, user_id=user_id)
    hits = [h for h in all_hits if h.used]
    for hit in all_hits:
        where = ", ".join([f"{d}: {n}" for d, n in sorted(hit.destinations.items())]
                          + ([f"rl tasks: {hit.rl_tasks}"] if hit.rl_tasks else []))
        verb = "contains" if hit.used else "excludes"
        click.echo(f"release {hit.tag} (commit {hit.commit_id[:12]}) {verb} them ({where}"
                   + (f"; rules {', '.join(hit.rules)}" if hit.rules and not hit.used else "") + ")")
    if not hits:
        click.echo("no published release used this user's trajectories")
        return
    try:
        models = models_trained_on(settings.mlflow_tracking_uri, [h.tag for h in hits])
    except Exception as error:  # noqa: BLE001 - MLflow down must not hide the lakeFS answer
        raise StackError(f"MLflow at {settings.mlflow_tracking_uri} unreachable: {error}") from error
    for model in models:
        click.echo(f"model {model['model']} v{model['version']} was trained on {model['release']}"
                   + (f" (aliases: {model['aliases']})" if model["aliases"] else ""))
    if not models:
        click.echo("no registered model was trained on those releases")


@main.command()
@click.argument("model", required=False, default="flywheel-agent@champion")
@click.option("--trajectory", "trajectory_id", default=None,
              help="Instead of a model: which releases and models this trajectory went into.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_one_line_errors
def trace(model: str, trajectory_id: str | None, as_json: bool) -> None:
    """Trace MODEL[@alias|/version] back to its data: MLflow run → dataset release (lakeFS
    commit, tag, data card) → raw-log commits and files → Dagster runs → code version."""
    import json

    from pipeline.orchestration.resources import LakeFSResource
    from pipeline.shell.audit import find_in_releases, format_trace, models_trained_on, trace_model

    settings = get_settings()
    lakefs = LakeFSResource(endpoint=settings.lakefs_endpoint)
    if trajectory_id:
        hits = find_in_releases(lakefs.repository(settings.datasets_repo), trajectory_id=trajectory_id)
        models = models_trained_on(settings.mlflow_tracking_uri, [h.tag for h in hits if h.used])
        result = {
            "trajectory_id": trajectory_id,
            "releases": [{"tag": h.tag, "commit": h.commit_id, "destinations": h.destinations,
                          "exclusion_rules": h.rules} for h in hits],
            "models": models,
        }
        if as_json:
            click.echo(json.dumps(result, indent=2))
            return
        if not hits:
            click.echo(f"trajectory {trajectory_id} is in no published release")
        for h in hits:
            why = f" excluded by {', '.join(h.rules)}" if h.rules else ""
            click.echo(f"release {h.tag} ({h.commit_id[:12]}): {dict(h.destinations)}{why}")
        for m in models:
            click.echo(f"model {m['model']} v{m['version']} trained on {m['release']}")
        return
    try:
        result = trace_model(model, tracking_uri=settings.mlflow_tracking_uri,
                             lakefs_client=lakefs.client(), datasets_repo=settings.datasets_repo,
                             raw_repo=settings.raw_repo)
    except Exception as error:  # noqa: BLE001 - one line for the operator, whatever broke
        raise StackError(f"cannot trace {model}: {type(error).__name__}: {error}") from error
    click.echo(json.dumps(result, indent=2) if as_json else format_trace(result))


@main.group()
def sources() -> None:
    """The source registry (sources.yaml, FLYWHEEL_SOURCES): declared log sources."""


def _registry() -> Any:
    from pipeline.core.sources import RegistryError
    from pipeline.shell.sources import load_registry

    try:
        return load_registry(get_settings().sources_file)
    except RegistryError as error:
        raise StackError(str(error)) from None


@sources.command("list")
@_one_line_errors
def sources_list() -> None:
    """Each declared source: its files, format and what it fills in."""
    registry = _registry()
    click.echo(f"registry: {registry.path}")
    for s in registry.sources:
        consent = f"{'may train' if s.consent.may_train else 'no training'} ({s.consent.scope})"
        click.echo(f"{s.name}: {', '.join(s.match)}  format {s.format}, container {s.container}, "
                   f"compression {s.compression}; {len(s.tools)} catalog tools; consent {consent}")


@sources.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--source", "source_name", default=None,
              help="Read the files as this source (default: found by each file's folder and name).")
@_one_line_errors
def sources_check(files: tuple[Path, ...], source_name: str | None) -> None:
    """Dry run: what ingestion would make of FILES (format, records parsed and quarantined
    with reasons, tool calls, outcomes, one canonical record). Writes nothing."""
    from pipeline.shell.sources import check_file, render_check

    registry = _registry()
    if source_name is not None:
        try:
            registry.get(source_name)
        except KeyError as error:
            raise StackError(error.args[0]) from None
    for path in files:
        click.echo(render_check(check_file(path, registry, source_name)))


@main.command("import")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--source", "source_name", required=True, help="A source declared in the registry.")
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The landing day (partition) [default: today, UTC].")
@_one_line_errors
def import_logs(path: Path, source_name: str, day: Any) -> None:
    """Put PATH (a file, or a folder's files) into the landing area for DAY, under the
    source's folder, where the next run of that day ingests them."""
    from datetime import UTC, datetime

    from pipeline.shell.landing import LandingConflict, import_files

    try:
        _registry().get(source_name)
    except KeyError as error:
        raise StackError(error.args[0]) from None
    partition = (day or datetime.now(UTC)).strftime("%Y-%m-%d")
    try:
        placed = import_files(path, get_settings().landing_dir / partition / source_name)
    except LandingConflict as error:
        raise StackError(str(error)) from None
    copied = sum(1 for p in placed if p.copied)
    click.echo(f"{len(placed)} files for source {source_name} in landing day {partition} "
               f"({copied} copied, {len(placed) - copied} already there): "
               f"{get_settings().landing_dir / partition / source_name}")


@main.command("export")
@click.option("--release", "tag", required=True, help="A published dataset release tag.")
@click.option("--format", "fmt", required=True, type=click.Choice(list(EXPORT_FORMATS)))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: exports/<release>/<format> in the state directory].")
@_one_line_errors
def export_release_cmd(tag: str, fmt: str, out_dir: Path | None) -> None:
    """Write a release's data (read by its commit id) for training elsewhere, with its data card."""
    from pipeline.orchestration.resources import LakeFSResource
    from pipeline.shell.export import export_release

    settings = get_settings()
    repo = LakeFSResource(endpoint=settings.lakefs_endpoint).repository(settings.datasets_repo)
    target = out_dir or settings.state_dir / "exports" / tag / fmt
    try:
        manifest = export_release(repo, tag, fmt, target)
    except (LookupError, ValueError) as error:
        raise StackError(str(error)) from None
    click.echo(f"{manifest}\nwritten to {target}")


@main.group()
def bench() -> None:
    """Benchmarks: each prints numbers next to a named baseline measured in the same run."""


@bench.command("redact")
@click.option("--days", type=_count(), default=2, show_default=True)
@click.option("--per-day", type=_count(), default=150, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--external-per-locale", type=_count(), default=100, show_default=True,
              help="External corpus: prose samples, and as many structured ones, per locale.")
@click.option("--external-secrets", type=_count(), default=300, show_default=True,
              help="External corpus: secret samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw result as JSON.")
def bench_redact(days: int, per_day: int, seed: int, external_per_locale: int, external_secrets: int,
                 as_json: bool) -> None:
    """Our redaction vs Presidio's pattern recognizers (PII) and detect-secrets (secrets), on a
    corpus generated by presidio-evaluator in 8 locales and on the simulated one: recall and
    precision per entity type, messages/s, secrets surviving."""
    import json

    from pipeline.benchmarks.redact import format_benchmark, run_redaction_benchmark

    result = run_redaction_benchmark(days=days, per_day=per_day, seed=seed, external_per_locale=external_per_locale,
                                     external_secrets=external_secrets)
    click.echo(json.dumps(result, indent=2) if as_json else format_benchmark(result))


@bench.command("ingest")
@click.option("--n", "n_trajectories", type=_count(), default=5000, show_default=True,
              help="Simulated trajectories (one day's landing files, every format, planted mess).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--rounds", type=_count(), default=3, show_default=True,
              help="Rounds of the three arms, in turn; each arm's median round is reported.")
@click.option("--json", "as_json", is_flag=True)
@_one_line_errors
def bench_ingest(n_trajectories: int, seed: int, rounds: int, as_json: bool) -> None:
    """The whole raw_agent_logs step (throwaway lakeFS, temporary DuckDB) next to DuckDB's bare
    read_json and a plain json.loads loop on the same files: MB/s, trajectories/s, peak memory."""
    import json

    from pipeline.benchmarks.ingest import format_ingest_bench, run_ingest_bench

    result = run_ingest_bench(get_settings(), n_trajectories, seed, log=lambda m: click.echo(m, err=True),
                              repeat=rounds)
    click.echo(json.dumps(result, indent=2) if as_json else format_ingest_bench(result))


@bench.command("dedup")
@click.option("--n", "n_docs", type=_count(), default=1000, show_default=True,
              help="Conversations at N (the second round has 4N); ~10% get a planted near duplicate.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_dedup(n_docs: int, seed: int, as_json: bool) -> None:
    """Our near-duplicate pairs vs datasketch used as documented for batch work (same
    permutations, threshold and verification), same planted corpus, at N and 4N: precision and
    recall against exact Jaccard, documents/s, growth; exits 1 if one arm finds a pair the other
    does not. Parameters: dbt_project.yml."""
    import json

    from pipeline.benchmarks.dedup import format_dedup_bench, run_dedup_bench
    from pipeline.shell.dbt_vars import dbt_vars

    knobs = dbt_vars()
    result = run_dedup_bench(n_docs, seed, threshold=float(knobs["near_dup_threshold"]),
                             num_perm=int(knobs["near_dup_num_perm"]),
                             width=int(knobs["near_dup_shingle_words"]), log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(result, indent=2) if as_json else format_dedup_bench(result))
    # same permutations, threshold and verification: a pair only one arm finds is a bug in one of them
    if any(row["pairs_only_ours"] or row["pairs_only_datasketch"] for key, row in result.items()
           if key.startswith("n=")):
        sys.exit(1)


@bench.command("train")
@click.option("--examples", "n_examples", type=_count(), default=12, show_default=True)
@click.option("--examples-per-step", type=_count(), default=2, show_default=True,
              help="About this many examples per optimizer step in the other arms: the flywheel arm's prefix "
                   "batches, as the pipeline's, are sized by positions (~2 of our conversations).")
@click.option("--model", default="smollm2", show_default=True,
              help="smollm2 (embedded SmolLM2-135M), tiny (random, seconds) or a model dir.")
@click.option("--arm", "arms", multiple=True, default=ARMS, show_default=True, type=click.Choice(ARMS),
              help="Arms to run, in order (repeat the option).")
@click.option("--warehouse", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="DuckDB file holding marts.sft_examples (default: the pipeline's warehouse).")
@click.option("--json", "as_json", is_flag=True)
@_one_line_errors
def bench_train(n_examples: int, examples_per_step: int, model: str, arms: tuple[str, ...], warehouse: Path | None,
                as_json: bool) -> None:
    """Example tokens/s, computed positions/s, tokens per CPU-second, peak memory and the loss
    after one epoch of our training step next to TRL's SFTTrainer (packing, padding-free,
    assistant-only loss) and transformers' Trainer with padding: same examples, model, full
    fine-tuning and learning rate, one run."""
    import json

    from pipeline.benchmarks.train import format_train_benchmark, run_train_benchmark

    settings = get_settings()
    result = run_train_benchmark(duckdb_path=warehouse or settings.duckdb_path, n_examples=n_examples, model=model,
                                 cache_dir=settings.state_dir / "models", examples_per_step=examples_per_step,
                                 arms=arms, log=lambda row: click.echo(row, err=True))
    click.echo(json.dumps(result, indent=2, default=str) if as_json else format_train_benchmark(result))


@bench.command("eval")
@click.option("--model", "model", default="champion", show_default=True,
              help="base (the embedded SmolLM2), champion or challenger (from MLflow), or a model directory.")
@click.option("--cases", "n_cases", type=_count(0), default=60, show_default=True, help="0 = every eval case.")
@click.option("--warehouse", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="DuckDB file holding marts.eval_cases (default: the pipeline's warehouse).")
@click.option("--max-new-tokens", type=_count(), default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_one_line_errors
def bench_eval(model: str, n_cases: int, warehouse: Path | None, max_new_tokens: int, as_json: bool) -> None:
    """Cases/s of our evaluation path (batched, shared prefixes read once) next to transformers'
    plain one-case-at-a-time generate, same model and cases, and whether their greedy
    predictions are identical."""
    import json

    from pipeline.benchmarks.eval import format_eval_bench, run_eval_bench

    settings = get_settings()
    result = run_eval_bench(_model_dir(model), warehouse or settings.duckdb_path, n_cases, max_new_tokens,
                            log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(result, indent=2) if as_json else format_eval_bench(result))
    if result["different_cases"]:
        sys.exit(1)


@bench.command("rollouts")
@click.option("--model", "model", default="champion", show_default=True,
              help="base (the embedded SmolLM2), champion or challenger (from MLflow), or a model directory.")
@click.option("--tasks", "n_tasks", type=_count(), default=4, show_default=True, help="Simulator tasks.")
@click.option("--group-size", type=_count(), default=2, show_default=True, help="Episodes per task.")
@click.option("--max-turns", type=_count(), default=6, show_default=True)
@click.option("--max-new-tokens", type=_count(), default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True,
              help="0: greedy (both arms must give identical episodes); > 0: sampled, as in RL.")
@click.option("--json", "as_json", is_flag=True)
@_one_line_errors
def bench_rollouts(model: str, n_tasks: int, group_size: int, max_turns: int, max_new_tokens: int,
                   temperature: float, as_json: bool) -> None:
    """Sandbox episodes/s of the RL rollout path (batched engine) next to transformers' plain
    generate loop, same model and episodes."""
    import json

    from pipeline.benchmarks.rollouts import format_rollout_bench, run_rollout_bench

    result = run_rollout_bench(_model_dir(model), n_tasks, group_size, max_turns, max_new_tokens, temperature,
                               log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(result, indent=2) if as_json else format_rollout_bench(result))
    if result["identical"] is not None and result["identical"] != result["total"]:
        sys.exit(1)


def _model_dir(model: str) -> Path:
    """A model directory for `base`, `champion`/`challenger` (downloaded from MLflow), or a path."""
    settings = get_settings()
    if model == "base":
        return _embedded_base_model()
    if model in ("champion", "challenger"):
        import tempfile

        import mlflow

        from pipeline.shell.audit import MODEL_NAME
        from pipeline.shell.model_registry import download_model_dir

        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        try:
            return download_model_dir(f"models:/{MODEL_NAME}@{model}", Path(tempfile.mkdtemp(prefix="flywheel-bench-")))
        except Exception as error:  # noqa: BLE001 - one line: no stack, no such alias
            raise StackError(
                f"cannot fetch {MODEL_NAME}@{model} from {settings.mlflow_tracking_uri}: {error}") from error
    if not Path(model).is_dir():
        raise StackError(f"--model {model}: not base, champion, challenger or a model directory")
    return Path(model)


@bench.command("budget")
@click.argument("arms", nargs=-1, required=True)
@click.option("--warehouse", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="DuckDB file holding the release's marts (default: the pipeline's warehouse).")
@click.option("--cases", "n_cases", type=_count(0), default=60, show_default=True, help="0 = every eval case.")
@click.option("--tasks", "n_tasks", type=_count(0), default=6, show_default=True, help="Sandbox tasks (0 = none).")
@click.option("--k", type=_count(), default=2, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Models, generations and budget.json (default: $STATE/bench/budget).")
@click.option("--reuse", is_flag=True,
              help="Skip training for arms whose models are already under --out; score them again from the "
                   "cached generations.")
@click.option("--json", "as_json", is_flag=True)
def bench_budget(arms: tuple[str, ...], warehouse: Path | None, n_cases: int, n_tasks: int, k: int,
                 out_dir: Path | None, reuse: bool, as_json: bool) -> None:
    """Train the base model per ARM (`name:method=full,learning_rate=1e-4,lr_scheduler=constant,
    max_steps=8,save=4/8`; also dpo_steps=N, warehouse=PATH) and evaluate every kept model
    against the base on the same cases and sandbox tasks: the measurement behind the defaults."""
    import json

    from pipeline.benchmarks.budget import format_budget, parse_arm, run_budget
    from pipeline.learning.base_model import EMBEDDED_MODEL

    settings = get_settings()
    report = run_budget(warehouse or settings.duckdb_path, EMBEDDED_MODEL, settings.state_dir / "models",
                        out_dir or settings.state_dir / "bench" / "budget", [parse_arm(a) for a in arms],
                        n_cases, n_tasks, k, reuse=reuse, log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(report, indent=2, default=str) if as_json else format_budget(report))


@bench.command("reliability")
@click.option("--json", "as_json", is_flag=True)
@_one_line_errors
def bench_reliability(as_json: bool) -> None:
    """Inputs tried, records lost or not as the manifest says, faults fired of the scenarios run,
    secrets leaked, places not scanned: exits 1 unless every count is as it must be."""
    import json

    from pipeline.benchmarks.reliability import reliability_failures, run_reliability

    result = run_reliability(get_settings(), log=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if key not in ("mismatches", "leaks"):
                click.echo(f"{key:36} {value}")
        for mismatch in result["mismatches"]:
            click.echo(f"MISMATCH {mismatch}")
        for leak in result["leaks"]:
            click.echo(f"LEAK {leak}")
    failures = reliability_failures(result)
    for failure in failures:
        click.echo(f"FAILED: {failure}", err=True)
    if result["places_not_scanned"]:
        click.echo("(start the stack with `flywheel up` and run the pipeline first)", err=True)
    if failures:
        sys.exit(1)


@main.command()
@click.option("--partition", "partitions", multiple=True, callback=lambda ctx, param, value: _partition_days(value),
              help="Day(s) to ingest (YYYY-MM-DD). Default: every folder in the landing dir.")
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's log stream (DEBUG) here too.")
@_one_line_errors
def run(partitions: tuple[str, ...], verbose: bool) -> None:
    """Run the main job: ingest each day, then everything downstream, recorded in Dagster.
    One line per step and a summary; Dagster's own log goes to $STATE/logs/flywheel-run.log."""
    settings = get_settings()
    days = list(partitions) or _landing_days(settings.landing_dir)
    if not days:
        raise StackError(f"no landing folders under {settings.landing_dir}; run `flywheel simulate`")
    from pipeline.definitions import defs

    status = (lambda text: click.echo("\r\033[K" + text, nl=False)) if sys.stdout.isatty() else None
    run_main_job(defs, days, echo=click.echo, verbose=verbose, status=status)


@main.command("rl")
@click.option("--steps", type=int, default=-1, show_default=True, help="GRPO steps (-1: sized to the device).")
@click.option("--tasks-per-step", type=int, default=-1, show_default=True, help="-1: sized to the device.")
@click.option("--group-size", type=_count(2), default=4, show_default=True, help="Episodes per task and step.")
@click.option("--from", "init_from", default="sft", show_default=True,
              help="'sft' (the latest fine_tuned_model version) or a flywheel-agent version number.")
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's log stream (DEBUG) here too.")
@_one_line_errors
def reinforce(steps: int, tasks_per_step: int, group_size: int, init_from: str, verbose: bool) -> None:
    """Run rl_job: GRPO in the sandbox from the SFT model, then evaluate it against base, SFT
    and champion (promotion as for any challenger). Needs a release and an SFT model (`flywheel run`)."""
    from pipeline.definitions import defs

    training = {"steps": steps, "tasks_per_step": tasks_per_step, "group_size": group_size, "init_from": init_from}
    status = (lambda text: click.echo("\r\033[K" + text, nl=False)) if sys.stdout.isatty() else None
    run_rl_job(defs, {"ops": {"rl_tuned_model": {"config": training}}}, echo=click.echo, verbose=verbose,
               status=status)


def _partition_days(values: tuple[str, ...]) -> tuple[str, ...]:
    """Each value a day (YYYY-MM-DD) that is a partition of the daily partitions."""
    from pipeline.orchestration.partitions import daily_partitions

    for value in values:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) or not _is_date(value):
            raise click.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)")
        if not daily_partitions.has_partition_key(value):
            first, last = daily_partitions.get_first_partition_key(), daily_partitions.get_last_partition_key()
            raise click.BadParameter(f"{value} is not a partition: the days run from {first} to {last}")
    return values


def _not_blank(value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must not be empty")
    return value


def _landing_days(landing_dir: Path) -> list[str]:
    if not landing_dir.is_dir():
        return []
    return sorted(p.name for p in landing_dir.iterdir() if p.is_dir() and _is_date(p.name))


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    main()
