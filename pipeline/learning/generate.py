"""Use a (trained) model as the agent: assistant turns in the project template, one at a time
or many at once.

    model, tokenizer = load_for_inference(model_dir)
    raw, parsed = generate_assistant_turn(model, tokenizer, messages, tools)
    parsed["tool_calls"]  # [{"id": "call_1", "type": "function", "function": {"name", "arguments"}}]

    engine = generation_engine(model_dir, max_new_tokens=64)
    texts = engine.generate_many([(messages, tools), ...])  # raw turns, in order

`messages` are TRL conversational messages (as in marts.sft_examples), ending where the
assistant should speak. Decoding is greedy unless `temperature > 0`; `seed` makes sampling
reproducible.

Two engines, both greedy, both returning the raw turn before `<|im_end|>`:

* `TransformersEngine`: transformers' `generate`, one conversation at a time. The plain,
  obviously correct path, and the baseline `flywheel bench eval` measures against.
* `BatchedEngine` (the default): evaluation prompts are ~1,500 tokens of which the first
  ~1,300 (system prompt + tool schemas) are the same for every case of a deployment, and on
  a CPU decoding is bound by reading the weights once per token. So the shared system turn
  is read once and its KV cache reused (in prefill, and once per step for a whole batch in
  decoding), and cases are decoded in batches (see the class).
  `flywheel bench eval` checks its predictions against the plain engine's on the same cases.
  Tried and dropped: CTranslate2 4.8.5 (float32, its prompt cache and batching) took
  longer per case here than plain transformers (11 s vs 9 s), and int8 changes greedy outputs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from pipeline.core.training.chat_template import CHAT_TEMPLATE, END_OF_TURN, ParsedTurn, parse_assistant_output
from pipeline.learning.tokenizer import load_tokenizer

Conversation = tuple[list[dict[str, Any]], list[dict[str, Any]] | None]  # (messages, tools)
ENGINES = ("batched", "transformers")


SHARED_PREFIX_ATTENTION = "flywheel_shared_prefix"


def load_for_inference(model_dir: Path | str, attn_implementation: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) on GPU (bf16) when there is one, else CPU (fp32), in eval mode."""
    from transformers import AutoModelForCausalLM

    if attn_implementation == SHARED_PREFIX_ATTENTION:
        register_shared_prefix_attention()
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32,
        attn_implementation=attn_implementation)
    model.to("cuda" if cuda else "cpu").eval()
    return model, load_tokenizer(model_dir)


def prompt_ids(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
    """The conversation in the project template, ending with the assistant's turn opener."""
    encoded = tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=CHAT_TEMPLATE,
                                            add_generation_prompt=True, return_dict=True)
    return list(encoded["input_ids"])


@torch.inference_mode()
def generate_assistant_turn(model: Any, tokenizer: Any, messages: list[dict[str, Any]],
                            tools: list[dict[str, Any]] | None = None, max_new_tokens: int = 256,
                            seed: int = 0, temperature: float = 0.0) -> tuple[str, ParsedTurn]:
    """The model's next assistant turn: (raw generated text without the end marker, parsed)."""
    raw = _generate_ids(model, tokenizer, prompt_ids(tokenizer, messages, tools), max_new_tokens, seed, temperature)
    return raw, parse_assistant_output(raw)


def _generate_ids(model: Any, tokenizer: Any, ids: list[int], max_new_tokens: int, seed: int = 0,
                  temperature: float = 0.0, end_token: str = END_OF_TURN) -> str:
    torch.manual_seed(seed)
    new = _generate_tokens(model, tokenizer, ids, max_new_tokens, temperature, end_token)
    return turn_text(tokenizer, new, end_token)


def _generate_tokens(model: Any, tokenizer: Any, ids: Sequence[int], max_new_tokens: int, temperature: float,
                     end_token: str = END_OF_TURN) -> list[int]:
    """transformers' `generate` on one prompt: the new token ids (sampling draws from torch's
    global generator)."""
    input_ids = torch.tensor([list(ids)], device=model.device)
    sampling = temperature > 0
    output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                            max_new_tokens=max_new_tokens, do_sample=sampling,
                            temperature=temperature if sampling else None, top_p=None, top_k=None,
                            eos_token_id=tokenizer.convert_tokens_to_ids(end_token),
                            pad_token_id=tokenizer.pad_token_id)
    return output[0, input_ids.shape[1]:].tolist()


