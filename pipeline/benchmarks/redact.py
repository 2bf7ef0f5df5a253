"""Benchmark: our redaction vs Presidio (PII) and detect-secrets (secrets), on two corpora.

Corpora:
- simulated: `pipeline.simulator.simulate`, its landing files parsed and ingested exactly as
  the pipeline does, and every message text extracted (user/assistant contents, tool-call
  arguments (JSON), tool results), with the simulator's planted-PII ground truth. The unit of
  text is one conversation: ours redacts a trajectory's messages together (one replacement map;
  a value found once is swept everywhere), Presidio analyses them joined as one text.
- external: `external_corpus` (presidio-evaluator's generator, 8 locales, prose, structured
  formats and secrets); each sample is one message, the unit for every arm.

Arms, each scored only on the types it is meant to find (`COMPARED`); the others are "not
compared": Presidio on the PII types its pattern recognizers cover (PERSON and STREET_ADDRESS
need its NER model, which cannot be installed here), detect-secrets on secrets, ours on all.
They run in the same process, interleaved in chunks of conversations (so background load hits
all alike), with the garbage collector paused while timing, after an untimed warm-up (engine
construction excluded; Presidio's is reported separately).
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.benchmarks import presidio_baseline, secret_scanner_baseline
from pipeline.benchmarks.redact_scoring import PLANTED_SECRET_TYPES, EvalMessage, Evaluation, RedactorOutput, evaluate
from pipeline.core.redaction.detectors import ENTITY_TYPES, STRUCTURED_TYPES
from pipeline.core.redaction.redact import TrajectoryRedactor

TARGET_RECALL = 0.99
TARGET_SPEEDUP = 20.0
ARMS: tuple[str, ...] = ("ours", "presidio", "detect_secrets")
# The types each arm is scored on; every other planted type is "not compared" for it.
COMPARED: dict[str, frozenset[str]] = {
    "ours": frozenset(ENTITY_TYPES) | PLANTED_SECRET_TYPES,
    "presidio": presidio_baseline.COMPARED_TYPES,
    "detect_secrets": secret_scanner_baseline.COMPARED_TYPES,
}
ENTITY_MAPS: dict[str, dict[str, str]] = {"presidio": presidio_baseline.PRESIDIO_TO_OURS}
TYPE_ORDER: tuple[str, ...] = (*ENTITY_TYPES, "PRIVATE_KEY", "SECRET")


def load_corpus(out_dir: Path, raw_commit: str = "bench"
                ) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Ingest every landing day under out_dir; returns (raw tables, ground-truth PII rows)."""
    from pipeline.shell.ingest import SourceFile, ingest_files

    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    truth: list[dict[str, Any]] = []
    for day in sorted((out_dir / "landing").iterdir()):
        files = [
            SourceFile(p.name, f"lakefs://bench/{raw_commit}/{day.name}/{p.name}", p.read_bytes())
            for p in sorted(day.iterdir()) if p.is_file()
        ]
        result = ingest_files(files, partition=day.name, raw_commit=raw_commit)
        for name, rows in result.tables.items():
            tables[name].extend(rows)
        pii = out_dir / "ground_truth" / day.name / "pii.jsonl"
        if pii.exists():
            truth.extend(json.loads(line) for line in pii.read_text().splitlines() if line.strip())
    return dict(tables), truth


def corpus_messages(tables: Mapping[str, Sequence[Mapping[str, Any]]],
                    truth: Sequence[Mapping[str, Any]]) -> list[EvalMessage]:
    """Every message text of the raw tables with the values planted in it, grouped by record."""
    planted: dict[tuple[str, int, str], list[tuple[str, str]]] = defaultdict(list)
    for t in truth:
        planted[(t["trajectory_id"], int(t["step"]), t["field"])].append((t["entity_type"], t["value"]))
    items: list[tuple[str, int, int, EvalMessage]] = []
    for row in tables.get("steps", []):
        if row.get("role") not in ("user", "assistant", "tool") or not row.get("content"):
            continue
        kind = "tool_result" if row["role"] == "tool" else "content"
        key = (row["trajectory_id"], row["step_index"], kind)
        items.append((row["record_key"], row["step_index"], 0, EvalMessage(
            row["content"], tuple(planted.get(key, ())), row["record_key"], kind)))
    for row in tables.get("tool_calls", []):
        if not row.get("arguments"):
            continue
        key = (row["trajectory_id"], row["step_index"], "arguments")
        items.append((row["record_key"], row["step_index"], 1 + row["call_index"], EvalMessage(
            row["arguments"], tuple(planted.get(key, ())), row["record_key"], "arguments")))
    items.sort(key=lambda it: (it[0], it[1], it[2]))
    return [m for *_, m in items]


