"""pipeline.core.formats.react_chat: ReAct text inside chat messages becomes reasoning, tool calls
and tool steps, on realistic multi-turn logs (HotpotQA / WebShop / AgentInstruct DB, LangChain),
and whatever the text, it never raises and never drops or merges a message (hypothesis)."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.formats.react_chat import structure_react_steps
from pipeline.core.record import Consent, Outcome, Provenance, Step, ToolCall, Trajectory, trajectory_from_dict


def chat(*messages: tuple[str, str]) -> list[Step]:
    """Steps as the openai_chat adapter reads text-only messages."""
    return [Step(i, role, content) for i, (role, content) in enumerate(messages)]


def shape(steps: list[Step]) -> list[tuple[str, str | None, str | None]]:
    return [(s.role, s.content, s.tool_call_id) for s in steps]


def calls(step: Step) -> list[tuple[str, str, dict]]:
    return [(c.id, c.name, c.arguments) for c in step.tool_calls]


def only_call(text: str) -> tuple[str, dict]:
    """The one call parsed from one assistant message."""
    [step] = structure_react_steps(chat(("assistant", text)))
    assert step.flag is None, text
    [(_, name, arguments)] = calls(step)
    return name, arguments


# --- realistic dialogues ----------------------------------------------------------------------

HOTPOT = chat(
    ("system", "Solve a question answering task with interleaving Thought, Action, Observation steps."),
    ("user", "Question: Which magazine was started first, Arthur's Magazine or First for Women?"),
    ("assistant", "Thought 1: I need to search Arthur's Magazine and First for Women, and find which was "
                  "started first.\nAction 1: Search[Arthur's Magazine]"),
    ("user", "Observation 1: Arthur's Magazine (1844-1846) was an American literary periodical."),
    ("assistant", "Thought 2: Arthur's Magazine was started in 1844. I need to search First for Women next.\n"
                  "Action 2: Search[First for Women]"),
    ("user", "Observation 2: First for Women is a woman's magazine published by Bauer Media Group in the USA."
             " The magazine was started in 1989."),
    ("assistant", "Thought 3: I should check when Bauer Media Group was founded too.\n"
                  "Action 3: Lookup[founded]"),
    ("user", "Observation 3: (Result 1 / 1) Bauer Media Group was founded in 1875."),
    ("assistant", "Thought 4: First for Women was started in 1989. 1844 (Arthur's Magazine) < 1989 (First for"
                  " Women), so Arthur's Magazine was started first.\nAction 4: Finish[Arthur's Magazine]"),
    ("user", "Your answer is correct."),
)


def test_hotpotqa_dialogue_of_ten_turns() -> None:
    out = structure_react_steps(HOTPOT)
    assert [s.index for s in out] == list(range(10))
    assert shape(out) == [
        ("system", HOTPOT[0].content, None),
        ("user", HOTPOT[1].content, None),
        ("assistant", None, None),
        ("tool", "Arthur's Magazine (1844-1846) was an American literary periodical.", "call_1"),
        ("assistant", None, None),
        ("tool", HOTPOT[5].content.removeprefix("Observation 2: "), "call_2"),
        ("assistant", None, None),
        ("tool", "(Result 1 / 1) Bauer Media Group was founded in 1875.", "call_3"),
        ("assistant", "Arthur's Magazine", None),
        ("user", "Your answer is correct.", None),
    ]
    assert calls(out[2]) == [("call_1", "Search", {"input": "Arthur's Magazine"})]
    assert calls(out[4]) == [("call_2", "Search", {"input": "First for Women"})]
    assert calls(out[6]) == [("call_3", "Lookup", {"input": "founded"})]
    assert calls(out[8]) == []  # Finish is the answer, not a call
    assert out[2].reasoning.startswith("I need to search Arthur's Magazine") and out[2].reasoning.endswith("first.")
    assert out[8].reasoning.endswith("so Arthur's Magazine was started first.")
    for i in (2, 3, 4, 5, 6, 7, 8):
        assert out[i].raw_text == HOTPOT[i].content
    for i in (0, 1, 9):
        assert out[i] == HOTPOT[i]
    assert all(s.flag is None for s in out)


def test_webshop_sections_on_their_own_lines() -> None:
    """AgentInstruct's WebShop turns put the marker on one line and its text on the next."""
    out = structure_react_steps(chat(
        ("user", "WebShop [SEP] Instruction: [SEP] i need a 3 ounce bottle of bright citrus deodorant"),
        ("assistant", "Thought:\nI think I should use the search bar to look for the product I need.\n\n"
                      "Action:\nsearch[3 ounce bright citrus deodorant]"),
        ("user", "Observation:\n[Back to Search] Page 1 (Total results: 50) [SEP] Next > [SEP] B078GWRC1J"),
        ("assistant", "Thought:\nB078GWRC1J looks right.\n\nAction:\nclick[B078GWRC1J]"),
        ("user", "Observation:\nBright Citrus Deodorant by Earth Mama [SEP] Buy Now"),
        ("assistant", "Thought:\nIt is the right size.\n\nAction:\nclick[Buy Now]"),
        ("user", "Observation:\nThank you for shopping with us! Your score (min 0.0, max 1.0): 1.0"),
    ))
    assert [s.role for s in out] == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert [c for s in out for c in calls(s)] == [
        ("call_1", "search", {"input": "3 ounce bright citrus deodorant"}),
        ("call_2", "click", {"input": "B078GWRC1J"}),
        ("call_3", "click", {"input": "Buy Now"}),
    ]
    assert out[1].reasoning == "I think I should use the search bar to look for the product I need."
    assert out[2].content == "[Back to Search] Page 1 (Total results: 50) [SEP] Next > [SEP] B078GWRC1J"
    assert [s.tool_call_id for s in out if s.role == "tool"] == ["call_1", "call_2", "call_3"]


