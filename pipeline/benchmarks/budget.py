"""How much training buys how much agent, on this machine: the measurement behind the
training defaults (`flywheel bench budget`).

Each arm trains the base model on a release's `sft_examples` (read from a warehouse) with
one configuration, keeps the model at chosen optimizer steps, and evaluates every kept model
the way `evaluation_report` does: next-action cases (a deterministic subset) and sandbox
tasks with k seeded trials, compared case by case with the base model on the same cases
(paired 95 % interval, McNemar p). With a constant learning rate the model after k steps is
the model a run of k steps would give, so one run yields a budget curve; with a decaying
schedule each budget is its own run.

Arms are given as `name:key=value,...` over TrainConfig fields plus `save` (steps to keep,
`/`-separated), `dpo_steps` (DPO on preference_pairs after SFT, same release), and
`warehouse` (another release, e.g. one redacted with placeholders).

After the arms, every kept model is also compared case by case with the best one on the same
release (highest next-action accuracy), so "within noise of the best" is a printed interval,
not a reading of two overlapping ones. `reuse=True` (`--reuse`) skips training for arms whose
models are already under `out_dir`, taking their training seconds from its budget.json, and
scores them again from the cached generations: the table again, at no training cost.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"<[A-Z_]+(?:_\d+)?>")  # <EMAIL_1>, and the <EMAIL> models write


def parse_arm(text: str) -> dict[str, Any]:
    """`full8:method=full,learning_rate=1e-4,lr_scheduler=constant,max_steps=8,save=4/8`."""
    from pipeline.learning.train import TrainConfig

    name, _, spec = text.partition(":")
    types = {f.name: f.type for f in fields(TrainConfig)}
    arm: dict[str, Any] = {"name": name, "config": {}, "save": [], "dpo_steps": 0, "warehouse": None}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key == "save":
            arm["save"] = sorted(int(v) for v in value.split("/"))
        elif key == "dpo_steps":
            arm["dpo_steps"] = int(value)
        elif key == "warehouse":
            arm["warehouse"] = value
        elif key in types:
            kind = types[key] if isinstance(types[key], type) else str(types[key])
            arm["config"][key] = (int(value) if "int" in str(kind) else float(value) if "float" in str(kind)
                                  else value.lower() == "true" if "bool" in str(kind) else value)
        else:
            raise ValueError(f"arm {name}: unknown setting {key!r}")
    steps = arm["config"].get("max_steps", -1)
    arm["save"] = sorted(set(arm["save"]) | ({steps} if steps > 0 else set()))
    return arm


def _cases_and_tasks(warehouse: Path, n_cases: int, n_tasks: int) -> tuple[list, dict]:
    """The cases and sandbox tasks evaluation_report would pick from this release."""
    from pipeline.evaluation.cases import case_subset, spread_tasks, task_specs
    from pipeline.shell.marts import load_eval_cases

    cases = case_subset(load_eval_cases(warehouse), n_cases)
    return cases, spread_tasks(task_specs(cases), n_tasks)


def _evaluate(name: str, model_dir: Path, cases: list, tasks: dict, k: int, cache: Path,
              max_turns: int) -> dict[str, Any]:
    from pipeline.evaluation.run import evaluate_model
    from pipeline.learning.engine_policy import EnginePolicy
    from pipeline.learning.generate import CachedEngine, generation_engine

    engine = CachedEngine(lambda: generation_engine(model_dir), cache / f"{name}.jsonl")
    sandbox = _PlaceholderCalls(EnginePolicy(engine))
    started = time.perf_counter()
    result = evaluate_model(name, EnginePolicy(engine), cases, k=k, tasks=tasks, max_turns=max_turns,
                            sandbox_policy=sandbox)
    result["eval_seconds"] = time.perf_counter() - started
    result["sandbox_placeholder_calls"] = sandbox.count
    return result


class _PlaceholderCalls:
    """A policy that counts the tool calls whose arguments hold a redaction placeholder."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.count = policy, 0

    def act(self, messages, tools, seed):
        return self.act_many([(messages, tools)], seed)[0]

    def act_many(self, conversations, seed):
        replies = self.policy.act_many(conversations, seed)
        for reply in replies:
            for call in reply.get("tool_calls") or []:
                self.count += bool(PLACEHOLDER.search(json.dumps(call["function"]["arguments"], default=str)))
        return replies