WARMUP_MESSAGES = 50  # every arm first runs on this many messages, untimed
INTERLEAVE_CHUNKS = 8  # the corpus is timed in chunks, each arm in turn on each


def _groups(messages: Sequence[EvalMessage]) -> list[list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(messages):
        groups[m.group].append(i)
    return list(groups.values())


def _ours_group(messages: Sequence[EvalMessage], indices: Sequence[int]) -> list[RedactorOutput]:
    r = TrajectoryRedactor()
    for i in indices:
        r.add(messages[i].text, json_column=True if messages[i].kind == "arguments" else None)
    return [RedactorOutput(red.text, red.spans) for red in r.finish() if red is not None]


def _presidio_group(messages: Sequence[EvalMessage], indices: Sequence[int]) -> list[RedactorOutput]:
    texts = [messages[i].text for i in indices]
    return [RedactorOutput(*out) for out in presidio_baseline.presidio_redact_conversation(texts)]


def _scanner_groups(messages: Sequence[EvalMessage], groups: Sequence[Sequence[int]]) -> list[RedactorOutput]:
    return secret_scanner_baseline.scan_texts([messages[i].text for g in groups for i in g])


def run_ours(messages: Sequence[EvalMessage]) -> tuple[list[RedactorOutput], float]:
    """Our redaction alone, one TrajectoryRedactor per group; returns outputs and seconds."""
    outputs: list[RedactorOutput | None] = [None] * len(messages)
    start = time.perf_counter()
    for indices in _groups(messages):
        for i, out in zip(indices, _ours_group(messages, indices)):
            outputs[i] = out
    seconds = time.perf_counter() - start
    return [o for o in outputs if o is not None], seconds


def run_arms(messages: Sequence[EvalMessage]) -> dict[str, Any]:
    """Every arm on the same messages, in INTERLEAVE_CHUNKS chunks of groups (each arm in turn
    on each chunk) so that background load on the machine hits all alike, with the garbage
    collector paused while timing (as timeit does). Engine construction and a warm-up are not
    timed. (Finer interleaving, per trajectory, would charge ours for the caches Presidio
    evicts: it measured ours about 2x slower than running on its own.)"""
    t0 = time.perf_counter()
    presidio_baseline.analyzer_engine(), presidio_baseline.anonymizer_engine()
    setup = time.perf_counter() - t0
    groups = _groups(messages)
    warm = groups[:max(1, WARMUP_MESSAGES // max(1, len(messages) // max(1, len(groups))))]
    for g in warm:
        _ours_group(messages, g)
        _presidio_group(messages, g)
    _scanner_groups(messages, warm)
    outputs: dict[str, list[RedactorOutput | None]] = {arm: [None] * len(messages) for arm in ARMS}
    seconds = dict.fromkeys(ARMS, 0.0)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for k in range(INTERLEAVE_CHUNKS):
            chunk = groups[k * len(groups) // INTERLEAVE_CHUNKS:(k + 1) * len(groups) // INTERLEAVE_CHUNKS]
            for arm in ARMS:
                start = time.perf_counter()
                if arm == "detect_secrets":
                    results = zip((i for g in chunk for i in g), _scanner_groups(messages, chunk))
                else:
                    run = _ours_group if arm == "ours" else _presidio_group
                    results = ((i, out) for g in chunk for i, out in zip(g, run(messages, g)))
                for i, out in results:
                    outputs[arm][i] = out
                seconds[arm] += time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()
    return {
        "outputs": {arm: [o for o in outs if o is not None] for arm, outs in outputs.items()},
        "seconds": seconds,
        "presidio_setup_seconds": setup,
    }


def _compared(ev: Evaluation, arm: str) -> list[str]:
    return sorted(t for t in COMPARED[arm] if t in ev.by_type and ev.by_type[t].planted)


def _side(ev: Evaluation, arm: str, seconds: float, n: int) -> dict[str, Any]:
    compared = _compared(ev, arm)
    return {"seconds": seconds, "messages_per_s": n / seconds if seconds else None, "compared_types": compared,
            "recall_compared": ev.recall(compared), **ev.to_dict()}


def recall_at_least(ours: Evaluation, baseline: Evaluation, types: frozenset[str]) -> dict[str, bool]:
    """Per planted type that the baseline is compared on: is our recall at least its recall?"""
    return {
        t: (ours.by_type[t].recall or 0) >= (baseline.by_type[t].recall or 0)
        for t in sorted(types) if t in ours.by_type and ours.by_type[t].planted
    }


def score_corpus(messages: Sequence[EvalMessage], *, keep_examples: int = 3) -> dict[str, Any]:
    """Run and score every arm on one corpus."""
    timed = run_arms(messages)
    n = len(messages)
    evaluations = {arm: evaluate(messages, timed["outputs"][arm], ENTITY_MAPS.get(arm), keep_examples=keep_examples)
                   for arm in ARMS}
    arms = {arm: _side(ev, arm, timed["seconds"][arm], n) for arm, ev in evaluations.items()}
    arms["presidio"]["setup_seconds"] = timed["presidio_setup_seconds"]
    arms["ours"]["missed_examples"] = evaluations["ours"].missed_examples
    ours_ev = evaluations["ours"]
    ratio = (arms["ours"]["messages_per_s"] / arms["presidio"]["messages_per_s"]
             if arms["presidio"]["messages_per_s"] else None)
    structured = [t for t in STRUCTURED_TYPES if ours_ev.by_type.get(t) and ours_ev.by_type[t].planted]
    versus = {arm: recall_at_least(ours_ev, evaluations[arm], COMPARED[arm]) for arm in ("presidio", "detect_secrets")}
    # Ours pooled over each baseline's types, beside the baseline's recall on them and precision
    # (a baseline detects nothing else: Presidio is asked for these entities only).
    ours_on = {arm: {"recall": ours_ev.recall(_compared(ours_ev, arm)),
                     "precision": ours_ev.precision(_compared(ours_ev, arm))} for arm in versus}
    return {
        "corpus": {
            "records": len({m.group for m in messages}), "messages": n,
            "chars": sum(len(m.text) for m in messages), "planted_values": sum(len(m.planted) for m in messages),
            "by_kind": dict(sorted(Counter(m.kind for m in messages).items())),
        },
        "arms": arms,
        "speed_ratio": ratio,
        "ours_recall_ge": versus,
        "ours_on_baseline_types": ours_on,
        "targets": {
            "structured_recall_ge_99": all((ours_ev.by_type[t].recall or 0) >= TARGET_RECALL for t in structured),
            "no_secret_survives": ours_ev.secrets_surviving == 0,
            "speed_ge_20x": ratio is not None and ratio >= TARGET_SPEEDUP,
            "recall_ge_presidio_every_compared_type": all(versus["presidio"].values()),
            "recall_ge_detect_secrets_every_compared_type": all(versus["detect_secrets"].values()),
        },
    }


def run_redaction_benchmark(days: int = 2, per_day: int = 150, seed: int = 7, *, external_per_locale: int = 100,
                            external_secrets: int = 300, out_dir: Path | None = None,
                            keep_examples: int = 3) -> dict[str, Any]:
    """Both corpora, every arm on each."""
    from pipeline.benchmarks.external_corpus import LOCALES, external_corpus
    from pipeline.simulator import simulate

    with tempfile.TemporaryDirectory(prefix="flywheel-redaction-bench-") as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp)
        simulate(days=days, per_day=per_day, out_dir=root, seed=seed)
        tables, truth = load_corpus(root)
    simulated = score_corpus(corpus_messages(tables, truth), keep_examples=keep_examples)
    simulated["corpus"].update({"days": days, "per_day": per_day, "seed": seed})
    external = score_corpus(external_corpus(per_locale=external_per_locale, secrets=external_secrets, seed=seed),
                            keep_examples=keep_examples)
    external["corpus"].update({"per_locale": external_per_locale, "secrets": external_secrets, "seed": seed,
                               "locales": list(LOCALES)})
    return {"simulated": simulated, "external": external}


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


ARM_LABELS = {"ours": "ours", "presidio": "presidio", "detect_secrets": "detect-secrets"}


def format_corpus(title: str, result: Mapping[str, Any]) -> list[str]:
    c, arms = result["corpus"], result["arms"]
    lines = [
        f"{title}: {c['records']} records, {c['messages']} messages ({c['chars']:,} chars), "
        f"{c['planted_values']} planted values",
        f"{'arm':15} {'seconds':>9} {'messages/s':>11} {'recall*':>8} {'secrets left':>13}",
    ]
    for arm in ARMS:
        side = arms[arm]
        lines.append(f"{ARM_LABELS[arm]:15} {side['seconds']:9.3f} {side['messages_per_s']:11,.0f} "
                     f"{_pct(side['recall_compared']):>8} "
                     f"{side['secrets_surviving']:>6} / {side['secrets_planted']:<5}")
    ratio = result.get("speed_ratio")
    lines.append("* recall over the types the arm is compared on; "
                 + (f"speed ratio ours/presidio: {ratio:.1f}x" if ratio else "speed ratio: -"))
    for arm, ours in result["ours_on_baseline_types"].items():
        side = arms[arm]
        if side["compared_types"]:
            lines.append(f"on {ARM_LABELS[arm]}'s types ({', '.join(side['compared_types'])}): "
                         f"recall ours {_pct(ours['recall']).strip()} vs {_pct(side['recall_compared']).strip()}, "
                         f"precision ours {_pct(ours['precision']).strip()} vs "
                         f"{_pct(side['precision']).strip()}")
    lines.append("")
    header = f"{'entity type':15} {'planted':>7}"
    for arm in ARMS:
        header += f" | {ARM_LABELS[arm][:14]:>14} rec   prec"
    lines.append(header)
    types = set().union(*(arms[arm]["by_type"] for arm in ARMS))
    order = {t: i for i, t in enumerate(TYPE_ORDER)}
    empty = {"planted": 0, "recall": None, "precision": None, "flagged": 0}
    for t in sorted(types, key=lambda t: (order.get(t, len(order)), t)):
        planted = max(arms[arm]["by_type"].get(t, empty)["planted"] for arm in ARMS)
        row = f"{t:15} {planted:7}"
        for arm in ARMS:
            s = arms[arm]["by_type"].get(t, empty)
            recall = "  n/c " if planted and t not in COMPARED[arm] else _pct(s["recall"])
            row += f" | {'':8}{recall:>6} {_pct(s['precision']):>6}"
        lines.append(row)
    flagged = []
    for arm in ARMS:
        parts = [f"{t} {s['flagged']}/{s['planted']}" for t, s in arms[arm]["by_type"].items()
                 if t in PLANTED_SECRET_TYPES and t in COMPARED[arm] and s["planted"]]
        if parts:
            flagged.append(f"{ARM_LABELS[arm]}: " + ", ".join(parts))
    if flagged:
        lines.append("secrets flagged (some span overlaps the value): " + "; ".join(flagged))
    lines.append("ours recall >= baseline, per compared type: " + "; ".join(
        f"{ARM_LABELS[arm]}: " + ", ".join(f"{t} {'yes' if ok else 'NO'}" for t, ok in per_type.items())
        for arm, per_type in result["ours_recall_ge"].items()))
    lines.append("targets: " + ", ".join(f"{k}={'OK' if v else 'MISSED'}" for k, v in result["targets"].items()))
    missed = arms["ours"].get("missed_examples") or {}
    if missed:
        lines.append("ours, missed (examples):")
        for t, examples in missed.items():
            for e in examples:
                lines.append(f"  {t}: {e}")
    return lines


def format_benchmark(result: Mapping[str, Any]) -> str:
    sim, ext = result["simulated"], result["external"]
    sc, ec = sim["corpus"], ext["corpus"]
    lines = format_corpus(
        f"External corpus (presidio-evaluator generator, {len(ec['locales'])} locales, seed {ec['seed']})", ext)
    lines += [""]
    lines += format_corpus(f"Simulated corpus (seed {sc['seed']}, {sc['days']}d x {sc['per_day']})", sim)
    lines += ["", "n/c: not compared (Presidio: PERSON/STREET_ADDRESS need its NER model, secrets are not its job; "
              "detect-secrets: PII). precision is per detected type."]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m pipeline.benchmarks.redact
    print(format_benchmark(run_redaction_benchmark()))
