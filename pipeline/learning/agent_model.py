"""The fine-tuned agent as an MLflow pyfunc model.

The registered version carries the merged model directory as an artifact and loads it
with transformers from local files only, so it works with no network and no hub id (a
PEFT adapter logged with mlflow.transformers would point at its base model on the hub).
Input: a DataFrame with `messages` and `tools` (JSON text or lists); output: one assistant
turn per row, as JSON text ({content, tool_calls, parse_errors}).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow


class AgentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from pipeline.learning.generate import load_for_inference

        self.model, self.tokenizer = load_for_inference(context.artifacts["model_dir"])

    # model_input (a DataFrame) is left unannotated: MLflow validates annotated inputs as list[...]
    def predict(self, context: Any, model_input, params: dict[str, Any] | None = None) -> list[str]:
        from pipeline.learning.generate import generate_assistant_turn

        params = params or {}
        outputs = []
        for row in model_input.to_dict("records"):
            messages, tools = (json.loads(v) if isinstance(v, str) else v
                               for v in (row["messages"], row.get("tools") or "[]"))
            _, parsed = generate_assistant_turn(
                self.model, self.tokenizer, messages, tools,
                max_new_tokens=int(params.get("max_new_tokens", 128)), seed=int(params.get("seed", 0)),
            )
            outputs.append(json.dumps(parsed))
        return outputs