def shared_prefix_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float | None = None,
                            dropout: float = 0.0, shared_prefix: Any = None,
                            **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention over [a prefix every row shares] + [each row's own keys], the prefix's keys
    and values stored once instead of once per row (`shared_prefix`: a cache holding one
    row). In batched decoding the ~1,300-token system turn is most of every row's context;
    without this every step reads it once per row. One softmax over both parts, so each row
    sees what it would see with the prefix copied into its own cache. Without
    `shared_prefix` (prefill, plain calls) this is transformers' SDPA attention."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if shared_prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    layer = shared_prefix.layers[module.layer_idx]
    prefix_keys, prefix_values = layer.keys[0], layer.values[0]  # (kv heads, prefix, dim)
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads  # query head h reads key/value head h // group
    scale = scaling if scaling is not None else dim ** -0.5
    grouped = query.reshape(batch, kv_heads, group * q_len, dim)
    # the prefix: every row's queries against one copy of its keys, (kv heads, batch*group*q, prefix)
    by_head = grouped.transpose(0, 1).reshape(kv_heads, batch * group * q_len, dim)
    prefix_scores = torch.matmul(by_head, prefix_keys.transpose(1, 2)) * scale
    own_scores = torch.matmul(grouped, key.transpose(2, 3)) * scale  # (batch, kv heads, group*q, own)
    if attention_mask is not None:  # (batch, 1, q, own), bool (True = may attend) or additive
        mask = attention_mask[:, :, None].expand(batch, 1, group, q_len, key.shape[2])
        mask = mask.reshape(batch, 1, group * q_len, key.shape[2])
        own_scores = (own_scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool
                      else own_scores + mask)
    prefix_length = prefix_keys.shape[1]
    prefix_scores = prefix_scores.reshape(kv_heads, batch, group * q_len, prefix_length).transpose(0, 1)
    weights = torch.cat([prefix_scores, own_scores], dim=-1).softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    prefix_weights, own_weights = weights.split([prefix_length, key.shape[2]], dim=-1)
    prefix_part = torch.matmul(
        prefix_weights.transpose(0, 1).reshape(kv_heads, batch * group * q_len, prefix_length), prefix_values)
    prefix_part = prefix_part.reshape(kv_heads, batch, group * q_len, dim).transpose(0, 1)
    output = torch.matmul(own_weights, value) + prefix_part
    return output.reshape(batch, heads, q_len, dim).transpose(1, 2).contiguous(), None


def register_shared_prefix_attention() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
    AttentionMaskInterface.register(SHARED_PREFIX_ATTENTION, sdpa_mask)


@dataclass
class GenerationStats:
    """What an engine did: conversations, prompt and generated tokens, seconds generating."""

    conversations: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served from a cached shared prefix
    new_tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        return out | self.extra


class GenerationEngine(Protocol):
    name: str
    stats: GenerationStats

    def generate_many(self, conversations: Sequence[Conversation]) -> list[str]:
        """The raw assistant turn (before `<|im_end|>`) for every (messages, tools), in order."""
        ...


def turn_text(tokenizer: Any, generated: Sequence[int], end_token: str = END_OF_TURN) -> str:
    """A generated turn as text, without the end marker and what follows it."""
    return tokenizer.decode(list(generated), skip_special_tokens=False).split(end_token, 1)[0]


class TransformersEngine:
    """transformers' `generate`, one conversation at a time (greedy unless asked to sample)."""

    name = "transformers"

    def __init__(self, model_dir: Path | str, max_new_tokens: int = 64, end_token: str = END_OF_TURN) -> None:
        self.model, self.tokenizer = load_for_inference(model_dir)
        self.max_new_tokens, self.end_token = max_new_tokens, end_token
        self.stats = GenerationStats()

    def generate_many(self, conversations: Sequence[Conversation]) -> list[str]:
        encoded = [prompt_ids(self.tokenizer, messages, tools) for messages, tools in conversations]
        self.stats.conversations += len(encoded)
        return [self.text_of(ids) for ids in self.generate_ids(encoded)]

    def text_of(self, generated: Sequence[int]) -> str:
        return turn_text(self.tokenizer, generated, self.end_token)

    @property
    def end_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.end_token)

    def generate_ids(self, prompts: Sequence[list[int]], temperature: float = 0.0,
                     generator: torch.Generator | None = None) -> list[list[int]]:
        """As `BatchedEngine.generate_ids`, one prompt at a time through `generate` (which samples
        from torch's global generator: it is seeded from `generator` before each prompt)."""
        out = []
        for ids in prompts:
            if temperature > 0:
                torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)) if generator is not None else 0)
            started = time.perf_counter()
            with torch.inference_mode():
                new = _generate_tokens(self.model, self.tokenizer, ids, self.max_new_tokens, temperature,
                                       self.end_token)
            self.stats.seconds += time.perf_counter() - started
            self.stats.calls += 1
            self.stats.prompt_tokens += len(ids)
            self.stats.new_tokens += len(new)
            out.append(new)
        return out


