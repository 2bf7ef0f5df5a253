"""From conversational examples to packed training rows: loss masks, truncation, packing.

    SFTExample(messages, tools, weight)            one row of marts.sft_examples
      → tokenize_example   TokenizedExample       input_ids, labels (-100 outside the
                                                   assistant's generations), prefix_len
      → pack_examples      PackedRow              several examples in one row, with a
                                                   segment id per token
      → PackedCollator     batch of tensors       input_ids, labels, position_ids,
        (pipeline.learning.collator, torch)        4D attention mask, per-token loss weights

Loss mask. The project template wraps every assistant output in `{% generation %}`, so
`apply_chat_template(..., return_assistant_tokens_mask=True)` marks exactly the tokens the
model must learn to produce (content, `<tool_call>` lines, the closing `<|im_end|>`); all
others get label -100.

Packing. Agent conversations all start with the same long system turn (system prompt +
every tool's JSON schema: ~1,400 of ~1,900 tokens in our marts), and lengths vary. Two
things keep compute on useful tokens:

* Best-fit-decreasing packing: examples are placed, longest first, into the fullest row
  they still fit in (rows of `capacity` tokens), so rows are nearly full and batches carry
  little padding.
* Shared prefix: examples whose leading system turn tokenises identically are packed
  behind ONE copy of it. Each example's own tokens (the "suffix") see the shared prefix and
  themselves, never the other suffixes in the row; their position ids continue after the
  prefix, exactly as if the example were alone. Because the prefix is causal and carries
  no labels, its hidden states are the same as in each separate sequence, so the loss and
  gradients equal those of training the examples one by one (tested), while the
  prefix is computed once per row instead of once per example.

Attention isolation is enforced by an explicit 4D boolean mask (batch, 1, L, L) that the
collator builds from per-token segment ids: token i may attend token j iff j ≤ i and j is
in i's segment or in the prefix segment i's segment continues. transformers 5 passes a 4D
mask through to SDPA/eager attention unchanged, so this works on CPU and GPU alike (not
with flash-attention kernels, which take no 4D mask: the training code loads models with
`attn_implementation="sdpa"`). Padding at the end of a row is a segment of its own.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.training.chat_template import CHAT_TEMPLATE

IGNORE = -100
PREFIX_END = "<|im_end|>\n"


@dataclass(frozen=True)
class SFTExample:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    weight: float = 1.0


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def as_sft_example(row: Mapping[str, Any] | SFTExample) -> SFTExample:
    """Accept a mart row (JSON strings or decoded lists) or an SFTExample."""
    if isinstance(row, SFTExample):
        return row
    weight = row.get("weight")
    return SFTExample(messages=list(_json(row["messages"]) or []), tools=list(_json(row.get("tools")) or []),
                      weight=1.0 if weight is None else float(weight))


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE except on assistant-generated tokens
    weight: float
    prefix_len: int  # tokens of the leading system turn (shareable); 0 when there is none
    truncated: bool

    @property
    def n_assistant(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def tokenize_example(tokenizer: Any, example: SFTExample, max_length: int) -> TokenizedExample | None:
    """Tokens and labels of one conversation, cut to `max_length`; None when no assistant
    token is left to learn from."""
    encoded = tokenizer.apply_chat_template(
        example.messages, tools=example.tools or None, chat_template=CHAT_TEMPLATE,
        return_dict=True, return_assistant_tokens_mask=True)
    ids = list(encoded["input_ids"])
    mask = list(encoded["assistant_masks"])
    labels = [t if m else IGNORE for t, m in zip(ids, mask)]
    labels[0] = IGNORE  # nothing predicts the first token
    prefix_len = 0
    text = tokenizer.apply_chat_template(example.messages, tools=example.tools or None,
                                         chat_template=CHAT_TEMPLATE, tokenize=False)
    if text.startswith("<|im_start|>system\n") and PREFIX_END in text:
        end_char = text.index(PREFIX_END) + len(PREFIX_END)
        if end_char < len(text):
            token = encoded.char_to_token(0, end_char)
            prefix_len = token if token is not None else 0
    truncated = len(ids) > max_length
    ids, labels = ids[:max_length], labels[:max_length]
    if prefix_len >= len(ids) or all(label == IGNORE for label in labels):
        return None
    return TokenizedExample(ids, labels, float(example.weight), prefix_len, truncated)


@dataclass
class TokenizeStats:
    examples: int = 0
    kept: int = 0
    dropped: int = 0  # nothing left to learn after truncation
    truncated: int = 0
    tokens: int = 0
    assistant_tokens: int = 0


def tokenize_examples(tokenizer: Any, examples: Iterable[Mapping[str, Any] | SFTExample],
                      max_length: int) -> tuple[list[TokenizedExample], TokenizeStats]:
    kept: list[TokenizedExample] = []
    stats = TokenizeStats()
    for row in examples:
        stats.examples += 1
        item = tokenize_example(tokenizer, as_sft_example(row), max_length)
        if item is None:
            stats.dropped += 1
            continue
        kept.append(item)
        stats.kept += 1
        stats.truncated += item.truncated
        stats.tokens += len(item.input_ids)
        stats.assistant_tokens += item.n_assistant
    return kept, stats


def normalise_weights(examples: list[TokenizedExample]) -> list[TokenizedExample]:
    """Rescale weights so their mean over supervised tokens is 1: the weighted loss stays on
    the cross-entropy scale, and a weight-2 example still pulls twice as hard as weight 1."""
    total = sum(e.n_assistant for e in examples)
    mean = sum(e.weight * e.n_assistant for e in examples) / total if total else 1.0
    if mean <= 0:
        raise ValueError("example weights must be positive")
    return [TokenizedExample(e.input_ids, e.labels, e.weight / mean, e.prefix_len, e.truncated) for e in examples]


@dataclass(frozen=True)
class PackedRow:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    weights: list[float]  # loss weight per token: the example weight on supervised tokens
    segment_ids: list[int]  # segment of each token; a shared prefix is a segment too
    parent_ids: list[int]  # the prefix segment a token's segment continues, or -1
    n_examples: int
    n_example_tokens: int  # tokens of the examples as if unpacked (prefix counted per example)
    n_assistant: int

    def __len__(self) -> int:
        return len(self.input_ids)


def _best_fit_decreasing(sizes: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `sizes` grouped into bins of `capacity`, best fit, largest first."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    free: list[tuple[int, int]] = []  # sorted (free space, bin index)
    bins: list[list[int]] = []
    for i in order:
        if sizes[i] > capacity:
            raise ValueError(f"item of {sizes[i]} tokens exceeds the row capacity {capacity}")
        at = bisect.bisect_left(free, (sizes[i], -1))
        if at < len(free):
            space, b = free.pop(at)
        else:
            space, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if space - sizes[i] > 0:
            bisect.insort(free, (space - sizes[i], b))
    return bins


class _RowBuilder:
    def __init__(self) -> None:
        self.ids: list[int] = []
        self.labels: list[int] = []
        self.pos: list[int] = []
        self.weights: list[float] = []
        self.seg: list[int] = []
        self.parent: list[int] = []
        self.n_examples = self.n_example_tokens = self.n_assistant = 0

    def add(self, ids: Sequence[int], labels: Sequence[int], first_position: int, weight: float,
            parent: int) -> int:
        segment = (self.seg[-1] + 1) if self.seg else 0
        self.ids += ids
        self.labels += labels
        self.pos += range(first_position, first_position + len(ids))
        self.weights += [weight if label != IGNORE else 0.0 for label in labels]
        self.seg += [segment] * len(ids)
        self.parent += [parent] * len(ids)
        return segment

    def row(self) -> PackedRow:
        return PackedRow(self.ids, self.labels, self.pos, self.weights, self.seg, self.parent,
                         self.n_examples, self.n_example_tokens, self.n_assistant)


def pack_examples(examples: Sequence[TokenizedExample], capacity: int, share_prefix: bool = True) -> list[PackedRow]:
    """Pack examples into rows of at most `capacity` tokens (see the module docstring)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, example in enumerate(examples):
        key = tuple(example.input_ids[:example.prefix_len]) if share_prefix and example.prefix_len else ()
        groups.setdefault(key, []).append(i)
    rows: list[PackedRow] = []
    for prefix, members in groups.items():
        p = len(prefix)
        sizes = [len(examples[i].input_ids) - p for i in members]
        for bin_ in _best_fit_decreasing(sizes, capacity - p):
            builder = _RowBuilder()
            parent = builder.add(prefix, [IGNORE] * p, 0, 0.0, -1) if p else -1
            for k in bin_:
                example = examples[members[k]]
                builder.add(example.input_ids[p:], example.labels[p:], p, example.weight, parent)
                builder.n_examples += 1
                builder.n_example_tokens += len(example.input_ids)
                builder.n_assistant += example.n_assistant
            rows.append(builder.row())
    return rows


