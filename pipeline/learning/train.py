"""Fine-tuning: SFT (LoRA by default, or full) and optional DPO, saved as a merged model.

    result = train_sft(examples, resolve_base_model("smollm2-135m-instruct", cache), out_dir,
                       TrainConfig(), on_log=lambda step, metrics: mlflow.log_metrics(metrics, step))

`out_dir` then holds a standalone model: LoRA weights merged into the base, safetensors,
the tokenizer with the project chat template, and `flywheel_training.json` (config and
metrics). It loads with `from_pretrained(out_dir)` offline and names no hub id.

Why transformers' `Trainer` with our own collator and loss, not TRL's `SFTTrainer`:
`SFTTrainer` covers assistant-only loss and padding-free packing, but (1) it has no
per-example loss weights, which curation's balancing produces; (2) it cannot share the long
system + tools prefix of agent conversations between examples (`core/training/packing.py`),
which on our marts removes about a third of the tokens to compute (rows of 3,072); (3) we
compute the vocabulary projection only at supervised positions (`logits_to_keep` with a
boolean mask) on any device, where TRL's fused LM head (1.16) does so only with its Triton
kernel (CUDA, XPU) and projects every position on a CPU. `flywheel bench train` measures
each of these against SFTTrainer. These are ~40 lines on top of `Trainer`, which still
provides the loop, optimizer, schedule, gradient accumulation, mixed precision and device
placement (GPU when present, CPU otherwise). DPO has no such needs and uses TRL's `DPOTrainer` directly.

Loss: cross-entropy on assistant tokens, each token weighted by its example's weight
(weights rescaled to mean 1 over supervised tokens), divided by the number of supervised
tokens in the micro-batch. Deterministic for a given seed (same hardware and threads).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from pipeline.core.training.chat_template import CHAT_TEMPLATE, END_OF_TURN
from pipeline.core.training.packing import (
    IGNORE,
    SFTExample,
    normalise_weights,
    pack_examples,
    prefix_batches,
    single_rows,
    tokenize_examples,
)
from pipeline.learning.base_model import ModelRef
from pipeline.learning.collator import COUNTER_KEYS, PackedCollator, PrefixBatchCollator
from pipeline.learning.tokenizer import load_tokenizer

OnLog = Callable[[int, dict[str, float]], None]
OnCheckpoint = Callable[[int, Any], None]  # (optimizer step, model) at the steps asked for
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    base_model: str = "smollm2-135m-instruct"  # see base_model.resolve_base_model
    method: Literal["lora", "full"] = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # > 0 keeps a dropped-out copy of every adapted layer's input: ~20% more memory
    lora_target_modules: tuple[str, ...] = ALL_LINEAR
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 1  # rows per micro-batch (a packed row holds several examples)
    grad_accum: int = 4
    max_length: int = 2048  # tokens per example; longer ones are cut (right side)
    packing: bool = True
    # Tokens per packed row (at least max_length). Longer rows share one system turn among more
    # examples, but attention over a row grows quadratically (a dense mask on CPU) and so does
    # activation memory linearly: 3072 holds ~3 of our conversations behind one system turn.
    pack_length: int = 3072
    share_prefix: bool = True  # pack examples behind one copy of their common system turn
    # ...as one batch behind the system turn's KV cache (data.prefix_batches), not packed
    # rows with a dense block mask: ~1.5x fewer seconds per example on a CPU, same gradients
    prefix_batches: bool = True
    gradient_checkpointing: bool = False  # recompute activations: much less memory, ~30% slower
    lr_scheduler: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast where the hardware has it
    seed: int = 0
    dpo: bool = False  # the caller runs train_dpo after train_sft when pairs exist
    dpo_beta: float = 0.1

    @property
    def row_capacity(self) -> int:
        return max(self.pack_length, self.max_length)


@dataclass
class TrainResult:
    model_dir: Path | None
    steps: int
    initial_loss: float | None  # first / last logged step: unweighted assistant-token CE for SFT,
    final_loss: float | None  # the DPO loss for DPO
    examples: int  # examples trained on (after dropping those with nothing to learn)
    dropped_examples: int
    truncated_examples: int
    tokens: int  # non-padding example tokens trained on, all epochs (a shared prefix counts per example)
    assistant_tokens: int  # supervised tokens trained on, all epochs
    computed_tokens: int  # token positions run through the model, padding included
    padding_fraction: float  # padding share of computed_tokens
    train_seconds: float
    cpu_seconds: float
    tokens_per_second: float
    assistant_tokens_per_second: float
    peak_rss_bytes: int
    peak_gpu_bytes: int | None
    device: str
    precision: str
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat numeric summary (for MLflow)."""
        keys = ("steps", "initial_loss", "final_loss", "examples", "dropped_examples", "truncated_examples",
                "tokens", "assistant_tokens", "computed_tokens", "padding_fraction", "train_seconds",
                "cpu_seconds", "tokens_per_second", "assistant_tokens_per_second", "peak_rss_bytes",
                "peak_gpu_bytes")
        values = {k: getattr(self, k) for k in keys}
        return {k: float(v) for k, v in values.items() if v is not None}


