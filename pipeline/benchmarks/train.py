"""Training-throughput benchmark: our SFT step against transformers' Trainer with padding.

Both arms train the same model (LoRA, same precision, same learning rate) for one epoch on
the same examples with the same assistant-only labels:

* `padding`: transformers' `Trainer`, its default model loss, `DataCollatorForSeq2Seq`
  padding each batch of `batch_size` examples to the longest, random order, no packing.
* `flywheel`: `train.fit_sft` as the pipeline runs it: examples that share the system/tools
  prefix batched behind one forward pass of it (prefix batches), logits at supervised
  positions only.
* `flywheel_packed` (optional): best-fit packed rows behind one copy of the prefix with a 4D
  attention mask instead of prefix batches.
* `flywheel_no_prefix` (optional): packed rows without prefix sharing, to show what each
  part contributes.

"Effective tokens" are the examples' own tokens (no padding; a shared prefix counts once
per example, as if unpacked), so tokens/s compare directly: same data, less time. Each arm
runs in a fresh process, so peak RSS (sampled while training) is not polluted by the
other. On a shared machine wall time is noisy: tokens per CPU-second is reported too.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from pipeline.core.training.packing import SFTExample, as_sft_example
from pipeline.shell.marts import load_sft_examples

ARMS = ("padding", "flywheel")


def _model_ref(model: str, cache_dir: Path) -> Path | str:
    from pipeline.learning.base_model import resolve_base_model

    return resolve_base_model({"tiny": "tiny-random-llama", "smollm2": "smollm2-135m-instruct"}.get(model, model),
                              cache_dir)


def _padding_arm(examples: list[SFTExample], model_ref: Path | str, config: Any) -> dict[str, Any]:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, set_seed

    from pipeline.core.training.packing import tokenize_examples
    from pipeline.learning.tokenizer import load_tokenizer
    from pipeline.learning.train import (
        PeakMemory,
        _metrics_callback,
        _Progress,
        _quiet,
        _training_arguments,
        load_model,
        resolve_precision,
        steady_tokens_per_second,
    )

    device, bf16 = resolve_precision(config.precision)
    tokenizer = load_tokenizer(model_ref)
    items, _ = tokenize_examples(tokenizer, examples, config.max_length)
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in items]
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    counts = {"slots": 0, "real": 0}
    progress = _Progress()  # for the per-step timing (tokens here = non-padding tokens)

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad(features)
        counts["slots"] += batch["input_ids"].numel()
        counts["real"] += int(batch["attention_mask"].sum())
        progress.counts["n_example_tokens"] = counts["real"]
        return batch

    set_seed(config.seed)
    model = load_model(model_ref, config)
    losses: list[float] = []
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as scratch:
        trainer = Trainer(model=model, args=_training_arguments(config, scratch, bf16), train_dataset=rows,
                          data_collator=collate, callbacks=[_metrics_callback(progress, None)])
        _quiet(trainer)
        with PeakMemory() as memory:
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            output = trainer.train()
            seconds, cpu_seconds = time.perf_counter() - wall_start, time.process_time() - cpu_start
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "steps": output.global_step, "examples": len(items), "tokens": sum(len(e.input_ids) for e in items),
        "assistant_tokens": sum(e.n_assistant for e in items), "computed_tokens": counts["slots"],
        "padding_fraction": 1 - counts["real"] / counts["slots"] if counts["slots"] else 0.0,
        "train_seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_bytes": memory.peak_rss,
        "peak_gpu_bytes": memory.peak_gpu, "initial_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None, "device": device,
        "precision": "bf16-autocast" if bf16 else "fp32",
        "steady_tokens_per_second": steady_tokens_per_second(progress.history),
    }


def _flywheel_arm(examples: list[SFTExample], model_ref: Path | str, config: Any) -> dict[str, Any]:
    from pipeline.learning.train import fit_sft, steady_tokens_per_second

    _, _, result = fit_sft(examples, model_ref, config)
    keys = ("steps", "examples", "tokens", "assistant_tokens", "computed_tokens", "padding_fraction", "train_seconds",
            "cpu_seconds", "peak_rss_bytes", "peak_gpu_bytes", "initial_loss", "final_loss", "device", "precision")
    metrics = {k: getattr(result, k) for k in keys}
    metrics["steady_tokens_per_second"] = steady_tokens_per_second(result.history)
    return metrics


def _run_arm(arm: str, examples: list[SFTExample], model_ref: Path | str, config: Any) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if arm == "padding":
        metrics = _padding_arm(examples, model_ref, config)
    elif arm == "flywheel":
        metrics = _flywheel_arm(examples, model_ref, replace(config, packing=True))
    elif arm == "flywheel_packed":
        metrics = _flywheel_arm(examples, model_ref, replace(config, packing=True, prefix_batches=False))
    elif arm == "flywheel_no_prefix":
        metrics = _flywheel_arm(examples, model_ref, replace(config, packing=True, share_prefix=False,
                                                            prefix_batches=False))
    else:
        raise ValueError(f"unknown arm {arm!r}")
    metrics["tokens_per_second"] = metrics["tokens"] / metrics["train_seconds"]
    metrics["tokens_per_cpu_second"] = metrics["tokens"] / max(metrics["cpu_seconds"], 1e-9)
    return metrics


def run_train_benchmark(examples: Iterable[Mapping[str, Any] | SFTExample] | None = None, *,
                        duckdb_path: Path | str | None = None, n_examples: int = 12, model: str = "smollm2",
                        cache_dir: Path | str | None = None, max_length: int = 2048, pack_length: int = 3072,
                        padding_batch_size: int = 2, arms: Sequence[str] = ARMS, precision: str = "auto",
                        gradient_checkpointing: bool = False, seed: int = 0, isolate: bool = True) -> dict[str, Any]:
    """Train each arm for one epoch on the same `n_examples` examples and compare.

    `examples` (rows or SFTExample) or `duckdb_path` (reads marts.sft_examples). `model`:
    "smollm2" (the embedded SmolLM2-135M-Instruct, converted once into `cache_dir`), "tiny"
    (random 2-layer Llama, for tests), or a local directory. `isolate` runs each arm in a
    fresh process (clean peak-memory figures). `gradient_checkpointing` applies to every arm
    (for machines where the padded baseline would not fit in memory)."""
    from pipeline.learning.train import TrainConfig

    if examples is None:
        if duckdb_path is None:
            raise ValueError("give examples or duckdb_path")
        examples = load_sft_examples(duckdb_path, limit=n_examples)
    data = [as_sft_example(e) for e in examples][:n_examples]
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "flywheel-models"
    started = time.perf_counter()
    model_ref = _model_ref(model, cache)
    prepare_seconds = time.perf_counter() - started
    base = TrainConfig(base_model=str(model_ref), max_length=max_length, pack_length=pack_length, epochs=1.0,
                       grad_accum=1, precision=precision, seed=seed, learning_rate=1e-4,
                       gradient_checkpointing=gradient_checkpointing)
    results: dict[str, Any] = {}
    for arm in arms:
        config = replace(base, batch_size=padding_batch_size) if arm == "padding" else base
        if isolate:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                results[arm] = pool.submit(_run_arm, arm, data, model_ref, config).result()
        else:
            results[arm] = _run_arm(arm, data, model_ref, config)
        results[arm]["config"] = {k: v for k, v in asdict(config).items()
                                  if k in ("batch_size", "max_length", "pack_length", "share_prefix", "method")}
    baseline = results.get("padding")
    summary: dict[str, Any] = {
        "model": str(model_ref), "examples": len(data), "max_length": max_length,
        "row_capacity": base.row_capacity, "padding_batch_size": padding_batch_size,
        "gradient_checkpointing": gradient_checkpointing,
        "model_prepare_seconds": prepare_seconds, "arms": results,
    }
    if baseline:
        for arm, metrics in results.items():
            if arm != "padding":
                metrics["speedup"] = metrics["tokens_per_second"] / baseline["tokens_per_second"]
                metrics["speedup_cpu"] = metrics["tokens_per_cpu_second"] / baseline["tokens_per_cpu_second"]
                steady, steady_baseline = metrics["steady_tokens_per_second"], baseline["steady_tokens_per_second"]
                if steady and steady_baseline:
                    metrics["speedup_steady"] = steady / steady_baseline
    return summary


def format_train_benchmark(result: Mapping[str, Any]) -> str:
    """A small fixed-width table of the benchmark result."""
    lines = [f"model {result['model']}: {result['examples']} examples, max_length {result['max_length']}, "
             f"packed rows of {result['row_capacity']} tokens, padding batches of {result['padding_batch_size']}"
             + (", gradient checkpointing" if result.get("gradient_checkpointing") else ""),
             f"{'arm':<20}{'steps':>6}{'tokens':>9}{'computed':>10}{'pad%':>6}{'sec':>8}{'tok/s':>9}"
             f"{'tok/cpu-s':>10}{'steady':>8}{'peak RSS':>10}{'speedup':>9}{'steady':>8}{'loss first→last':>18}"]
    for arm, m in result["arms"].items():
        speed = f"{m['speedup']:.2f}x" if "speedup" in m else "1.00x"
        steady_speed = (f"{m['speedup_steady']:.2f}x" if "speedup_steady" in m
                        else "1.00x" if arm == "padding" else "-")
        steady = f"{m['steady_tokens_per_second']:.1f}" if m.get("steady_tokens_per_second") else "-"
        loss = (f"{m['initial_loss']:.3f}→{m['final_loss']:.3f}" if m.get("initial_loss") is not None else "-")
        lines.append(f"{arm:<20}{m['steps']:>6}{m['tokens']:>9}{m['computed_tokens']:>10}"
                     f"{100 * m['padding_fraction']:>5.1f}%{m['train_seconds']:>8.1f}{m['tokens_per_second']:>9.1f}"
                     f"{m['tokens_per_cpu_second']:>10.1f}{steady:>8}{m['peak_rss_bytes'] / 2**20:>8.0f}MB{speed:>9}"
                     f"{steady_speed:>8}{loss:>18}")
    lines.append("tokens = the examples' own non-padding tokens (same data in every arm); computed = token "
                 "positions run through the model, padding included; steady = tok/s after the first "
                 "(warm-up) optimizer step")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m pipeline.benchmarks.train [duckdb] [n] [tiny|smollm2]
    import json
    import sys

    args = sys.argv[1:]
    report = run_train_benchmark(duckdb_path=args[0] if args else ".state/warehouse.duckdb",
                                 n_examples=int(args[1]) if len(args) > 1 else 12,
                                 model=args[2] if len(args) > 2 else "smollm2",
                                 cache_dir=os.environ.get("FLYWHEEL_MODEL_CACHE", ".state/models"),
                                 arms=tuple(args[3].split(",")) if len(args) > 3 else ARMS)
    print(format_train_benchmark(report))
    print(json.dumps(report, indent=1, default=str), file=sys.stderr)
