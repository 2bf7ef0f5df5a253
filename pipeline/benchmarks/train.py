"""Training-throughput benchmark: our SFT step against the libraries' own best practice.

Every arm fine-tunes the same model as the pipeline does (full fine-tuning, fp32 weights with
bf16 autocast where the hardware has it, AdamW, constant learning rate 2e-4) for one epoch on
the same examples with the same assistant-only labels, each arm in a fresh process, with about
`examples_per_step` examples per optimizer step (2: what the pipeline's prefix batches of 3,072
positions hold on our marts). Example weights are set to 1: neither library has per-example
loss weights, and they change no cost.

Baselines:

* `trainer_padding`: transformers' `Trainer`, `DataCollatorForSeq2Seq` padding each batch to its
  longest example, the model's own loss.
* `trl_padding_free`: TRL's `SFTTrainer` with `assistant_only_loss` (our chat template has the
  `{% generation %}` markers it needs) and `padding_free`: a batch's examples concatenated into
  one sequence, no padding, attention kept within each example (position ids restart).
* `trl_packing`: `SFTTrainer` with `packing` (best-fit decreasing into rows of `max_length`;
  it turns padding-free on) and `assistant_only_loss`; as many rows per step as hold about
  `examples_per_step` examples.

Ours (`learning.train.fit_sft`):

* `flywheel`: what the pipeline runs: examples that share the system+tools prefix batched
  behind one forward pass of it (prefix batches), logits only at supervised positions.
* `flywheel_packed`: packed rows behind one copy of the prefix, a 4D block mask.
* `flywheel_no_prefix`: packed rows, each example with its own prefix. Against `trl_packing`
  (the same positions) it shows computing logits only where labels exist; against
  `flywheel_packed`, sharing the prefix.

Per arm: "tokens", the examples' own tokens (a prefix counted once per example, no padding: the
same work in every arm); "positions", the token positions the model ran through (padding and
repeated prefixes included); "logit positions", those projected onto the vocabulary; their
rates; tokens per CPU-second (wall time is noisy on a shared machine); peak RSS (sampled while
training); and the assistant-token loss over all the examples after training, next to the
same loss before training.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.core.training.packing import IGNORE, SFTExample, as_sft_example

BASELINES = ("trainer_padding", "trl_padding_free", "trl_packing")
OURS = ("flywheel", "flywheel_packed", "flywheel_no_prefix")
ARMS = BASELINES + OURS


def _model_ref(model: str, cache_dir: Path) -> Path | str:
    from pipeline.learning.base_model import EMBEDDED_MODEL, TINY_MODEL, resolve_base_model

    return resolve_base_model({"tiny": TINY_MODEL, "smollm2": EMBEDDED_MODEL}.get(model, model), cache_dir)


def rows_per_step(rows: int, examples: int, examples_per_step: int) -> int:
    """Rows per optimizer step holding about `examples_per_step` examples, when `rows` packed
    rows hold `examples` examples."""
    return max(1, round(examples_per_step * rows / examples))


def _tokenized(examples: list[SFTExample], model_ref: Path | str, max_length: int) -> tuple[Any, list[Any]]:
    from pipeline.core.training.packing import tokenize_examples
    from pipeline.learning.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_ref)
    return tokenizer, tokenize_examples(tokenizer, examples, max_length)[0]


def assistant_loss(model: Any, items: list[Any], config: Any, pad_token_id: int) -> float:
    """Mean cross-entropy over the assistant tokens of `items` (tokenized examples), without
    gradients: the same yardstick for a model trained by any arm. In the training precision
    for every model, trained or not: accelerate leaves a trained model's forward under the
    training's autocast."""
    import torch

    from pipeline.core.training.packing import prefix_batches
    from pipeline.learning.collator import COUNTER_KEYS, PrefixBatchCollator
    from pipeline.learning.train import _forward_behind_prefix, resolve_precision

    device, bf16 = resolve_precision(config.precision)
    collate = PrefixBatchCollator(pad_token_id)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        for batch in prefix_batches(items, config.row_capacity):
            inputs = {k: v.to(model.device) for k, v in collate([batch]).items()
                      if k not in (*COUNTER_KEYS, "loss_weights")}
            labels, prefix = inputs.pop("labels"), inputs.pop("prefix_ids")
            next_labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)
            keep = next_labels != IGNORE
            logits = _forward_behind_prefix(model, prefix, inputs, keep).logits.float()
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), next_labels[keep],
                                                             reduction="sum"))
            count += int(keep.sum())
    return total / count