def shared_prefix_length(tokenizer: Any, ids: Sequence[int]) -> int:
    """Tokens of the leading system turn (through its `<|im_end|>` and newline), the part
    every case of a deployment shares; 0 when there is none or nothing follows it."""
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end_id not in ids:
        return 0
    length = list(ids).index(end_id) + 1
    if length < len(ids) and tokenizer.decode([ids[length]]) == "\n":
        length += 1
    return length if length < len(ids) else 0


class BatchedEngine:
    """Greedy decoding in plain PyTorch that reads each shared prompt prefix once and decodes
    many conversations together.

    Prefill, one conversation at a time (no padding): conversations are taken in token
    order, so those that share a beginning sit next to each other (every case of a
    deployment shares the ~1,300-token system turn; the cases of one trajectory share its
    whole history up to the earlier decision point). Each prompt starts from the KV cache of
    the longest already-read prefix (one of the last `RECENT_PROMPTS` prompts read, such as the
    same sandbox conversation one turn earlier, or its system turn, read once and kept) and
    runs only the tokens after it.
    Decode, `batch_size` conversations of one system turn at a time: the system turn's cache
    is kept once for the batch (`shared_prefix_attention`), and what follows it in each
    conversation is laid side by side in one preallocated cache (left-aligned so the newest
    tokens line up; a growing cache would copy itself at every token). Each step runs one
    token per row, computing the vocabulary projection for that position only. Positions
    continue each row's own, so every row sees what it would see alone. A row that produced
    `<|im_end|>` leaves the batch at once (its cache is small without the system turn). On a
    CPU a decoding step costs about one read of the weights plus each row's context; the
    shared system turn, most of every context, is read once per step instead of once per row.
    """

    name = "batched"

    # Prompts whose caches are kept for reuse as prefixes (the same trajectory one decision
    # earlier sorts next to its successor): full caches, ~80 MB each for a 1,700-token prompt.
    RECENT_PROMPTS = 16

    def __init__(self, model_dir: Path | str, max_new_tokens: int = 64, batch_size: int = 64,
                 end_token: str = END_OF_TURN) -> None:
        started = time.perf_counter()
        model, tokenizer = load_for_inference(model_dir, attn_implementation=SHARED_PREFIX_ATTENTION)
        self._setup(model, tokenizer, max_new_tokens, batch_size, end_token)
        self.stats.extra["load_seconds"] = time.perf_counter() - started

    @classmethod
    def for_model(cls, model: Any, tokenizer: Any, max_new_tokens: int = 64, batch_size: int = 64,
                  end_token: str = END_OF_TURN) -> BatchedEngine:
        """An engine over a model already in memory (the policy being trained: RL rollouts).
        The model must be loaded with `attn_implementation=SHARED_PREFIX_ATTENTION` (after
        `register_shared_prefix_attention()`); call `reset`
        whenever its weights change."""
        engine = cls.__new__(cls)
        engine._setup(model, tokenizer, max_new_tokens, batch_size, end_token)
        return engine

    def _setup(self, model: Any, tokenizer: Any, max_new_tokens: int, batch_size: int, end_token: str) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.end_token = end_token
        self.end_id = self.tokenizer.convert_tokens_to_ids(end_token)
        self._system_turns: dict[tuple[int, ...], Any] = {}  # system turn -> its KV cache
        self._recent: deque[tuple[list[int], Any]] = deque(maxlen=self.RECENT_PROMPTS)
        self.stats = GenerationStats(extra={"load_seconds": 0.0, "prefill_seconds": 0.0, "decode_seconds": 0.0})

    def reset(self) -> None:
        """Forget every cached prefix (their keys and values belong to the old weights)."""
        self._system_turns.clear()
        self._recent.clear()

    def generate_many(self, conversations: Sequence[Conversation]) -> list[str]:
        encoded = [prompt_ids(self.tokenizer, messages, tools) for messages, tools in conversations]
        self.stats.conversations += len(encoded)
        return [self.text_of(ids) for ids in self.generate_ids(encoded)]

    def text_of(self, generated: Sequence[int]) -> str:
        return turn_text(self.tokenizer, generated, self.end_token)

    def generate_ids(self, prompts: Sequence[list[int]], temperature: float = 0.0,
                     generator: torch.Generator | None = None) -> list[list[int]]:
        """The generated token ids for every prompt (token ids), in order: up to
        `max_new_tokens`, ending with the end marker when the model wrote it. Greedy unless
        `temperature` > 0 (then sampled from softmax(logits / temperature) with `generator`)."""
        groups: dict[tuple[int, ...], list[int]] = {}  # system turn -> its prompts, in token order
        for i in sorted(range(len(prompts)), key=lambda i: prompts[i]):
            groups.setdefault(self._system_turn(prompts[i]), []).append(i)
        out: list[list[int]] = [[] for _ in prompts]
        for system, members in groups.items():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                sample = _sampler(temperature, generator)
                for i, ids in zip(chunk, self._generate([prompts[i] for i in chunk], system, sample)):
                    out[i] = ids
        self.stats.prompt_tokens += sum(len(ids) for ids in prompts)
        return out

    def _system_turn(self, ids: list[int]) -> tuple[int, ...]:
        """The prompt's leading system turn (empty when it has none), read once and kept."""
        system = tuple(ids[:shared_prefix_length(self.tokenizer, ids)])
        if system and system not in self._system_turns:
            with torch.inference_mode():
                self._system_turns[system] = self.model(
                    input_ids=torch.tensor([system], device=self.model.device), use_cache=True,
                    logits_to_keep=1).past_key_values
        return system

    def _known_prefix(self, ids: list[int], system: tuple[int, ...]) -> tuple[int, Any]:
        """(length, cache) of the longest already-read prefix of `ids` (which begin with
        `system`, already read) that leaves at least one token to read (the model must see the
        last token to predict the next)."""
        best, best_cache = (len(system), self._system_turns[system]) if system else (0, None)
        for seen, cache in self._recent:
            common = min(len(os.path.commonprefix([seen, ids])), len(ids) - 1)
            if common > best:
                best, best_cache = common, cache
        return best, best_cache

    @torch.inference_mode()
    def _prefill(self, ids: list[int], system: tuple[int, ...], sample: Sampler) -> tuple[Any, int]:
        """The prompt's KV cache and the first generated token."""
        known, cache = self._known_prefix(ids, system)
        if cache is not None:
            cache = copy.deepcopy(cache)
            excess = cache.get_seq_length() - known
            if excess > 0:
                cache.crop(-excess)
        out = self.model(input_ids=torch.tensor([ids[known:]], device=self.model.device), past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        self._recent.append((ids, out.past_key_values))
        self.stats.cached_prompt_tokens += known
        return out.past_key_values, int(sample(out.logits[:, -1])[0])

    @staticmethod
    def _after(cache: Any, skip: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, (keys, values) of a one-row cache after its first `skip` positions,
        copied so that the full cache can be freed."""
        return [(layer.keys[0, :, skip:].clone(), layer.values[0, :, skip:].clone()) for layer in cache.layers]

    def _batch_cache(self, rows: list[list[tuple[torch.Tensor, torch.Tensor]]], width: int) -> Any:
        """The rows' (keys, values) per layer side by side in one preallocated cache of
        `width` + max_new_tokens slots; row r's n tokens fill slots width-n .. width-1."""
        from transformers import StaticCache

        batch = StaticCache(config=self.model.config, max_cache_len=width + self.max_new_tokens)
        for index, layer in enumerate(batch.layers):
            first = rows[0][index][0]
            keys = first.new_zeros((len(rows), first.shape[0], width, first.shape[2]))
            values = torch.zeros_like(keys)
            for r, row in enumerate(rows):
                row_keys, row_values = row[index]
                n = row_keys.shape[1]
                keys[r, :, width - n:] = row_keys
                values[r, :, width - n:] = row_values
            layer.update(keys, values)
        return batch

    @staticmethod
    def _drop_rows(cache: Any, keep: torch.Tensor) -> None:
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys.index_select(0, keep), layer.values.index_select(0, keep)
            layer.batch_size = len(keep)

    @torch.inference_mode()
    def _generate(self, prompts: list[list[int]], system: tuple[int, ...], sample: Sampler) -> list[list[int]]:
        """Turns (token ids) for prompts that all begin with `system` (possibly empty): its KV
        cache is kept once for the whole batch (see `shared_prefix_attention`), the rows'
        caches hold only what follows it."""
        started = time.perf_counter()
        device = self.model.device
        skip = len(system)
        rows, first = [], []
        for ids in prompts:
            cache, token = self._prefill(ids, system, sample)
            rows.append(self._after(cache, skip))
            first.append(token)
        prefilled = time.perf_counter()
        width = max(len(ids) for ids in prompts) - skip
        cache = self._batch_cache(rows, width)
        del rows
        shared = {"shared_prefix": self._system_turns[system]} if system else {}
        mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        for r, ids in enumerate(prompts):
            mask[r, width - (len(ids) - skip):] = 1
        next_tokens = torch.tensor(first, device=device)
        positions = torch.tensor([len(ids) for ids in prompts], device=device)  # of the next token
        alive = list(range(len(prompts)))  # the prompt each batch row generates for
        generated: list[list[int]] = [[] for _ in prompts]
        finished: set[int] = set()
        for step in range(self.max_new_tokens):
            for b, row in enumerate(alive):
                if row not in finished:
                    token = int(next_tokens[b])
                    generated[row].append(token)
                    if token == self.end_id or step + 1 == self.max_new_tokens:
                        finished.add(row)
            keep = [b for b, row in enumerate(alive) if row not in finished]
            if not keep:
                break
            if len(keep) < len(alive):  # finished rows leave at once: a row's cache is small without the system turn
                index = torch.tensor(keep, device=device)
                self._drop_rows(cache, index)
                next_tokens, mask, positions = next_tokens[index], mask[index], positions[index]
                alive = [alive[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=-1)
            out = self.model(input_ids=next_tokens[:, None], attention_mask=mask, position_ids=positions[:, None],
                             past_key_values=cache, use_cache=True, **shared)
            positions = positions + 1
            next_tokens = sample(out.logits[:, -1])
        done = time.perf_counter()
        self.stats.seconds += done - started
        self.stats.extra["prefill_seconds"] += prefilled - started
        self.stats.extra["decode_seconds"] += done - prefilled
        self.stats.calls += 1
        self.stats.new_tokens += sum(len(g) for g in generated)
        return generated


Sampler = Callable[[torch.Tensor], torch.Tensor]  # (rows, vocab) logits -> (rows,) token ids


def _sampler(temperature: float, generator: torch.Generator | None) -> Sampler:
    """argmax, or sampling at `temperature` (no top-k/top-p: RL needs the policy's own
    distribution, the one its log-probabilities are computed under)."""
    if temperature <= 0:
        return lambda logits: logits.argmax(-1)

    def sample(logits: torch.Tensor) -> torch.Tensor:
        # drawn on the CPU: one generator (a CPU one) serves any device, and a seed gives the
        # same draws on a GPU as here
        probabilities = torch.softmax(logits.float() / temperature, dim=-1).cpu()
        return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1).to(logits.device)

    return sample


class CachedEngine:
    """An engine's greedy outputs remembered in a JSON-lines file, keyed by the conversation:
    with the same model, engine and token limit a prompt always gives the same turn, so a
    nightly evaluation generates only for cases and sandbox turns it has not seen (the base
    model and the champion are judged again on mostly the same cases). The model is loaded
    on the first miss. `identity` must change whenever the weights do (a registered version,
    a base model directory's name and digest)."""

    def __init__(self, make_engine: Callable[[], GenerationEngine], path: Path) -> None:
        self._make_engine = make_engine
        self._engine: GenerationEngine | None = None
        self.path = Path(path)
        self.name = "cached"
        self.hits = 0
        self._known: dict[str, str] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut short by a crash: generate that one again
                    continue
                self._known[entry["key"]] = entry["text"]

    @property
    def stats(self) -> GenerationStats:
        stats = self._engine.stats if self._engine is not None else GenerationStats()
        stats.extra["cache_hits"] = self.hits
        return stats

    @staticmethod
    def key(conversation: Conversation) -> str:
        messages, tools = conversation
        text = json.dumps([messages, tools or []], sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def generate_many(self, conversations: Sequence[Conversation]) -> list[str]:
        keys = [self.key(c) for c in conversations]
        missing = [i for i, key in enumerate(keys) if key not in self._known]
        self.hits += len(keys) - len(missing)
        if missing:
            if self._engine is None:
                self._engine = self._make_engine()
            texts = self._engine.generate_many([conversations[i] for i in missing])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                for i, text in zip(missing, texts):
                    self._known[keys[i]] = text
                    handle.write(json.dumps({"key": keys[i], "text": text}, ensure_ascii=False) + "\n")
        return [self._known[key] for key in keys]


def generation_engine(model_dir: Path | str, engine: str = "batched", max_new_tokens: int = 64,
                      batch_size: int = 64) -> GenerationEngine:
    """`batched` (the default) or `transformers` (plain generate, one at a time)."""
    if engine == "transformers":
        return TransformersEngine(model_dir, max_new_tokens)
    if engine == "batched":
        return BatchedEngine(model_dir, max_new_tokens, batch_size)
    raise ValueError(f"unknown generation engine {engine!r} (one of {', '.join(ENGINES)})")
