"""Evaluation results for several models as plain data, and a self-contained HTML report.

`model_result(name, scores, sandbox, cases)` merges one model's next-action metrics
(`metrics.summarize`) and sandbox results (`sandbox.evaluate_sandbox`) into
  {"name", "overall": {metric: scalar}, "by_task_type": {task_type: {metric: scalar}},
   "intervals": {"overall": {metric: Rate}, "by_task_type": {task_type: {metric: Rate}}},
   "outcomes": {metric: {unit: bool}}, "units": {unit: task_type},
   "sandbox": {"k", "pass_hat", "terminations"} | None, "confusion": {"labels", "counts"},
   "examples": [...next-action cases, mismatches first...], "transcripts": [...sandbox trials...]}
(the shape `promotion.decide_promotion` reads). A unit is a case (next-action metrics), a
task (pass^k) or a trial (pass@1); every right/wrong rate has its k, n and 95 % Wilson
interval, and the per-unit outcomes let two models be compared pair by pair. `combine` puts several models together
(with the promotion decision); `write_report(results, out_dir)` writes `report.html`
(matplotlib PNGs inlined as base64, no external files) and `results.json`, and returns the
HTML path. Charts use matplotlib's object API (no pyplot: no global backend state).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.evaluation.metrics import CaseScore, case_outcomes, confusion, summarize
from pipeline.evaluation.sandbox import trial_outcomes
from pipeline.evaluation.statistics import wilson

HEADLINE = (
    "action_accuracy", "tool_name_accuracy", "args_schema_accuracy", "args_exact_accuracy",
    "answer_f1", "invalid_call_rate", "pass_at_1", "pass_hat_k",
)
SEGMENT_CHART_METRICS = ("action_accuracy", "args_schema_accuracy", "pass_at_1", "pass_hat_k")
SANDBOX_SCALARS = ("n_tasks", "n_trials", "pass_at_1", "pass_hat_k", "avg_turns")
PROMPT_TAIL = 4


# -- plain data ---------------------------------------------------------------------------


def model_result(
    name: str,
    scores: Sequence[CaseScore] | None = None,
    sandbox: Mapping[str, Any] | None = None,
    cases: Sequence[Mapping[str, Any]] | None = None,
    n_examples: int = 6,
    n_transcripts: int = 4,
) -> dict[str, Any]:
    """One model's results; `cases` (the eval cases scored) add prompt tails to examples."""
    overall: dict[str, Any] = {}
    by_type: dict[str, dict[str, Any]] = {}
    if scores is not None:
        summary = summarize(scores)
        overall |= summary["overall"]
        for task_type, metrics in summary["by_task_type"].items():
            by_type.setdefault(task_type, {}).update(metrics)
    if sandbox is not None:
        overall |= {k: sandbox["overall"].get(k) for k in SANDBOX_SCALARS} | {"k": sandbox["k"]}
        for task_type, metrics in sandbox["by_task_type"].items():
            by_type.setdefault(task_type, {}).update({k: metrics.get(k) for k in SANDBOX_SCALARS})
    outcomes: dict[str, dict[str, bool]] = case_outcomes(scores or [])
    units = {s.case_id: s.task_type for s in scores or []}
    if sandbox is not None:
        sandbox_outcomes, sandbox_units = trial_outcomes(sandbox)
        outcomes |= sandbox_outcomes
        units |= sandbox_units
    outcomes = {metric: values for metric, values in outcomes.items() if values}
    return {
        "name": name,
        "overall": overall,
        "by_task_type": dict(sorted(by_type.items())),
        "intervals": intervals(outcomes, units),
        "outcomes": outcomes,
        "units": units,
        "sandbox": None if sandbox is None else {
            "k": sandbox["k"], "pass_hat": sandbox["overall"].get("pass_hat", {}),
            "terminations": sandbox["overall"].get("terminations", {}),
        },
        "confusion": confusion(scores or []),
        "examples": _examples(scores or [], cases, n_examples),
        "transcripts": _transcripts(sandbox["trials"] if sandbox else [], n_transcripts),
    }


