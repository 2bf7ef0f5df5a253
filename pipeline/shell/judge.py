"""The judge behind an OpenAI-compatible chat completions endpoint (any server the team runs:
vLLM, TGI, `transformers serve`, a hosted API). One request per trajectory, greedy."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.core.judge import RUBRIC_VERSION, Verdict, judge_request, parse_verdict

RETRIES = 3


class JudgeUnavailable(RuntimeError):
    """The endpoint did not answer after retries; the message names it (never the key)."""


@dataclass(frozen=True)
class JudgeLabel:
    verdict: Verdict | None  # None: the reply could not be read as a verdict
    reply: str
    model: str  # as the server names the model that answered
    rubric_version: str = RUBRIC_VERSION


class JudgeClient:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 max_tokens: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def label(self, messages: Sequence[Mapping[str, Any]]) -> JudgeLabel:
        body = {"model": self.model, "messages": judge_request(messages), "temperature": 0,
                "max_tokens": self.max_tokens}
        reply = self._post(body)
        text = reply["choices"][0]["message"].get("content") or ""
        return JudgeLabel(parse_verdict(text), text, str(reply.get("model") or self.model))

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        error: Exception | None = None
        for attempt in range(RETRIES):
            try:
                response = self._http.post(url, json=body)
                if response.status_code < 500:
                    response.raise_for_status()
                    return dict(response.json())
                error = httpx.HTTPStatusError(f"{response.status_code}", request=response.request, response=response)
            except (httpx.TransportError, httpx.HTTPStatusError) as err:
                if isinstance(err, httpx.HTTPStatusError) and err.response.status_code < 500:
                    raise JudgeUnavailable(f"judge at {url} refused the request: {err.response.status_code} "
                                           f"{err.response.text[:200]}") from None
                error = err
            time.sleep(2**attempt)
        raise JudgeUnavailable(f"judge at {url} did not answer after {RETRIES} tries: {error}")

    def close(self) -> None:
        self._http.close()