def resolve_precision(precision: str) -> tuple[str, bool]:
    """(device, use_bf16). bf16 autocast on CUDA when supported, on CPU when it has bf16
    matrix units (AVX512-BF16/AMX: 2-3x faster there); fp32 otherwise."""
    if torch.cuda.is_available():
        device, capable = "cuda", torch.cuda.is_bf16_supported()
    else:
        device = "cpu"
        try:
            capable = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        except AttributeError:
            capable = False
    if precision == "bf16":
        return device, True
    return device, precision == "auto" and capable


def load_model(model_ref: ModelRef, config: TrainConfig):
    """The base model in fp32 (mixed precision comes from autocast), LoRA-wrapped if asked."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_ref, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    if config.method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(config))
    elif config.method != "full":
        raise ValueError(f"unknown method {config.method!r} (lora or full)")
    return model


def lora_config(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules), bias="none", task_type="CAUSAL_LM")


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 20 ms), and
    peak CUDA memory when on GPU."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_rss = 0
        self.peak_gpu: int | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.peak_rss = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
        if torch.cuda.is_available():
            self.peak_gpu = torch.cuda.max_memory_allocated()


def _training_arguments(config: TrainConfig, output_dir: str, bf16: bool, arguments_class: Any = None, **extra: Any):
    """`TrainingArguments`, or a subclass such as TRL's `SFTConfig` (whose own defaults, e.g.
    activation checkpointing on, are overridden by the same values)."""
    from transformers import TrainingArguments

    return (arguments_class or TrainingArguments)(
        output_dir=output_dir, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        num_train_epochs=config.epochs, max_steps=config.max_steps, lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
        bf16=bf16, activation_checkpointing=config.gradient_checkpointing, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True,
        seed=config.seed, data_seed=config.seed, dataloader_num_workers=0, remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(), **extra)


class _Progress:
    """Shared between the trainer (counts tokens per micro-batch) and the logging callback."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTER_KEYS, 0)
        self.ce_sum = 0.0  # unweighted cross-entropy since the last log (the weighted loss is what is optimised)
        self.ce_count = 0
        self.history: list[dict[str, float]] = []
        self.started = time.perf_counter()


def _metrics_callback(progress: _Progress, on_log: OnLog | None):
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress.started = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            elapsed = max(time.perf_counter() - progress.started, 1e-9)
            counts = progress.counts
            metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            if progress.ce_count:
                metrics["ce"] = progress.ce_sum / progress.ce_count
                progress.ce_sum, progress.ce_count = 0.0, 0
            metrics["elapsed_seconds"] = elapsed
            if counts["n_example_tokens"]:
                metrics.update(
                    tokens=float(counts["n_example_tokens"]), assistant_tokens=float(counts["n_assistant"]),
                    tokens_per_second=counts["n_example_tokens"] / elapsed,
                    padding_fraction=counts["n_padding"] / max(counts["n_real_tokens"] + counts["n_padding"], 1))
            progress.history.append({"step": float(state.global_step), **metrics})
            if on_log is not None:
                on_log(state.global_step, metrics)

    return MetricsCallback()


