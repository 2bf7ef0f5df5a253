"""What `flywheel run` prints: one line per finished step (asset, status, seconds, the step's
key figure) and a summary, built from a run's events as the instance records them.

`StepLines` is the instance's event listener for one run; `RunTotals` adds up the key
figures over the runs of one `flywheel run`. Dagster's own log stream is not printed here
(see `in_process.dagster_log`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Echo = Callable[[str], None]


def _ingestion(m: Mapping[str, Any]) -> str:
    return f"{m['records_ingested']} ingested, {m['records_quarantined']} quarantined"


def _redaction(m: Mapping[str, Any]) -> str:
    return f"{m['replacements']} values replaced"


def _release(m: Mapping[str, Any]) -> str:
    suites = m.get("validation") or {}
    reused = " (the same content was already released)" if m.get("reused_existing_release") else ""
    return f"{m['tag']}{reused}, {sum(map(bool, suites.values()))}/{len(suites)} suites passed"


def _model(m: Mapping[str, Any]) -> str:
    if m.get("reused_existing_version"):
        return f"v{m['model_version']} reused (same release, config and code)"
    return f"v{m['model_version']}, loss {m['initial_loss']:.3f} -> {m['final_loss']:.3f}"


def _rl_model(m: Mapping[str, Any]) -> str:
    if m.get("reused_existing_version"):
        return f"v{m['model_version']} reused (same release, config and code)"
    verified = m.get("verified_reward_last_step")
    last = f", verified reward at the last step {verified:.2f}" if verified is not None else ""
    return f"v{m['model_version']} from v{m['parent_version']}, {m['episodes']} episodes{last}"


def _evaluation(m: Mapping[str, Any]) -> str:
    headline = m.get("headline") or {}
    primary = next((f"{k.removeprefix('challenger.')} {v}" for k, v in headline.items()
                    if k.startswith("challenger.") and not k.endswith(".pass_hat_k")), None)
    return "; ".join(filter(None, [f"challenger {primary}" if primary else None, m.get("promotion")]))


# The key figure of each lifecycle asset, from its materialization metadata.
KEY_FIGURES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "raw_agent_logs": _ingestion,
    "redacted_trajectories": _redaction,
    "dataset_release": _release,
    "fine_tuned_model": _model,
    "evaluation_report": _evaluation,
    "rl_tuned_model": _rl_model,
    "rl_evaluation_report": _evaluation,
}


def key_figure(assets: list[tuple[str, Mapping[str, Any]]], checks: list[tuple[str, bool]]) -> str:
    """A step's key figure: what its lifecycle assets report, how many assets it built when
    several (the dbt step), and how its checks went."""
    parts = [f"{len(assets)} assets"] if len(assets) > 1 else []
    parts += [KEY_FIGURES[key](metadata) for key, metadata in assets if key in KEY_FIGURES]
    if checks:
        failed = [name for name, passed in checks if not passed]
        parts.append(f"checks: {len(checks) - len(failed)} passed"
                     + (f", {len(failed)} failed ({', '.join(failed[:5])})" if failed else ""))
    return "; ".join(parts)


@dataclass
class RunTotals:
    """The key figures over every run of one `flywheel run`."""

    partitions: int = 0
    ingested: int = 0
    quarantined: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    latest: dict[str, str] = field(default_factory=dict)  # asset -> its key figure, last run

    def add(self, assets: list[tuple[str, Mapping[str, Any]]], checks: list[tuple[str, bool]]) -> None:
        for key, metadata in assets:
            if key == "raw_agent_logs":
                self.partitions += 1
                self.ingested += int(metadata["records_ingested"])
                self.quarantined += int(metadata["records_quarantined"])
            elif key in KEY_FIGURES:
                self.latest[key] = KEY_FIGURES[key](metadata)
        self.checks_passed += sum(passed for _, passed in checks)
        self.checks_failed += sum(not passed for _, passed in checks)

    def summary(self, seconds: float) -> str:
        parts = []
        if self.partitions:
            parts.append(f"{self.partitions} day(s) ingested: {self.ingested} records, "
                         f"{self.quarantined} quarantined")
        if self.checks_passed or self.checks_failed:
            parts.append(f"checks: {self.checks_passed} passed, {self.checks_failed} failed")
        labels = {"dataset_release": "release", "fine_tuned_model": "model", "evaluation_report": "evaluation",
                  "rl_tuned_model": "RL model", "rl_evaluation_report": "RL evaluation"}
        parts += [f"{labels[key]} {self.latest[key]}" for key in labels if key in self.latest]
        return f"summary ({_duration(seconds)}): " + ("; ".join(parts) or "nothing materialized")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m {rest:04.1f}s" if minutes else f"{rest:.1f}s"


def step_line(label: str, status: str, seconds: float | None, figure: str) -> str:
    elapsed = f"{seconds:6.1f}s" if seconds is not None else " " * 7
    return f"  {label:<46} {status:<7} {elapsed}  {figure}".rstrip()


class StepLines:
    """One run's events, as they happen, to one terminal line per finished step.

    `status`, when given (an interactive terminal), shows the running step's latest log
    message on a line that the step's final line then replaces."""

    def __init__(self, echo: Echo, totals: RunTotals, status: Echo | None = None) -> None:
        self.echo, self.totals, self.status = echo, totals, status
        self.started: dict[str, float] = {}
        self.assets: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
        self.checks: dict[str, list[tuple[str, bool]]] = defaultdict(list)

    def __call__(self, entry: Any) -> None:
        event = entry.dagster_event
        if event is None:  # a log message of the step
            if self.status and entry.step_key and entry.user_message:
                self.status(f"  {entry.step_key}: {entry.user_message.splitlines()[0][:100]}")
            return
        step, kind = event.step_key, event.event_type_value
        if kind == "STEP_START":
            self.started[step] = entry.timestamp
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.step_materialization_data.materialization
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            self.assets[step].append((materialization.asset_key.to_user_string(), metadata))
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            self.checks[step].append((name, evaluation.passed))
        elif kind in _FINISHED:
            error = event.event_specific_data.error if kind == "STEP_FAILURE" and event.event_specific_data else None
            self._finish(step, _FINISHED[kind], entry.timestamp, root_cause(error) if error else "")

    def _finish(self, step: str, status: str, at: float, error: str) -> None:
        assets, checks = self.assets.pop(step, []), self.checks.pop(step, [])
        started = self.started.pop(step, None)
        if status != "retry":
            self.totals.add(assets, checks)
        label = assets[0][0] if len(assets) == 1 else checks[0][0] if not assets and len(checks) == 1 else step
        figure = "; ".join(filter(None, [key_figure(assets, checks), error]))
        line = step_line(label, status, at - started if started is not None else None, figure)
        if self.status:
            self.status("")
        self.echo(line)


def root_cause(error: Any) -> str:
    """The innermost error's first line: Dagster wraps user errors in its own."""
    while error.cause is not None:
        error = error.cause
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "RuntimeError:" with the text below it
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else error.cls_name or "unknown error"


_FINISHED = {
    "STEP_SUCCESS": "ok",
    "STEP_FAILURE": "FAILED",
    "STEP_SKIPPED": "skipped",
    "STEP_UP_FOR_RETRY": "retry",
}