def run_budget(warehouse: Path, base_model: str, cache_dir: Path, out_dir: Path, arms: list[dict[str, Any]],
               n_cases: int = 60, n_tasks: int = 6, k: int = 2, max_turns: int = 6, reuse: bool = False,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    from pipeline.evaluation.promotion import compare
    from pipeline.learning.base_model import resolve_base_model
    from pipeline.learning.train import TrainConfig, fit_sft, save_merged, train_dpo
    from pipeline.shell.marts import load_sft_examples

    base_dir = Path(resolve_base_model(base_model, cache_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    evals = out_dir / "generations"
    earlier = json.loads((out_dir / "budget.json").read_text()) if (out_dir / "budget.json").exists() else {}
    earlier_seconds = {row["model"]: row["train_seconds"] for row in earlier.get("rows", [])}
    report: dict[str, Any] = {"warehouse": str(warehouse), "cases": n_cases, "tasks": n_tasks, "k": k, "rows": []}
    bases: dict[str, dict[str, Any]] = {}
    trained: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # warehouse -> (model, evaluation)

    def base_for(house: Path) -> tuple[list, dict, dict[str, Any]]:
        cases, tasks = _cases_and_tasks(house, n_cases, n_tasks)
        key = str(house)
        if key not in bases:
            log(f"base model on {len(cases)} cases, {len(tasks)} tasks x {k} ({house.name})")
            bases[key] = _evaluate(f"base-{house.stem}", base_dir, cases, tasks, k, evals, max_turns)
            report["rows"].append(_row("base", None, 0, None, bases[key], None, house))
        return cases, tasks, bases[key]

    for arm in arms:
        house = Path(arm["warehouse"] or warehouse)
        cases, tasks, base = base_for(house)
        examples = load_sft_examples(house)
        config = TrainConfig(**{"seed": 0, **arm["config"]})
        kept: dict[int, tuple[Path, float]] = {}
        started = time.perf_counter()
        paused = 0.0

        def keep(step: int, model: Any, arm=arm, tokenizer_dir=base_dir, kept=kept, started=started) -> None:
            nonlocal paused
            pause = time.perf_counter()
            from pipeline.learning.tokenizer import load_tokenizer

            target = out_dir / "models" / f"{arm['name']}-s{step}"
            save_merged(copy.deepcopy(model), load_tokenizer(tokenizer_dir), target, {"arm": arm, "step": step})
            kept[step] = (target, pause - started - paused)
            paused += time.perf_counter() - pause

        log(f"arm {arm['name']}: {config.method}, lr {config.learning_rate} {config.lr_scheduler}, "
            f"steps {config.max_steps}, keeping {arm['save']}, {len(examples)} examples")
        saved = {step: out_dir / "models" / f"{arm['name']}-s{step}" for step in arm["save"]}
        # reused only whole: every kept model, and its DPO model when the arm has one, already there
        finals = [d.with_name(d.name + "-dpo") if arm["dpo_steps"] else d for d in saved.values()]
        reused = reuse and all((d / "config.json").exists() for d in finals)
        if reused:
            log(f"  reusing {', '.join(d.name for d in finals)}")
            kept.update({step: (d, None) for step, d in saved.items()})
        else:
            _, _, result = fit_sft(examples, base_dir, config, checkpoint_steps=arm["save"], on_checkpoint=keep)
        for step, (model_dir, seconds) in sorted(kept.items()):
            name = f"{arm['name']}-s{step}"
            if arm["dpo_steps"] and reused:
                model_dir, name = model_dir.with_name(model_dir.name + "-dpo"), name + f"+dpo{arm['dpo_steps']}"
            elif arm["dpo_steps"]:
                import duckdb

                with duckdb.connect(str(house), read_only=True) as con:
                    pairs = con.execute("select * from marts.preference_pairs").df().to_dict("records")
                dpo_config = TrainConfig(**{**config.__dict__, "max_steps": arm["dpo_steps"], "method": "lora",
                                            "learning_rate": 5e-5, "lr_scheduler": "constant"})
                dpo_started = time.perf_counter()
                dpo_dir = model_dir.with_name(model_dir.name + "-dpo")
                train_dpo(pairs, model_dir, dpo_dir, dpo_config)
                seconds += time.perf_counter() - dpo_started
                model_dir, name = dpo_dir, name + f"+dpo{arm['dpo_steps']}"
            if reused:
                seconds = earlier_seconds.get(name)
            log(f"  {name}: evaluating")
            evaluated = _evaluate(name, model_dir, cases, tasks, k, evals, max_turns)
            comparison = compare(evaluated, base, "action_accuracy")
            report["rows"].append(_row(name, arm, step, seconds, evaluated, comparison, house))
            trained.setdefault(house.name, []).append((name, evaluated))
            log("  " + format_row(report["rows"][-1]))
        training = (earlier.get("training", {}).get(arm["name"]) if reused else {
            "examples": result.examples, "truncated": result.truncated_examples, "tokens": result.tokens,
            "train_seconds": result.train_seconds, "tokens_per_second": result.tokens_per_second})
        report.setdefault("training", {})[arm["name"]] = training
        (out_dir / "budget.json").write_text(json.dumps(report, indent=1, default=str))
    report["vs_best"] = []
    for house, models in trained.items():
        best, best_result = max(models, key=lambda m: m[1]["intervals"]["overall"]["action_accuracy"]["rate"] or 0)
        for name, evaluated in models:
            if name != best:
                comparison = compare(evaluated, best_result, "action_accuracy").to_dict()
                report["vs_best"].append({"warehouse": house, "model": name, "best": best, **comparison})
    (out_dir / "budget.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def _row(name: str, arm: dict | None, step: int, seconds: float | None, result: dict, comparison: Any,
         house: Path) -> dict[str, Any]:
    intervals = result["intervals"]["overall"]
    return {
        "model": name, "warehouse": house.name, "step": step, "train_seconds": seconds,
        "config": arm["config"] if arm else None, "eval_seconds": result["eval_seconds"],
        "action_accuracy": intervals.get("action_accuracy"), "tool_name_accuracy": intervals.get("tool_name_accuracy"),
        "pass_hat_k": intervals.get("pass_hat_k"), "pass_at_1": intervals.get("pass_at_1"),
        "invalid_call_rate": intervals.get("invalid_call_rate"),
        "vs_base": comparison.to_dict() if comparison is not None else None,
        "sandbox_placeholder_calls": result["sandbox_placeholder_calls"],
    }


def _rate(rate: dict | None) -> str:
    if not rate or rate.get("rate") is None:
        return "n/a"
    return f"{rate['k']}/{rate['n']} = {rate['rate']:.2f} [{rate['low']:.2f}, {rate['high']:.2f}]"


def format_row(row: dict[str, Any]) -> str:
    vs = row["vs_base"]
    diff = (f"{vs['improvement']:+.2f} [{vs['low']:+.2f}, {vs['high']:+.2f}] p={vs['paired']['p_value']:.1g}"
            if vs and vs.get("improvement") is not None else "-")
    seconds = f"{row['train_seconds']:.0f}s" if row["train_seconds"] is not None else "-"
    return (f"{row['model']:<28} {row['warehouse']:<28} {seconds:>6}  action {_rate(row['action_accuracy'])}  "
            f"vs base {diff}  tool {_rate(row['tool_name_accuracy'])}  pass^k {_rate(row['pass_hat_k'])}  "
            f"pass@1 {_rate(row['pass_at_1'])}  placeholder calls {row['sandbox_placeholder_calls']}")


def format_budget(report: dict[str, Any]) -> str:
    lines = [format_row(row) for row in report["rows"]]
    for vs in report.get("vs_best", []):
        if vs.get("improvement") is None:
            continue
        lines.append(f"{vs['model']:<28} {vs['warehouse']:<28} vs the best, {vs['best']}: {vs['improvement']:+.2f} "
                     f"[{vs['low']:+.2f}, {vs['high']:+.2f}] p={vs['paired']['p_value']:.2g}")
    return "\n".join(lines)