def _checkpoint_callback(steps: Iterable[int], on_checkpoint: OnCheckpoint):
    """Hands the model to `on_checkpoint` after each of `steps` (a budget curve from one run)."""
    from transformers import TrainerCallback

    wanted = set(steps)

    class CheckpointCallback(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in wanted:
                on_checkpoint(state.global_step, model)

    return CheckpointCallback()


def _adapters_follow_autocast(model: Any, bf16: bool):
    """Under bf16 autocast PEFT would cast each LoRA layer's bf16 input back to fp32 (the
    adapter's dtype), keeping an extra fp32 copy per layer for backward; autocast already runs
    the adapter matmuls in bf16, so the cast is skipped."""
    import contextlib

    from peft import PeftModel
    from peft.helpers import disable_input_dtype_casting

    if bf16 and isinstance(model, PeftModel):
        return disable_input_dtype_casting(model)
    return contextlib.nullcontext()


def _sft_trainer_class():
    from transformers import Trainer

    class FlywheelSFTTrainer(Trainer):
        """Trainer with a weighted, assistant-only loss computed at supervised positions only."""

        loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean

        def __init__(self, *args: Any, progress: _Progress, group_lengths: list[int] | None = None,
                     **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.progress = progress
            self.group_lengths = group_lengths

        def _get_train_sampler(self, train_dataset=None):
            if self.group_lengths is None:
                return super()._get_train_sampler(train_dataset)
            from transformers.trainer_pt_utils import LengthGroupedSampler

            generator = torch.Generator().manual_seed(self.args.seed)
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=self.group_lengths, generator=generator)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            counts = {k: inputs.pop(k) for k in COUNTER_KEYS}
            if model.training:
                for k, v in counts.items():
                    self.progress.counts[k] += int(v)
            labels, weights = inputs.pop("labels"), inputs.pop("loss_weights")
            # Position t predicts token t+1: keep the positions whose next token is supervised.
            next_labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)
            next_weights = torch.nn.functional.pad(weights[:, 1:], (0, 1), value=0.0)
            keep = next_labels != IGNORE
            prefix = inputs.pop("prefix_ids", None)
            if prefix is not None:
                outputs = _forward_behind_prefix(model, prefix, inputs, keep)
            else:
                outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
            logits = outputs.logits.float().reshape(-1, outputs.logits.shape[-1])  # (n_supervised, vocab)
            token_loss = torch.nn.functional.cross_entropy(logits, next_labels[keep], reduction="none")
            loss = (token_loss * next_weights[keep]).sum() / keep.sum().clamp(min=1)
            if model.training:
                self.progress.ce_sum += float(token_loss.detach().sum())
                self.progress.ce_count += int(keep.sum())
            return (loss, outputs) if return_outputs else loss

    return FlywheelSFTTrainer


def _forward_behind_prefix(model: Any, prefix: torch.Tensor, inputs: dict[str, torch.Tensor],
                           keep: torch.Tensor) -> Any:
    """A PrefixBatch forward: the shared prefix once (its keys and values keep their graph, so
    the loss reaches the prefix's computation too), repeated for every row, then the rows."""
    cache = None
    if prefix.shape[1]:
        cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
        rows = inputs["input_ids"].shape[0]
        if rows > 1:
            cache.batch_repeat_interleave(rows)
    return model(**inputs, past_key_values=cache, use_cache=True, logits_to_keep=keep)