def _counting_trainer(base: type, counts: dict[str, int], logit_positions: Callable[[Any], int]) -> type:
    """`base` (transformers' Trainer or TRL's SFTTrainer) counting what each training
    micro-batch of its own collator holds."""

    class CountingTrainer(base):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if model.training:
                ids = inputs["input_ids"]
                counts["positions"] += ids.numel()
                # padding-free batches have no attention mask: every position is a token
                counts["tokens"] += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else ids.numel()
                counts["logit_positions"] += logit_positions(inputs)
            return super().compute_loss(model, inputs, *args, **kwargs)

    return CountingTrainer


def _train_library_arm(trainer: Any, counts: dict[str, int], items: list[Any], config: Any,
                       pad_token_id: int) -> dict[str, Any]:
    from pipeline.learning.train import PeakMemory, quiet_trainer

    quiet_trainer(trainer)
    with PeakMemory() as memory:
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        output = trainer.train()
        seconds, cpu_seconds = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {"steps": output.global_step, "examples": len(items), **counts, "train_seconds": seconds,
            "cpu_seconds": cpu_seconds, "peak_rss_bytes": memory.peak_rss,
            "loss_after": assistant_loss(trainer.model, items, config, pad_token_id)}


def _trainer_padding_arm(examples: list[SFTExample], model_ref: Path | str, config: Any,
                         examples_per_step: int) -> dict[str, Any]:
    from transformers import DataCollatorForSeq2Seq, Trainer, set_seed

    from pipeline.learning.train import _training_arguments, load_model, resolve_precision

    _, bf16 = resolve_precision(config.precision)
    tokenizer, items = _tokenized(examples, model_ref, config.max_length)
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in items]
    counts = dict.fromkeys(("tokens", "positions", "logit_positions"), 0)
    # the model's own loss projects every position onto the vocabulary
    trainer_class = _counting_trainer(Trainer, counts, lambda inputs: inputs["input_ids"].numel())
    set_seed(config.seed)
    model = load_model(model_ref, config)
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as scratch:
        args = _training_arguments(replace(config, batch_size=examples_per_step), scratch, bf16)
        pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)
        trainer = trainer_class(model=model, args=args, train_dataset=rows, data_collator=pad)
        return _train_library_arm(trainer, counts, items, config, tokenizer.pad_token_id)


def _trl_rows(examples: list[SFTExample]) -> list[dict[str, Any]]:
    """Conversational rows for TRL: tools as a JSON string and tool-call arguments as JSON
    strings, which Arrow stores without merging their schemas (TRL parses `tools` back)."""
    from pipeline.learning.train import _arguments_as_json

    return [{"messages": _arguments_as_json(e.messages), "tools": json.dumps(e.tools, ensure_ascii=False)}
            for e in examples]


def _trl_arm(examples: list[SFTExample], model_ref: Path | str, config: Any, examples_per_step: int,
             packing: bool) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer, pack_dataset

    from pipeline.learning.train import _training_arguments, load_model, resolve_precision

    device, bf16 = resolve_precision(config.precision)
    tokenizer, items = _tokenized(examples, model_ref, config.max_length)
    batch_size = examples_per_step
    if packing:  # rows hold one or more examples: count them with TRL's own packer
        packed = pack_dataset(Dataset.from_dict({"input_ids": [e.input_ids for e in items]}), config.row_capacity)
        batch_size = rows_per_step(len(packed), len(items), examples_per_step)
    counts = dict.fromkeys(("tokens", "positions", "logit_positions"), 0)

    def logit_positions(inputs: Any) -> int:
        # TRL's fused LM head (trl.trainer.utils.add_fused_lm_head) scores only labelled positions
        # with its Triton kernel (CUDA, XPU); elsewhere every position but each row's last.
        shifted = inputs["labels"][:, 1:]
        return int((shifted != IGNORE).sum()) if device in ("cuda", "xpu") else shifted.numel()

    set_seed(config.seed)
    model = load_model(model_ref, config)
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as scratch:
        # padding-free without packing does not truncate: max_length None (no example is cut here either)
        args = _training_arguments(replace(config, batch_size=batch_size), scratch, bf16, arguments_class=SFTConfig,
                                   assistant_only_loss=True, packing=packing, padding_free=True,
                                   max_length=config.row_capacity if packing else None)
        trainer = _counting_trainer(SFTTrainer, counts, logit_positions)(
            model=model, args=args, train_dataset=Dataset.from_list(_trl_rows(examples)), processing_class=tokenizer)
        return _train_library_arm(trainer, counts, items, config, tokenizer.pad_token_id)