def test_agentinstruct_operation_with_a_fenced_block() -> None:
    out = structure_react_steps(chat(
        ("assistant", "The table is called orders, so I count its rows.\nAction: Operation\n"
                      "```sql\nSELECT COUNT(*) FROM orders;\n```"),
        ("user", "Observation: [(42,)]"),
        ("assistant", "Action: Answer\nFinal Answer: [\"42\"]"),
    ))
    assert out[0].reasoning == "The table is called orders, so I count its rows."
    assert calls(out[0]) == [("call_1", "Operation", {"input": "SELECT COUNT(*) FROM orders;"})]
    assert (out[1].role, out[1].content, out[1].tool_call_id) == ("tool", "[(42,)]", "call_1")
    assert calls(out[2]) == [("call_2", "Answer", {})] and out[2].content == '["42"]'


# --- action forms -----------------------------------------------------------------------------


def test_langchain_action_and_action_input() -> None:
    out = structure_react_steps(chat(
        ("user", "What is the weather in Paris, in Fahrenheit?"),
        ("assistant", "Thought: I should look up the weather.\nAction: get_weather\n"
                      'Action Input: {"city": "Paris", "unit": "F"}'),
        ("user", "Observation: 68F and sunny"),
        ("assistant", "Thought: Now convert nothing, it is already F.\nAction: search\nAction Input: Paris weather"),
        ("user", "Observation: sunny"),
        ("assistant", 'Action: search\nAction Input: "Paris, France"'),
        ("user", "Observation: capital of France"),
        ("assistant", "Thought: I now know the final answer\nFinal Answer: 68F and sunny."),
    ))
    assert calls(out[1]) == [("call_1", "get_weather", {"city": "Paris", "unit": "F"})]
    assert calls(out[3]) == [("call_2", "search", {"input": "Paris weather"})]
    assert calls(out[5]) == [("call_3", "search", {"input": "Paris, France"})]  # a JSON string, decoded
    assert [s.tool_call_id for s in out if s.role == "tool"] == ["call_1", "call_2", "call_3"]
    assert (out[7].content, out[7].tool_calls) == ("68F and sunny.", [])
    assert out[7].reasoning == "I now know the final answer"
    assert out[7].raw_text == "Thought: I now know the final answer\nFinal Answer: 68F and sunny."


def test_langchain_final_answer_as_an_action() -> None:
    [step] = structure_react_steps(chat(("assistant", "Action: Final Answer\nAction Input: Paris")))
    assert (step.content, step.tool_calls, step.flag) == ("Paris", [], None)


def test_json_action_blocks() -> None:
    fenced = 'Thought: I will search.\nAction:\n```json\n{"action": "search", "action_input": "Apple Inc"}\n```'
    assert only_call(fenced) == ("search", {"input": "Apple Inc"})
    bare = 'Action: {"action": "lookup_order", "action_input": {"order_id": "O-1"}}'
    assert only_call(bare) == ("lookup_order", {"order_id": "O-1"})
    openai_shape = 'Action: ```\n{"name": "lookup_order", "arguments": "{\\"order_id\\": \\"O-1\\"}"}\n```'
    assert only_call(openai_shape) == ("lookup_order", {"order_id": "O-1"})
    assert only_call('Action: {"action": "count", "action_input": 3}') == ("count", {"input": 3})
    assert only_call('Action: {"action": "now"}') == ("now", {})


