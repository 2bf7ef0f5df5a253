"""`flywheel bench eval`: our generation path against transformers' plain generate.

The same model and the same eval cases (a deterministic subset of marts.eval_cases), greedy
decoding, in one process: first the batched engine (shared prefixes read once, up to 64
cases of one system turn decoded together), then transformers' `generate` one case at a time, the way one would
write it from its documentation. Prints cases/s of each and their ratio, and checks that
the two produce the same text for every case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_eval_bench(model_dir: Path, warehouse: Path, n_cases: int = 60, max_new_tokens: int = 64,
                   batch_size: int = 64, log: Callable[[str], None] = print) -> dict[str, Any]:
    from pipeline.evaluation.cases import case_subset
    from pipeline.learning.generate import BatchedEngine, TransformersEngine
    from pipeline.shell.marts import load_eval_cases

    cases = case_subset(load_eval_cases(warehouse), n_cases)
    conversations = [(c["prompt"], c["tools"]) for c in cases]
    arms: dict[str, Any] = {}
    outputs: dict[str, list[str]] = {}
    for name, make in (("batched", lambda: BatchedEngine(model_dir, max_new_tokens, batch_size)),
                       ("transformers generate", lambda: TransformersEngine(model_dir, max_new_tokens))):
        log(f"{name}: {len(cases)} cases")
        engine = make()
        started = time.perf_counter()
        outputs[name] = engine.generate_many(conversations)
        seconds = time.perf_counter() - started
        stats = engine.stats.to_dict()
        arms[name] = {"cases": len(cases), "seconds": seconds, "cases_per_second": len(cases) / seconds,
                      "new_tokens": stats["new_tokens"], "prompt_tokens": stats["prompt_tokens"],
                      "prompt_tokens_read_from_cache": stats["cached_prompt_tokens"],
                      **{k: stats[k] for k in ("prefill_seconds", "decode_seconds") if k in stats}}
    ours, plain = outputs["batched"], outputs["transformers generate"]
    different = [c["case_id"] for c, a, b in zip(cases, ours, plain) if a != b]
    return {"model": str(model_dir), "warehouse": str(warehouse), "max_new_tokens": max_new_tokens,
            "batch_size": batch_size, "arms": arms,
            "speedup": arms["transformers generate"]["seconds"] / arms["batched"]["seconds"],
            "identical": len(cases) - len(different), "different_cases": different}


def format_eval_bench(result: dict[str, Any]) -> str:
    lines = [f"model {result['model']}, greedy, up to {result['max_new_tokens']} new tokens per case",
             f"{'arm':<24}{'cases':>7}{'seconds':>10}{'cases/s':>10}{'new tokens':>12}{'prompt tokens':>15}"
             f"{'from cache':>12}"]
    for name, arm in result["arms"].items():
        lines.append(f"{name:<24}{arm['cases']:>7}{arm['seconds']:>10.1f}{arm['cases_per_second']:>10.3f}"
                     f"{arm['new_tokens']:>12}{arm['prompt_tokens']:>15}{arm['prompt_tokens_read_from_cache']:>12}")
    total = result["identical"] + len(result["different_cases"])
    lines.append(f"speedup {result['speedup']:.2f}x; identical predictions {result['identical']}/{total}"
                 + (f"; different: {', '.join(result['different_cases'])}" if result["different_cases"] else ""))
    return "\n".join(lines)