def _flywheel_arm(examples: list[SFTExample], model_ref: Path | str, config: Any,
                  examples_per_step: int) -> dict[str, Any]:
    from pipeline.core.training.packing import pack_examples
    from pipeline.learning.train import fit_sft

    tokenizer, items = _tokenized(examples, model_ref, config.max_length)
    if not config.prefix_batches:  # prefix batches are sized by positions; packed rows by rows per step
        rows = pack_examples(items, config.row_capacity, share_prefix=config.share_prefix)
        config = replace(config, batch_size=rows_per_step(len(rows), len(items), examples_per_step))
    model, _, result = fit_sft(examples, model_ref, config)
    return {"steps": result.steps, "examples": result.examples, "tokens": result.tokens,
            "positions": result.computed_tokens,
            # our loss projects the supervised positions only, one per assistant token
            "logit_positions": result.assistant_tokens,
            "train_seconds": result.train_seconds, "cpu_seconds": result.cpu_seconds,
            "peak_rss_bytes": result.peak_rss_bytes,
            "loss_after": assistant_loss(model, items, config, tokenizer.pad_token_id)}


def _run_arm(arm: str, examples: list[SFTExample], model_ref: Path | str, config: Any,
             examples_per_step: int) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if arm == "trainer_padding":
        metrics = _trainer_padding_arm(examples, model_ref, config, examples_per_step)
    elif arm in ("trl_padding_free", "trl_packing"):
        metrics = _trl_arm(examples, model_ref, config, examples_per_step, packing=arm == "trl_packing")
    elif arm == "flywheel":
        metrics = _flywheel_arm(examples, model_ref, config, examples_per_step)
    elif arm == "flywheel_packed":
        metrics = _flywheel_arm(examples, model_ref, replace(config, prefix_batches=False), examples_per_step)
    elif arm == "flywheel_no_prefix":
        metrics = _flywheel_arm(examples, model_ref, replace(config, share_prefix=False, prefix_batches=False),
                                examples_per_step)
    else:
        raise ValueError(f"unknown arm {arm!r}")
    seconds, cpu_seconds = metrics["train_seconds"], max(metrics["cpu_seconds"], 1e-9)
    metrics.update(tokens_per_second=metrics["tokens"] / seconds, positions_per_second=metrics["positions"] / seconds,
                   tokens_per_cpu_second=metrics["tokens"] / cpu_seconds)
    return metrics


def _loss_before(examples: list[SFTExample], model_ref: Path | str, config: Any) -> float:
    from pipeline.learning.train import load_model

    tokenizer, items = _tokenized(examples, model_ref, config.max_length)
    return assistant_loss(load_model(model_ref, config), items, config, tokenizer.pad_token_id)


