"""Use a (trained) model as the agent: one assistant turn at a time, in the project template.

    model, tokenizer = load_for_inference(model_dir)
    raw, parsed = generate_assistant_turn(model, tokenizer, messages, tools)
    parsed["tool_calls"]  # [{"id": "call_1", "type": "function", "function": {"name", "arguments"}}]

`messages` are TRL conversational messages (as in marts.sft_examples), ending where the
assistant should speak. Decoding is greedy unless `temperature > 0`; `seed` makes sampling
reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.training.chat_template import (CHAT_TEMPLATE, END_OF_TURN, ParsedTurn, load_tokenizer,
                                             parse_assistant_output)


def load_for_inference(model_dir: Path | str) -> tuple[Any, Any]:
    """(model, tokenizer) on GPU (bf16) when there is one, else CPU (fp32), in eval mode."""
    from transformers import AutoModelForCausalLM

    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32)
    model.to("cuda" if cuda else "cpu").eval()
    return model, load_tokenizer(model_dir)


@torch.inference_mode()
def generate_assistant_turn(model: Any, tokenizer: Any, messages: list[dict[str, Any]],
                            tools: list[dict[str, Any]] | None = None, max_new_tokens: int = 256,
                            seed: int = 0, temperature: float = 0.0) -> tuple[str, ParsedTurn]:
    """The model's next assistant turn: (raw generated text without the end marker, parsed)."""
    inputs = tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=CHAT_TEMPLATE,
                                           add_generation_prompt=True, return_dict=True, return_tensors="pt")
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    torch.manual_seed(seed)
    sampling = temperature > 0
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=sampling,
                            temperature=temperature if sampling else None, top_p=None, top_k=None,
                            eos_token_id=end_id, pad_token_id=tokenizer.pad_token_id)
    new_tokens = output[0, inputs["input_ids"].shape[1]:]
    raw = tokenizer.decode(new_tokens, skip_special_tokens=False).split(END_OF_TURN, 1)[0]
    return raw, parse_assistant_output(raw)