def test_json_action_blocks_in_a_thought() -> None:
    """LangChain's JSON agents: the block follows the thought with no Action line."""
    [fenced] = structure_react_steps(chat(
        ("assistant", 'Thought: look it up\n```json\n{"action": "search", "action_input": "x"}\n```\nthen wait')
    ))
    assert calls(fenced) == [("call_1", "search", {"input": "x"})]
    assert fenced.reasoning == "look it up\n\nthen wait"
    [bare] = structure_react_steps(chat(
        ("assistant", 'Thought: look it up\n{"name": "search",\n "arguments": {"q": "x"}}')
    ))
    assert (calls(bare), bare.reasoning) == ([("call_1", "search", {"q": "x"})], "look it up")
    [final] = structure_react_steps(chat(
        ("assistant", 'Thought: done\n```json\n{"action": "Final Answer", "action_input": "Paris"}\n```')
    ))
    assert (final.content, final.tool_calls, final.reasoning) == ("Paris", [], "done")


def test_a_thought_with_json_that_is_not_an_action_keeps_it() -> None:
    text = 'Thought: the record is\n```json\n{"status": "shipped"}\n```'
    [step] = structure_react_steps(chat(("assistant", text)))
    assert step.reasoning == 'the record is\n```json\n{"status": "shipped"}\n```'
    assert (step.content, step.tool_calls, step.raw_text) == (None, [], text)


def test_call_syntaxes_and_arguments() -> None:
    assert only_call("Action: get_relations(Barack Obama)") == ("get_relations", {"input": "Barack Obama"})
    assert only_call('Action: search(query="apple pie", limit=3, fuzzy=True)') == (
        "search", {"query": "apple pie", "limit": 3, "fuzzy": True}
    )
    assert only_call("Action: search(query='it\\'s', page=None)") == ("search", {"query": "it's", "page": None})
    assert only_call("Action: f(a, b=1)") == ("f", {"input": "a, b=1"})  # not only keywords: text
    assert only_call('Action: lookup_order[{"order_id": "O-1"}]') == ("lookup_order", {"order_id": "O-1"})
    assert only_call('Action: lookup_order({"order_id": "O-1"})') == ("lookup_order", {"order_id": "O-1"})
    assert only_call("Action: search[a [nested] bracket]") == ("search", {"input": "a [nested] bracket"})
    assert only_call('Action: search["quoted"]') == ("search", {"input": "quoted"})
    assert only_call("Action: search[42]") == ("search", {"input": "42"})
    assert only_call("Action: reset[]") == ("reset", {})
    assert only_call("Action: inventory") == ("inventory", {})
    assert only_call("  Action 3 :  web.search [x]  ") == ("web.search", {"input": "x"})


def test_finish_and_final_answer() -> None:
    steps = chat(
        ("assistant", "Thought: known.\nAction: finish[Paris]"),
        ("assistant", "Action: Finish[The answer is\nParis]"),
        ("assistant", "Final Answer: Paris.\nIt is the capital."),
        ("assistant", "Thought: both\nAction: search[x]\nFinal Answer: maybe"),
    )
    out = structure_react_steps(steps)
    assert [(s.content, s.tool_calls) for s in out[:3]] == [
        ("Paris", []), ("The answer is\nParis", []), ("Paris.\nIt is the capital.", []),
    ]
    assert (out[3].content, calls(out[3])) == ("maybe", [("call_1", "search", {"input": "x"})])
    assert [s.raw_text for s in out] == [s.content for s in steps]


def test_several_actions_in_one_turn_are_answered_in_order() -> None:
    out = structure_react_steps(chat(
        ("assistant", "Thought: both at once\nAction: search[a]\nAction: search[b]"),
        ("user", "Observation: about a"),
        ("user", "Observation: about b"),
        ("user", "Observation: about nothing"),
    ))
    assert [c[0] for c in calls(out[0])] == ["call_1", "call_2"]
    assert shape(out[1:]) == [
        ("tool", "about a", "call_1"), ("tool", "about b", "call_2"), ("user", "Observation: about nothing", None),
    ]
    assert out[3].flag == "orphan_observation"


