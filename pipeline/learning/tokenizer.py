"""A model's tokenizer with the project's chat template set (transformers)."""

from __future__ import annotations

from typing import Any

from pipeline.core.training.chat_template import CHAT_TEMPLATE, END_OF_TURN


def load_tokenizer(model_ref: Any):
    """The tokenizer of a model directory (or hub id) with the project template set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = END_OF_TURN
    return tokenizer