def quiet_trainer(trainer: Any) -> None:
    """No log dicts printed to stdout: metrics go to `on_log` and the result."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _resolve_config_model(model_dir: ModelRef | None, config: TrainConfig) -> ModelRef:
    return model_dir if model_dir is not None else config.base_model


def fit_sft(examples: Iterable[Mapping[str, Any] | SFTExample], model_dir: ModelRef, config: TrainConfig,
            on_log: OnLog | None = None, checkpoint_steps: Iterable[int] = (),
            on_checkpoint: OnCheckpoint | None = None) -> tuple[Any, Any, TrainResult]:
    """Train and return (model, tokenizer, result) without saving (see train_sft);
    `on_checkpoint(step, model)` is called after each of `checkpoint_steps`."""
    from transformers import set_seed

    device, bf16 = resolve_precision(config.precision)
    tokenizer = load_tokenizer(model_dir)
    items, stats = tokenize_examples(tokenizer, examples, config.max_length)
    if not items:
        raise ValueError(f"no trainable examples ({stats.dropped} of {stats.examples} had no assistant tokens "
                         f"within max_length={config.max_length})")
    items = normalise_weights(items)
    collator: Any = PackedCollator(tokenizer.pad_token_id)
    batch_size = config.batch_size
    if config.packing and config.share_prefix and config.prefix_batches and not config.gradient_checkpointing:
        # each item is a whole batch (checkpointing recomputes without a cache: packed rows then)
        rows = prefix_batches(items, config.row_capacity * config.batch_size)
        collator, batch_size, group_lengths = PrefixBatchCollator(tokenizer.pad_token_id), 1, None
    elif config.packing:
        rows = pack_examples(items, config.row_capacity, share_prefix=config.share_prefix)
        group_lengths = None  # rows are shuffled
    else:
        rows = single_rows(items)
        group_lengths = [len(r) for r in rows]  # batches of similar lengths: little padding without packing

    set_seed(config.seed)
    model = load_model(model_dir, config)
    progress = _Progress()
    with tempfile.TemporaryDirectory(prefix="flywheel-train-") as scratch:
        args = _training_arguments(replace(config, batch_size=batch_size), scratch, bf16)
        callbacks = [_metrics_callback(progress, on_log)]
        if on_checkpoint is not None:
            callbacks.append(_checkpoint_callback(checkpoint_steps, on_checkpoint))
        trainer = _sft_trainer_class()(
            model=model, args=args, train_dataset=rows, data_collator=collator,
            callbacks=callbacks, progress=progress, group_lengths=group_lengths)
        quiet_trainer(trainer)
        with PeakMemory() as memory, _adapters_follow_autocast(model, bf16):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            output = trainer.train()
            seconds, cpu_seconds = time.perf_counter() - wall_start, time.process_time() - cpu_start
    result = _result(progress, output.global_step, seconds, cpu_seconds, memory, device, bf16, config)
    result.examples, result.dropped_examples, result.truncated_examples = stats.kept, stats.dropped, stats.truncated
    model = trainer.model
    return model, tokenizer, result


def _result(progress: _Progress, steps: int, seconds: float, cpu_seconds: float, memory: PeakMemory, device: str,
            bf16: bool, config: TrainConfig) -> TrainResult:
    counts = progress.counts
    # Unweighted cross-entropy where we have it (SFT): comparable from step to step.
    losses = [h.get("ce", h["loss"]) for h in progress.history if "loss" in h]
    computed = counts["n_real_tokens"] + counts["n_padding"]
    return TrainResult(
        model_dir=None, steps=steps, initial_loss=losses[0] if losses else None,
        final_loss=losses[-1] if losses else None, examples=0, dropped_examples=0, truncated_examples=0,
        tokens=counts["n_example_tokens"], assistant_tokens=counts["n_assistant"], computed_tokens=computed,
        padding_fraction=counts["n_padding"] / computed if computed else 0.0, train_seconds=seconds,
        cpu_seconds=cpu_seconds, tokens_per_second=counts["n_example_tokens"] / seconds if seconds else 0.0,
        assistant_tokens_per_second=counts["n_assistant"] / seconds if seconds else 0.0,
        peak_rss_bytes=memory.peak_rss, peak_gpu_bytes=memory.peak_gpu, device=device,
        precision="bf16-autocast" if bf16 else "fp32", history=progress.history, config=asdict(config))


def save_merged(model: Any, tokenizer: Any, out_dir: Path, metadata: Mapping[str, Any]) -> Path:
    """Merge LoRA weights (if any) and write a standalone model + tokenizer to `out_dir`,
    replacing it atomically."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    model.config.use_cache = True
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.generation_config.eos_token_id = end_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tokenizer.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "flywheel_training.json").write_text(json.dumps(metadata, indent=2, default=str))
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _metadata(kind: str, model_dir: ModelRef, result: TrainResult) -> dict[str, Any]:
    summary = asdict(result)
    summary.pop("history")
    return {"kind": kind, "base_model": str(model_dir), "result": summary}