def single_rows(examples: Sequence[TokenizedExample]) -> list[PackedRow]:
    """One example per row (packing off)."""
    rows = []
    for example in examples:
        builder = _RowBuilder()
        builder.add(example.input_ids, example.labels, 0, example.weight, -1)
        builder.n_examples, builder.n_example_tokens = 1, len(example.input_ids)
        builder.n_assistant = example.n_assistant
        rows.append(builder.row())
    return rows


@dataclass(frozen=True)
class PrefixBatch:
    """Examples that share one system turn (`prefix`): the model reads the prefix once and
    the remainders as a batch behind its KV cache (see `prefix_batches`)."""

    prefix: list[int]
    remainders: list[list[int]]  # each example's tokens after the prefix
    labels: list[list[int]]  # their labels (IGNORE outside assistant generations)
    weights: list[float]  # example weights
    n_assistant: int

    def __len__(self) -> int:
        return len(self.prefix) + len(self.remainders) * max(len(r) for r in self.remainders)


def prefix_batches(examples: Sequence[TokenizedExample], capacity: int) -> list[PrefixBatch]:
    """Batches of examples with the same leading system turn, each at most `capacity` token
    positions (the prefix once, plus the remainders padded to the longest of the batch).

    The alternative to packed rows: a packed row holds the prefix and two or three
    remainders, but its attention is a dense (L, L) matrix, ~45 % of a training step on a
    CPU, of which the block-diagonal mask uses a third. Here each remainder attends to the
    prefix and itself only, and the prefix runs once per batch. The gradient reaching the
    prefix is the sum over the batch, as in a packed row: the same loss and gradients as
    training the examples one by one (tested). Remainders are grouped longest first, so a
    batch pads little."""
    groups: dict[tuple[int, ...], list[TokenizedExample]] = {}
    for example in examples:
        groups.setdefault(tuple(example.input_ids[:example.prefix_len]), []).append(example)
    batches: list[PrefixBatch] = []
    for prefix, members in groups.items():
        p = len(prefix)
        members = sorted(members, key=lambda e: -len(e.input_ids))
        start = 0
        while start < len(members):
            longest = len(members[start].input_ids) - p
            if p + longest > capacity:
                raise ValueError(f"example of {p + longest} tokens exceeds the batch capacity {capacity}")
            size = max(1, (capacity - p) // longest)
            chunk = members[start:start + size]
            batches.append(PrefixBatch(list(prefix), [e.input_ids[p:] for e in chunk], [e.labels[p:] for e in chunk],
                                       [e.weight for e in chunk], sum(e.n_assistant for e in chunk)))
            start += size
    return batches


def batch_padding_fraction(row_lengths: Sequence[int], batch_size: int) -> float:
    """Padding share when rows are batched in this order, each batch padded to its longest."""
    slots = real = 0
    for start in range(0, len(row_lengths), batch_size):
        batch = row_lengths[start:start + batch_size]
        slots += max(batch) * len(batch)
        real += sum(batch)
    return 1 - real / slots if slots else 0.0


@dataclass(frozen=True)
class PackingReport:
    """How much of the compute goes to example tokens, naive batching vs packed rows."""
    example_tokens: int  # tokens of all examples, unpacked
    naive_slots: int  # token slots with shuffled batches of `batch_size` examples, padded
    packed_slots: int  # token slots of the packed rows in batches of `rows_per_batch`
    naive_padding_fraction: float
    packed_padding_fraction: float

    @property
    def slot_reduction(self) -> float:
        return self.naive_slots / self.packed_slots if self.packed_slots else 0.0


def packing_report(examples: Sequence[TokenizedExample], rows: Sequence[PackedRow], batch_size: int,
                   rows_per_batch: int, seed: int = 0) -> PackingReport:
    lengths = [len(e.input_ids) for e in examples]
    random.Random(seed).shuffle(lengths)
    naive_slots = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size])
                      for i in range(0, len(lengths), batch_size))
    row_lengths = [len(r) for r in rows]
    random.Random(seed).shuffle(row_lengths)
    packed_slots = sum(max(row_lengths[i:i + rows_per_batch]) * len(row_lengths[i:i + rows_per_batch])
                       for i in range(0, len(row_lengths), rows_per_batch))
    return PackingReport(sum(len(e.input_ids) for e in examples), naive_slots, packed_slots,
                         batch_padding_fraction(lengths, batch_size),
                         batch_padding_fraction(row_lengths, rows_per_batch))