def _call(isolate: bool, function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`, in a fresh process when `isolate` (clean peak-memory figures)."""
    if not isolate:
        return function(*args)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _failure(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def run_train_benchmark(examples: Iterable[Mapping[str, Any] | SFTExample] | None = None, *,
                        duckdb_path: Path | str | None = None, n_examples: int = 12, model: str = "smollm2",
                        cache_dir: Path | str | None = None, max_length: int = 3072, examples_per_step: int = 2,
                        learning_rate: float = 2e-4, arms: Sequence[str] = ARMS, precision: str = "auto",
                        seed: int = 0, isolate: bool = True,
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train each arm for one epoch on the same `n_examples` examples and compare.

    `examples` (rows or SFTExample) or `duckdb_path` (reads marts.sft_examples). `model`:
    "smollm2" (the embedded SmolLM2-135M-Instruct, converted once into `cache_dir`), "tiny"
    (random 2-layer Llama, for tests), or a local directory. `max_length` is both the longest
    example and the positions of a row or prefix batch, as in the pipeline. An arm that raises
    is reported with its error, not dropped. `log` gets each arm's row as it finishes."""
    from pipeline.learning.train import TrainConfig
    from pipeline.shell.marts import load_sft_examples

    if examples is None:
        if duckdb_path is None:
            raise ValueError("give examples or duckdb_path")
        examples = load_sft_examples(duckdb_path, limit=n_examples)
    data = [replace(as_sft_example(e), weight=1.0) for e in examples][:n_examples]
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "flywheel-models"
    model_ref = _model_ref(model, cache)
    config = TrainConfig(base_model=str(model_ref), method="full", max_length=max_length, pack_length=max_length,
                         epochs=1.0, batch_size=1, grad_accum=1, learning_rate=learning_rate, lr_scheduler="constant",
                         precision=precision, seed=seed)
    results: dict[str, Any] = {}
    for arm in arms:
        try:
            results[arm] = _call(isolate, _run_arm, arm, data, model_ref, config, examples_per_step)
        except Exception as exc:  # a library that cannot run this setup is a result too
            results[arm] = {"failed": _failure(exc)}
        if log is not None:
            log(_row(arm, results[arm]))
    for key in ("tokens_per_second", "tokens_per_cpu_second"):
        best = max((results[a][key] for a in BASELINES if key in results.get(a, {})), default=None)
        for metrics in results.values():
            if best and key in metrics:
                metrics[f"{key}_vs_best_baseline"] = metrics[key] / best
    return {"model": str(model_ref), "examples": len(data), "max_length": max_length,
            "examples_per_step": examples_per_step, "learning_rate": learning_rate,
            "loss_before": _call(isolate, _loss_before, data, model_ref, config), "arms": results}


def _row(arm: str, m: Mapping[str, Any]) -> str:
    if "failed" in m:
        return f"{arm:<19}failed: {m['failed']}"
    versus = "-"
    if "tokens_per_second_vs_best_baseline" in m:
        versus = (f"{m['tokens_per_second_vs_best_baseline']:.2f}x "
                  f"(cpu {m['tokens_per_cpu_second_vs_best_baseline']:.2f}x)")
    return (f"{arm:<19}{m['steps']:>6}{m['tokens']:>8}{m['positions']:>10}{m['logit_positions']:>10}"
            f"{m['train_seconds']:>7.1f}{m['tokens_per_second']:>7.1f}{m['positions_per_second']:>7.1f}"
            f"{m['tokens_per_cpu_second']:>10.1f}{m['peak_rss_bytes'] / 2**20:>8.0f}MB{m['loss_after']:>11.3f}"
            f"{versus:>23}")


def format_train_benchmark(result: Mapping[str, Any]) -> str:
    """A small fixed-width table of the benchmark result."""
    lines = [f"model {result['model']}: full fine-tuning, {result['examples']} examples, about "
             f"{result['examples_per_step']} per step, lr {result['learning_rate']:g} constant, rows and prefix "
             f"batches of {result['max_length']} positions; assistant-token loss on these examples before "
             f"training {result['loss_before']:.3f}",
             f"{'arm':<19}{'steps':>6}{'tokens':>8}{'positions':>10}{'logit pos':>10}{'sec':>7}{'tok/s':>7}"
             f"{'pos/s':>7}{'tok/cpu-s':>10}{'peak RSS':>10}{'loss after':>11}{'tok/s vs best baseline':>23}"]
    lines += [_row(arm, m) for arm, m in result["arms"].items()]
    lines.append("tokens: the examples' own (same in every arm); positions: run through the model, padding and "
                 "repeated prefixes included; logit pos: projected onto the vocabulary")
    return "\n".join(lines)