def train_sft(examples: Iterable[Mapping[str, Any] | SFTExample], model_dir: ModelRef | None, out_dir: Path,
              config: TrainConfig, on_log: OnLog | None = None) -> TrainResult:
    """Supervised fine-tuning on conversational examples (rows of marts.sft_examples:
    messages, tools, weight); saves the merged model to `out_dir`. `model_dir` None means
    `config.base_model` as given (a directory or hub id; resolve the embedded default with
    base_model.resolve_base_model first)."""
    model_ref = _resolve_config_model(model_dir, config)
    model, tokenizer, result = fit_sft(examples, model_ref, config, on_log)
    result.model_dir = save_merged(model, tokenizer, out_dir, _metadata("sft", model_ref, result))
    return result


def _arguments_as_json(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool-call arguments as JSON strings: Arrow (datasets) would otherwise merge every
    call's argument objects into one struct type and add null keys. Written as the template's
    `tojson` writes objects (non-ASCII kept), so both forms render to the same tokens."""
    def as_string(arguments: Any) -> str:
        return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)

    out = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": as_string(call["function"]["arguments"])}}
                for call in message["tool_calls"]]
        out.append(message)
    return out


def _json_list(value: Any) -> list[Any]:
    return list(json.loads(value) if isinstance(value, (str, bytes)) else (value or []))


def train_dpo(pairs: Iterable[Mapping[str, Any]], model_dir: ModelRef | None, out_dir: Path, config: TrainConfig,
              on_log: OnLog | None = None) -> TrainResult:
    """DPO on preference pairs (rows of marts.preference_pairs: prompt, chosen, rejected
    message lists, tools) with TRL's DPOTrainer; LoRA by default, the reference model being
    the base with the adapter disabled. The loss covers every completion token, tool results
    inside a multi-turn completion included (TRL does not mask them). Saves the merged model."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    model_ref = _resolve_config_model(model_dir, config)
    device, bf16 = resolve_precision(config.precision)
    tokenizer = load_tokenizer(model_ref)
    rows = [{"prompt": _arguments_as_json(_json_list(p["prompt"])),
             "chosen": _arguments_as_json(_json_list(p["chosen"])),
             "rejected": _arguments_as_json(_json_list(p["rejected"])),
             "tools": json.dumps(_json_list(p.get("tools")))} for p in pairs]
    if not rows:
        raise ValueError("no preference pairs")
    set_seed(config.seed)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_ref, dtype=torch.float32, attn_implementation="sdpa")
    progress = _Progress()
    with tempfile.TemporaryDirectory(prefix="flywheel-dpo-") as scratch:
        args = DPOConfig(
            output_dir=scratch, beta=config.dpo_beta, max_length=config.max_length,
            per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
            learning_rate=config.learning_rate, num_train_epochs=config.epochs, max_steps=config.max_steps,
            lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_steps,
            max_grad_norm=config.max_grad_norm, bf16=bf16, activation_checkpointing=config.gradient_checkpointing,
            logging_steps=1, save_strategy="no",
            report_to="none", disable_tqdm=True, seed=config.seed, data_seed=config.seed,
            dataloader_num_workers=0, use_cpu=not torch.cuda.is_available())
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer, callbacks=[_metrics_callback(progress, on_log)],
                             peft_config=lora_config(config) if config.method == "lora" else None)
        quiet_trainer(trainer)
        with PeakMemory() as memory:
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            output = trainer.train()
            seconds, cpu_seconds = time.perf_counter() - wall_start, time.process_time() - cpu_start
    result = _result(progress, output.global_step, seconds, cpu_seconds, memory, device, bf16, config)
    result.examples = len(rows)
    result.tokens = int(next((h["num_tokens"] for h in reversed(progress.history) if "num_tokens" in h), 0))
    result.model_dir = save_merged(trainer.model, tokenizer, out_dir, _metadata("dpo", model_ref, result))
    return result