def intervals(outcomes: Mapping[str, Mapping[str, bool]], units: Mapping[str, str],
              confidence: float = 0.95) -> dict[str, Any]:
    """The Wilson interval of every right/wrong metric, overall and per task type."""
    by_type: dict[str, dict[str, Any]] = {}
    for metric, values in outcomes.items():
        groups: dict[str, list[bool]] = {}
        for unit, value in values.items():
            groups.setdefault(units.get(unit, "?"), []).append(value)
        for task_type, group in groups.items():
            by_type.setdefault(task_type, {})[metric] = wilson(sum(group), len(group), confidence).to_dict()
    return {
        "overall": {metric: wilson(sum(v.values()), len(v), confidence).to_dict() for metric, v in outcomes.items()},
        "by_task_type": dict(sorted(by_type.items())),
    }


def _examples(scores: Sequence[CaseScore], cases: Sequence[Mapping[str, Any]] | None, n: int) -> list[dict[str, Any]]:
    prompts = {str(c.get("case_id")): c.get("prompt") or [] for c in cases or []}
    # mismatches first, spread over task types, then matches
    ordered = sorted(enumerate(scores), key=lambda p: (p[1].action_match, p[0]))
    picked, seen_types = [], set()
    for _, s in ordered:
        if len(picked) >= n:
            break
        if s.task_type in seen_types and len(seen_types) < len({x.task_type for x in scores}):
            continue
        seen_types.add(s.task_type)
        picked.append(s)
    return [
        {
            "case_id": s.case_id, "task_type": s.task_type, "expected_kind": s.expected_kind,
            "expected": s.expected, "predicted": s.predicted, "match": s.action_match,
            "mismatches": list(s.mismatches), "problems": list(s.problems),
            "prompt_tail": list(prompts.get(s.case_id, []))[-PROMPT_TAIL:],
        }
        for s in picked
    ]


def _transcripts(trials: Sequence[Mapping[str, Any]], n: int) -> list[dict[str, Any]]:
    ordered = sorted(trials, key=lambda t: (t["success"], t["task_type"], t["seed"]))
    picked, seen = [], set()
    for t in ordered:  # one per (outcome, task type) first
        key = (t["success"], t["task_type"])
        if key not in seen and len(picked) < n:
            seen.add(key)
            picked.append(t)
    return [dict(t) for t in picked]


