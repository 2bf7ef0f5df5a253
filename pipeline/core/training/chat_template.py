"""The project's chat template (ChatML + tool calls) and the parser of generated turns.

SmolLM2's own template knows only `role`/`content`: no tools, no tool calls, no loss mask.
This template keeps SmolLM2's ChatML framing and adds, in the style of Hermes/Qwen tool use:

    <|im_start|>system
    {system prompt}

    # Tools
    ... one JSON function schema per line inside <tools></tools> ...<|im_end|>
    <|im_start|>user
    {content}<|im_end|>
    <|im_start|>assistant
    {content}
    <tool_call>{"name": "lookup_order", "arguments": {"order_id": "O-1"}}</tool_call><|im_end|>
    <|im_start|>tool
    {tool result}<|im_end|>

Everything the assistant generates (its content, its tool calls and the closing `<|im_end|>`)
sits inside `{% generation %}...{% endgeneration %}`, so
`tokenizer.apply_chat_template(..., return_assistant_tokens_mask=True)` marks exactly the
tokens the model is trained on. Tool-call ids are not rendered (the model never has to
produce them); `parse_assistant_output` numbers the calls it parses.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
END_OF_TURN = "<|im_end|>"

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to help with the request. "
    "The functions, one JSON schema per line:\n<tools>\n"
)
TOOLS_POSTAMBLE = (
    "</tools>\n\nTo call a function, write one line per call:\n"
    '<tool_call>{"name": <function-name>, "arguments": <arguments-json-object>}</tool_call>'
)

# Jinja: `{%-`/`-%}` strip the template's own newlines; every newline in the output is an
# explicit "\n" string, so the rendering is exactly the documented layout above.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(start=0) -%}"
    # System turn: the first system message and/or the tools list.
    "{%- if (messages and messages[0].role == 'system') or tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{{- messages[0].content if messages[0].content is defined else '' -}}"
    "{%- set ns.start = 1 -%}"
    "{%- if tools -%}{{- '\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- if tools -%}"
    "{{- " + json.dumps(TOOLS_PREAMBLE) + " -}}"
    "{%- for tool in tools -%}"
    "{{- (tool.function if tool.function is defined else tool) | tojson -}}{{- '\\n' -}}"
    "{%- endfor -%}"
    "{{- " + json.dumps(TOOLS_POSTAMBLE) + " -}}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    # The other turns.
    "{%- for message in messages[ns.start:] -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{%- if message.content is defined and message.content -%}{{- message.content -}}{%- endif -%}"
    "{%- if message.tool_calls is defined and message.tool_calls -%}"
    "{%- for call in message.tool_calls -%}"
    "{%- if (message.content is defined and message.content) or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{{- '<tool_call>{\"name\": ' -}}{{- fn.name | tojson -}}{{- ', \"arguments\": ' -}}"
    "{%- if fn.arguments is string -%}{{- fn.arguments -}}"
    "{%- elif fn.arguments is defined -%}{{- fn.arguments | tojson -}}"
    "{%- else -%}{{- '{}' -}}{%- endif -%}"
    "{{- '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{{- message.content if message.content is defined and message.content is not none else '' -}}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


class ToolCall(TypedDict):
    id: str
    type: str
    function: dict[str, Any]  # {"name": str, "arguments": dict}


class ParsedTurn(TypedDict):
    content: str | None
    tool_calls: list[ToolCall]
    parse_errors: list[str]  # one line per tool call that could not be read; never raised


_CALL = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


def _read_call(body: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(body.strip())
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON in tool call: {exc.msg} (at char {exc.pos}): {body.strip()[:200]!r}"
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return None, f"tool call without a function name: {body.strip()[:200]!r}"
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):  # some models write the OpenAI string form
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return None, f"tool call {value['name']}: arguments are not JSON: {arguments[:200]!r}"
    if not isinstance(arguments, dict):
        return None, f"tool call {value['name']}: arguments are {type(arguments).__name__}, not an object"
    return {"name": value["name"], "arguments": arguments}, None


def parse_assistant_output(text: str) -> ParsedTurn:
    """Split a generated assistant turn into content and tool calls.

    Stops at the first `<|im_end|>`. Whitespace around calls is ignored. A call that is not
    valid JSON, has no name, or has non-object arguments is skipped and described in
    `parse_errors`; so is an unclosed `<tool_call>` (e.g. generation ran out of tokens).
    Calls get ids `call_1`, `call_2`, ... in order.
    """
    text = text.split(END_OF_TURN, 1)[0]
    calls: list[ToolCall] = []
    errors: list[str] = []
    pieces: list[str] = []
    position = 0
    for match in _CALL.finditer(text):
        pieces.append(text[position:match.start()])
        position = match.end()
        call, error = _read_call(match.group(1))
        if error:
            errors.append(error)
        elif call:
            calls.append({"id": f"call_{len(calls) + 1}", "type": "function", "function": call})
    rest = text[position:]
    if TOOL_CALL_OPEN in rest:
        before, _, unclosed = rest.partition(TOOL_CALL_OPEN)
        errors.append(f"unclosed tool call: {unclosed.strip()[:200]!r}")
        rest = before
    pieces.append(rest)
    content = "\n".join(p.strip() for p in pieces if p.strip()) or None
    return {"content": content, "tool_calls": calls, "parse_errors": errors}


def render_conversation(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                        add_generation_prompt: bool = False) -> str:
    """The conversation as text in the project template (for debugging and tests)."""
    return tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=CHAT_TEMPLATE,
                                         add_generation_prompt=add_generation_prompt, tokenize=False)