# --- what is flagged, and what is left alone --------------------------------------------------


def test_unparsed_action_is_flagged_and_kept() -> None:
    texts = [
        "Thought: I should look around.\nAction: go to cabinet 1",  # free text, not a call
        "Action: search[x] and then wait",  # text after the call
        "Thought: hmm\nAction: search[x]\nObservation: invented by the model",
        'Action: {"status": "shipped"}',  # JSON of another shape
        "Action Input: {\"q\": 1}",  # no Action before it
        "Action: a search\nAction Input: x",  # not a tool name
        "Action:",
    ]
    for text in texts:
        steps = [Step(0, "assistant", text, latency_ms=900.0, completion_tokens=12)]
        [step] = structure_react_steps(steps)
        assert step == Step(0, "assistant", text, latency_ms=900.0, completion_tokens=12, flag="unparsed_action")
    out = structure_react_steps(chat(("assistant", texts[0]), ("user", "Observation: a cabinet")))
    assert (out[1].role, out[1].flag) == ("user", "orphan_observation")  # the call does not exist


def test_orphan_observations() -> None:
    out = structure_react_steps(chat(
        ("user", "Observation: you are in the middle of a room."),
        ("assistant", "Thought: look\nAction: look"),
        ("user", "Please hurry."),  # not an observation: stays a user step, the call stays unanswered
        ("user", "Observation: a drawer"),
        ("assistant", "Thought: open it\nAction: open[drawer 1]"),
        ("assistant", "Thought: wait, first the cabinet\nAction: open[cabinet 1]"),
        ("user", "Observation: the cabinet is open"),
        ("user", "Observation: and the drawer?"),
    ))
    assert shape(out) == [
        ("user", "Observation: you are in the middle of a room.", None),
        ("assistant", None, None),
        ("user", "Please hurry.", None),
        ("tool", "a drawer", "call_1"),
        ("assistant", None, None),
        ("assistant", None, None),
        ("tool", "the cabinet is open", "call_3"),  # a new assistant turn: call_2 is not answered
        ("user", "Observation: and the drawer?", None),
    ]
    assert [s.flag for s in out] == ["orphan_observation", None, None, None, None, None, None, "orphan_observation"]
    assert out[0].raw_text is None and out[2].raw_text is None


def test_chat_without_react_is_untouched() -> None:
    steps = [
        Step(0, "system", "Thought: is a word the system prompt may use.\nAction: none"),
        Step(1, "user", "Where is order O-1?\nThought: it is late."),
        Step(2, "assistant", None, "Look the order up first.", [ToolCall("call_1", "lookup_order", {"id": "O-1"})]),
        Step(3, "tool", '{"status": "shipped"}', tool_call_id="call_1", latency_ms=120.0),
        Step(4, "assistant", "Action: this text rides on a step that already has calls",
             tool_calls=[ToolCall("call_2", "noop", {})]),
        Step(5, "tool", None, tool_call_id="call_2", error="timed out"),
        Step(6, "user", "Observation: a user who writes like an environment"),
        Step(7, "assistant", "My thought: it has shipped. Final Answer: soon.", prompt_tokens=300),
        Step(8, "assistant", None),
    ]
    original = copy.deepcopy(steps)
    out = structure_react_steps(steps)
    assert out[:6] + out[7:] == original[:6] + original[7:]
    assert out[6] == Step(6, "user", original[6].content, flag="orphan_observation")
    assert steps == original  # the input is not changed
    assert all(o is not s and o.tool_calls is not s.tool_calls for o, s in zip(out, steps))


def test_fields_carry_over_and_steps_are_reindexed() -> None:
    steps = [
        Step(3, "assistant", "Thought: t\nAction: search[x]", reasoning="from reasoning_content",
             latency_ms=1500.0, prompt_tokens=800, completion_tokens=40),
        Step(7, "user", "Observation: found", latency_ms=20.0, error="partial result"),
    ]
    first, second = structure_react_steps(steps)
    assert (first.index, second.index) == (0, 1)
    assert first.reasoning == "from reasoning_content\nt"
    assert (first.latency_ms, first.prompt_tokens, first.completion_tokens) == (1500.0, 800, 40)
    assert (second.role, second.latency_ms, second.error) == ("tool", 20.0, "partial result")