def combine(
    models: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
    promotion: Any = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Several model results (in display order, e.g. base, champion, challenger) into one dict."""
    by_name = dict(models) if isinstance(models, Mapping) else {m["name"]: m for m in models}
    decision = promotion.to_dict() if hasattr(promotion, "to_dict") else promotion
    task_types = sorted({t for m in by_name.values() for t in m.get("by_task_type", {})})
    return {
        "model_order": list(by_name),
        "models": {name: dict(m, name=name) for name, m in by_name.items()},
        "headline": {name: {k: m.get("overall", {}).get(k) for k in HEADLINE} for name, m in by_name.items()},
        "task_types": task_types,
        "promotion": decision,
        "meta": dict(meta or {}),
    }


# -- charts -------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _grouped_bars(ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[float | None]], title: str,
                  bounds: Mapping[str, Sequence[tuple[float, float] | None]] | None = None) -> None:
    """Bars per group and series; `bounds` (low, high) per bar draw its 95 % interval."""
    n = max(len(series), 1)
    width = 0.8 / n
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        heights = [v if v is not None else 0.0 for v in values]
        errors = None
        if bounds is not None and any(b is not None for b in bounds[label]):
            pairs = [b if b is not None and v is not None else (h, h)
                     for b, v, h in zip(bounds[label], values, heights)]
            errors = [[max(h - lo, 0.0) for (lo, _), h in zip(pairs, heights)],
                      [max(hi - h, 0.0) for (_, hi), h in zip(pairs, heights)]]
        bars = ax.bar(xs, heights, width, label=label, yerr=errors, capsize=2 if errors else 0,
                      error_kw={"elinewidth": 0.8})
        for bar, v in zip(bars, values):
            ax.annotate("n/a" if v is None else f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, rotation=90 if len(groups) * n > 16 else 0)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def headline_chart(results: Mapping[str, Any]) -> str | None:
    from matplotlib.figure import Figure

    metrics = [k for k in HEADLINE if any(results["headline"][m].get(k) is not None for m in results["model_order"])]
    if not metrics:
        return None
    fig = Figure(figsize=(max(6, 1.3 * len(metrics)), 4))
    ax = fig.subplots()
    order = results["model_order"]
    _grouped_bars(ax, metrics, {m: [results["headline"][m].get(k) for k in metrics] for m in order},
                  "Headline metrics by model (bars: 95 % Wilson interval)",
                  {m: [_bounds(results["models"][m], k) for k in metrics] for m in order})
    return _png(fig)


def _interval(model: Mapping[str, Any], metric: str, task_type: str | None = None) -> Mapping[str, Any] | None:
    table = model.get("intervals") or {}
    scope = table.get("overall", {}) if task_type is None else table.get("by_task_type", {}).get(task_type, {})
    return scope.get(metric)


def _bounds(model: Mapping[str, Any], metric: str, task_type: str | None = None) -> tuple[float, float] | None:
    rate = _interval(model, metric, task_type)
    return (rate["low"], rate["high"]) if rate and rate.get("low") is not None else None


def segment_chart(results: Mapping[str, Any]) -> str | None:
    from matplotlib.figure import Figure

    order, types = results["model_order"], results["task_types"]
    metrics = [k for k in SEGMENT_CHART_METRICS
               if any(results["models"][m]["by_task_type"].get(t, {}).get(k) is not None for m in order for t in types)]
    if not metrics or not types:
        return None
    fig = Figure(figsize=(max(7, 1.1 * len(types) * max(1, len(order)) / 2 + 3), 3.6 * len(metrics)))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        series = {m: [results["models"][m]["by_task_type"].get(t, {}).get(metric) for t in types] for m in order}
        bounds = {m: [_bounds(results["models"][m], metric, t) for t in types] for m in order}
        _grouped_bars(ax, types, series, f"{metric} by task type (bars: 95 % Wilson interval)", bounds)
    fig.tight_layout()
    return _png(fig)


def confusion_chart(results: Mapping[str, Any]) -> str | None:
    from matplotlib.figure import Figure

    order = [m for m in results["model_order"] if results["models"][m]["confusion"]["labels"]]
    if not order:
        return None
    labels = sorted({lab for m in order for lab in results["models"][m]["confusion"]["labels"]},
                    key=lambda x: (x.startswith("<"), x))
    rows = [lab for lab in labels  # expected labels: rows with at least one case
            if any(sum(_row(results["models"][m]["confusion"], lab)) for m in order)]
    size = 0.45 * len(labels) + 2.5
    fig = Figure(figsize=(size * len(order), 0.45 * len(rows) + 2.5))
    axes = fig.subplots(1, len(order), squeeze=False)[0]
    for ax, name in zip(axes, order):
        conf = results["models"][name]["confusion"]
        idx = {lab: i for i, lab in enumerate(conf["labels"])}
        counts = [[conf["counts"][idx[e]][idx[p]] if e in idx and p in idx else 0 for p in labels] for e in rows]
        shares = [[c / max(1, sum(row)) for c in row] for row in counts]
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for i, row in enumerate(counts):
            for j, c in enumerate(row):
                if c:
                    ax.text(j, i, str(c), ha="center", va="center", fontsize=7,
                            color="white" if shares[i][j] > 0.6 else "black")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("expected", fontsize=8)
        ax.set_title(f"{name}: tool choice", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _row(conf: Mapping[str, Any], label: str) -> list[int]:
    labels = conf["labels"]
    return conf["counts"][labels.index(label)] if label in labels else []


# -- HTML ---------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.ok{color:#1a7f37}.bad{color:#c62828}
pre{background:#f7f7f7;padding:6px;white-space:pre-wrap;word-break:break-word;font-size:12px;margin:2px 0}
.msg{border-left:3px solid #ccc;padding-left:8px;margin:4px 0}.assistant{border-color:#3b82f6}.tool{border-color:#999}
.user{border-color:#16a34a}.system{border-color:#eab308}details{margin:6px 0}img{max-width:100%}
"""


def _e(value: Any) -> str:
    return html.escape(value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False))


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return _e(value)


