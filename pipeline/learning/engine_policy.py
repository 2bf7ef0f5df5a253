"""A model behind a generation engine as an evaluation `Policy` (pipeline.evaluation.policy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.core.training.chat_template import parse_assistant_output
from pipeline.evaluation.policy import Message, Tools, turn_message


class EnginePolicy:
    """A model behind a generation engine (`pipeline.learning.generate`): `act_many` hands
    many conversations to the engine at once (it batches them and shares their prefix)."""

    greedy = True  # the seed changes nothing: conversations with different seeds share a batch

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._parse = parse_assistant_output

    def act(self, messages: list[Message], tools: Tools, seed: int) -> Message:
        return self.act_many([(messages, tools)], seed)[0]

    def act_many(self, conversations: Sequence[tuple[list[Message], Tools]], seed: int) -> list[Message]:
        """Greedy decoding: the seed changes nothing and is accepted for the protocol."""
        texts = self.engine.generate_many([(list(m), t) for m, t in conversations])
        return [turn_message(text, self._parse(text), messages) for text, (messages, _) in zip(texts, conversations)]


def engine_policy(model_dir: str, engine: str = "auto", max_new_tokens: int = 64,
                  cache_root: str | None = None) -> EnginePolicy:
    """The model in `model_dir` as a policy, behind `pipeline.learning.generate`'s engine
    (imported when called: it loads torch)."""
    from pipeline.learning.generate import generation_engine

    return EnginePolicy(generation_engine(model_dir, engine, max_new_tokens, cache_root=cache_root))