def test_call_ids_skip_ids_the_trajectory_already_uses() -> None:
    out = structure_react_steps([
        Step(0, "assistant", None, tool_calls=[ToolCall("call_1", "lookup_order", {})]),
        Step(1, "tool", "{}", tool_call_id="call_1"),
        Step(2, "tool", "{}", tool_call_id="call_3"),
        Step(3, "assistant", "Action: search[a]\nAction: search[b]"),
    ])
    assert [c[0] for c in calls(out[3])] == ["call_2", "call_4"]


def test_restructured_steps_survive_the_canonical_dict_round_trip() -> None:
    steps = structure_react_steps(
        chat(("assistant", "Action: go to cabinet 1"), ("assistant", HOTPOT[2].content), ("user", HOTPOT[3].content))
    )
    trajectory = Trajectory(
        "t-1", None, None, None, None, None, None, None, None, None, None, None, [], {}, steps,
        Outcome(), [], Consent(), Provenance("openai_chat", "lakefs://raw/c0ffee/x.jsonl", 1),
    )
    data = trajectory.to_dict()
    assert data["steps"][0]["flag"] == "unparsed_action" and data["steps"][1]["raw_text"] == HOTPOT[2].content
    assert trajectory_from_dict(data) == trajectory


# --- property: whatever the text --------------------------------------------------------------

MARKERS = ["Thought:", "Thought 2:", "Action:", "Action 1:", "Action Input:", "Final Answer:", "Observation:", ""]
FRAGMENTS = [
    "\n", " ", "[", "]", "(", ")", "{", "}", '"', "'", ",", "=", ":", "\\", "```", "```json\n", "\n```",
    "search", "Finish", "Final Answer", "Thought:", "Action:", "Apple Inc", "q=1", "x='y'", "null", "42", "[[[[",
]
JUNK = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=8).map("".join)
PAYLOAD = st.one_of(
    JUNK,
    st.sampled_from([
        "search[Apple Inc]", "Finish[Paris]", "lookup", 'f({"a": 1})', "f(q='x', n=2)", "go to cabinet 1",
        '{"action": "search", "action_input": "x"}', '```json\n{"name": "f", "arguments": {"a": 1}}\n```',
        '{"action": "Final Answer", "action_input": ["a"]}', "Operation\n```sql\nSELECT 1;\n```",
    ]),
    st.tuples(st.sampled_from(["search", "click", "finish", "a b"]), st.sampled_from(["[]", "()"]), JUNK).map(
        lambda t: f"{t[0]}{t[1][0]}{t[2]}{t[1][1]}"
    ),
)
LINE = st.tuples(st.sampled_from(MARKERS), st.sampled_from(["", " ", "\n"]), PAYLOAD).map("".join)
TEXT = st.lists(LINE, max_size=5).map("\n".join)
MESSAGES = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["system", "user", "assistant"]), st.one_of(st.none(), TEXT)),
        st.tuples(st.just("assistant"), TEXT),
        st.tuples(st.just("assistant"), st.lists(PAYLOAD, min_size=1, max_size=3).map(
            lambda actions: "Thought: next\n" + "\n".join(f"Action: {a}" for a in actions)
        )),
        st.tuples(st.just("user"), st.tuples(st.sampled_from(["", " ", "\n "]), JUNK).map("Observation: ".join)),
    ),
    max_size=12,
)


@settings(
    max_examples=1000, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(MESSAGES)
def test_any_text_is_structured_without_losing_a_message(messages: list[tuple[str, str | None]]) -> None:
    steps = chat(*messages)
    original = copy.deepcopy(steps)
    out = structure_react_steps(steps)
    assert steps == original
    assert [s.index for s in out] == list(range(len(steps)))  # one output step per message
    issued: set[str] = set()
    answered: set[str] = set()
    for before, after in zip(steps, out):
        kept = after.raw_text if after.raw_text is not None else after.content
        assert kept == before.content  # the message's text is kept, as content or raw_text
        assert after.role == before.role or (before.role, after.role) == ("user", "tool")
        assert after.flag in (None, "unparsed_action", "orphan_observation")
        assert all(isinstance(c.arguments, dict) for c in after.tool_calls)
        new_ids = {c.id for c in after.tool_calls}
        assert len(new_ids) == len(after.tool_calls) and not new_ids & issued
        issued |= new_ids
        if after.role == "tool":
            assert after.tool_call_id in issued - answered  # a call of an earlier assistant step, once
            answered.add(after.tool_call_id)