def _img(data: str | None, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">' if data else f"<p>(no data for {_e(alt)})</p>"


def _messages_html(messages: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for m in messages:
        role = str(m.get("role"))
        body = m.get("content")
        calls = m.get("tool_calls") or []
        text = "" if body is None else str(body)
        for c in calls:
            f = c.get("function", c)
            text += f"\n→ {f.get('name')}({json.dumps(f.get('arguments'), default=str, ensure_ascii=False)})"
        if m.get("parse_error"):
            text += f"\n[parse error: {m['parse_error']}]"
        parts.append(f'<div class="msg {_e(role)}"><b>{_e(role)}</b><pre>{_e(text.strip())}</pre></div>')
    return "".join(parts)


def _cell(model: Mapping[str, Any], metric: str, value: Any, task_type: str | None = None) -> str:
    """A rate as "k/n = rate [low, high]" where it has an interval, else the value."""
    rate = _interval(model, metric, task_type)
    if rate and rate.get("rate") is not None:
        return (f"{rate['k']}/{rate['n']} = {rate['rate']:.2f}<br><small>[{rate['low']:.2f}, "
                f"{rate['high']:.2f}]</small>")
    return _fmt(value)


def _headline_table(results: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{_e(k)}</th>" for k in HEADLINE)
    rows = "".join(
        f'<tr><th class="l">{_e(m)}</th>'
        + "".join(f"<td>{_cell(results['models'][m], k, results['headline'][m].get(k))}</td>" for k in HEADLINE)
        + "</tr>"
        for m in results["model_order"]
    )
    return f'<table><tr><th class="l">model</th>{head}</tr>{rows}</table>'



def _segment_table(results: Mapping[str, Any]) -> str:
    order = results["model_order"]
    metrics = [k for k in ("n_cases", "action_accuracy", "args_schema_accuracy", "answer_f1", "invalid_call_rate",
                           "pass_at_1", "pass_hat_k")
               if any(results["models"][m]["by_task_type"].get(t, {}).get(k) is not None
                      for m in order for t in results["task_types"])]
    head = "".join(f"<th>{_e(k)}<br>{_e(m)}</th>" for k in metrics for m in order)
    rows = "".join(
        f'<tr><th class="l">{_e(t)}</th>' + "".join(
            f"<td>{_cell(results['models'][m], k, results['models'][m]['by_task_type'].get(t, {}).get(k), t)}</td>"
            for k in metrics for m in order
        ) + "</tr>"
        for t in results["task_types"]
    )
    return f'<table><tr><th class="l">task type</th>{head}</tr>{rows}</table>'


def _promotion_html(decision: Mapping[str, Any] | None) -> str:
    if not decision:
        return ""
    verdict = "PROMOTE" if decision.get("promote") else "DO NOT PROMOTE"
    cls = "ok" if decision.get("promote") else "bad"
    reasons = "".join(f"<li>{_e(r)}</li>" for r in decision.get("reasons", []))
    return (f'<h2>Promotion decision</h2><p class="{cls}"><b>{verdict}</b></p><ul>{reasons}</ul>'
            + _comparison_table(decision.get("deltas") or {}))


def _comparison_table(deltas: Mapping[str, Any]) -> str:
    """Challenger minus incumbent, paired on the same units, overall and per task type."""
    rows = []
    scopes = [("overall", deltas.get("primary"))] + sorted((deltas.get("by_task_type") or {}).items())
    for scope, c in scopes:
        if not c or c.get("improvement") is None:
            continue
        p = c["paired"]
        rows.append(
            f'<tr><th class="l">{_e(scope)}</th><td class="l">{_e(c["metric"])}</td><td>{p["n"]}</td>'
            f'<td>{p["only_challenger"]} / {p["only_incumbent"]}</td><td>{c["improvement"]:+.3f}</td>'
            f'<td>[{c["low"]:+.3f}, {c["high"]:+.3f}]</td><td>{p["p_value"]:.2g}</td></tr>')
    if not rows:
        return ""
    return ("<table><tr><th class='l'>scope</th><th class='l'>metric</th><th>n (paired)</th>"
            "<th>better / worse</th><th>improvement</th><th>95 % paired interval</th><th>McNemar p</th></tr>"
            + "".join(rows) + "</table>")



def _examples_html(name: str, model: Mapping[str, Any]) -> str:
    items = []
    for ex in model.get("examples", []):
        mark = '<span class="ok">match</span>' if ex["match"] else '<span class="bad">mismatch</span>'
        why = "".join(f"<li>{_e(x)}</li>" for x in ex.get("mismatches", []) + ex.get("problems", []))
        items.append(
            f"<details><summary>{_e(ex['task_type'])} · {_e(ex['expected_kind'])} · {mark} · "
            f"<code>{_e(ex['case_id'])}</code></summary>"
            f"{_messages_html(ex.get('prompt_tail', []))}"
            f"<p><b>expected</b></p><pre>{_e(ex['expected'])}</pre>"
            f"<p><b>predicted ({_e(name)})</b></p><pre>{_e(ex['predicted'])}</pre><ul>{why}</ul></details>"
        )
    for t in model.get("transcripts", []):
        mark = '<span class="ok">success</span>' if t["success"] else '<span class="bad">failure</span>'
        failed = "".join(f"<li>failed check: {_e(c)}</li>" for c in t.get("failed_checks", []))
        items.append(
            f"<details><summary>sandbox · {_e(t['task_type'])} · seed {_e(t['seed'])} · {mark} · "
            f"{_e(t['termination'])} after {_e(t['turns'])} turns</summary>"
            f"{_messages_html(t.get('messages', []))}<ul>{failed}</ul></details>"
        )
    return f"<h3>{_e(name)}</h3>" + ("".join(items) or "<p>(no examples)</p>")


def render_html(results: Mapping[str, Any]) -> str:
    order = results["model_order"]
    meta = "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in results.get("meta", {}).items())
    sandbox = "".join(
        f"<li>{_e(m)}: k={_e(results['models'][m]['sandbox']['k'])}, pass^j = "
        + ", ".join(f"{j}: {_fmt(v)}" for j, v in results['models'][m]['sandbox']['pass_hat'].items())
        + f"; terminations {_e(results['models'][m]['sandbox']['terminations'])}</li>"
        for m in order if results["models"][m].get("sandbox")
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Flywheel evaluation report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Evaluation report: {_e(', '.join(order))}</h1><ul>{meta}</ul>"
        f"{_promotion_html(results.get('promotion'))}"
        f"<h2>Headline metrics</h2>{_headline_table(results)}{_img(headline_chart(results), 'headline metrics')}"
        + (f"<h3>Sandbox</h3><ul>{sandbox}</ul>" if sandbox else "")
        + f"<h2>By task type</h2>{_segment_table(results)}{_img(segment_chart(results), 'metrics by task type')}"
        f"<h2>Tool choice: expected vs predicted</h2>{_img(confusion_chart(results), 'tool choice confusion')}"
        "<h2>Examples</h2>" + "".join(_examples_html(m, results["models"][m]) for m in order)
        + "</body></html>"
    )


def write_report(results: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write report.html (self-contained) and results.json under `out_dir`; the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str, ensure_ascii=False))
    path = out / "report.html"
    path.write_text(render_html(results), encoding="utf-8")
    return path
