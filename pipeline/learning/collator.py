"""Training batches (pipeline.core.training.packing) to tensors: packed rows with the 4D
attention mask that keeps each packed example to its own tokens and its shared prefix, and
prefix batches (the shared prefix once, the remainders padded behind it)."""

from __future__ import annotations

import torch

from pipeline.core.training.packing import IGNORE, PackedRow, PrefixBatch


def attention_mask_4d(segment_ids: torch.Tensor, parent_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) segment/parent ids → (B, 1, L, L) bool, True where query i may attend key j."""
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    query_seg, key_seg = segment_ids[:, :, None], segment_ids[:, None, :]
    query_parent = parent_ids[:, :, None]
    allowed = (key_seg == query_seg) | (key_seg == query_parent)
    return (allowed & causal)[:, None]


class PackedCollator:
    """Rows → tensors. Rows are right-padded to the longest in the batch; the padding is a
    segment of its own with label -100 and weight 0."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[PackedRow]) -> dict[str, torch.Tensor]:
        length = max(len(r) for r in rows)
        ids, labels, pos, weights, seg, parent = [], [], [], [], [], []
        for r in rows:
            pad = length - len(r)
            pad_segment = (r.segment_ids[-1] + 1) if r.segment_ids else 0
            ids.append(r.input_ids + [self.pad_token_id] * pad)
            labels.append(r.labels + [IGNORE] * pad)
            pos.append(r.position_ids + list(range(pad)))
            weights.append(r.weights + [0.0] * pad)
            seg.append(r.segment_ids + [pad_segment] * pad)
            parent.append(r.parent_ids + [-1] * pad)
        segment_ids, parent_ids = torch.tensor(seg), torch.tensor(parent)
        real = sum(len(r) for r in rows)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "position_ids": torch.tensor(pos),
            "attention_mask": attention_mask_4d(segment_ids, parent_ids),
            "loss_weights": torch.tensor(weights, dtype=torch.float32),
            # bookkeeping, removed before the forward pass
            "n_examples": torch.tensor(sum(r.n_examples for r in rows)),
            "n_example_tokens": torch.tensor(sum(r.n_example_tokens for r in rows)),
            "n_assistant": torch.tensor(sum(r.n_assistant for r in rows)),
            "n_real_tokens": torch.tensor(real),
            "n_padding": torch.tensor(length * len(rows) - real),
        }


COUNTER_KEYS = ("n_examples", "n_example_tokens", "n_assistant", "n_real_tokens", "n_padding")


class PrefixBatchCollator:
    """One PrefixBatch → tensors: `prefix_ids` (1, P), the remainders right-padded (B, S) with
    their attention mask over prefix + remainder (B, P + S), positions continuing after the
    prefix, labels (IGNORE on padding) and per-token loss weights."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batches: list[PrefixBatch]) -> dict[str, torch.Tensor]:
        if len(batches) != 1:
            raise ValueError("prefix batches are already batches: use a batch size of 1")
        batch = batches[0]
        p, width = len(batch.prefix), max(len(r) for r in batch.remainders)
        ids, labels, weights, mask = [], [], [], []
        for remainder, label, weight in zip(batch.remainders, batch.labels, batch.weights):
            pad = width - len(remainder)
            ids.append(remainder + [self.pad_token_id] * pad)
            labels.append(label + [IGNORE] * pad)
            weights.append([weight if x != IGNORE else 0.0 for x in label] + [0.0] * pad)
            mask.append([1] * (p + len(remainder)) + [0] * pad)
        real = sum(len(r) for r in batch.remainders)
        rows = len(batch.remainders)
        return {
            "prefix_ids": torch.tensor([batch.prefix], dtype=torch.long),
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "position_ids": torch.arange(p, p + width).repeat(rows, 1),
            "attention_mask": torch.tensor(mask),
            "loss_weights": torch.tensor(weights, dtype=torch.float32),
            "n_examples": torch.tensor(rows),
            "n_example_tokens": torch.tensor(p * rows + real),
            "n_assistant": torch.tensor(batch.n_assistant),
            "n_real_tokens": torch.tensor(p + real),
            "n_padding": torch.tensor(width * rows - real),
        }
