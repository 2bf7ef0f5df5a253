"""The external-log generator (tests/external_logs.py) is consistent with itself: the files have
the shapes they claim, and the expected counts agree with a plain recount of the raw files
(without our parsers) wherever a plain recount is possible."""

from __future__ import annotations

import fnmatch
import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
import zstandard
from external_logs import (
    OPS,
    TAU,
    WEBSHOP,
    WEBSHOP_SUCCESS,
    ExternalLogs,
    registry_yaml,
    write_big_array,
    write_external_logs,
)

ROLES = {"system", "user", "assistant", "tool", "developer"}


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> ExternalLogs:
    return write_external_logs(tmp_path_factory.mktemp("external"), seed=0)


def _tau(logs: ExternalLogs) -> list[dict]:
    return json.loads(logs.paths[TAU].read_text())


def _webshop(logs: ExternalLogs) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(logs.paths[WEBSHOP].read_bytes()).splitlines()]


def _ops(logs: ExternalLogs) -> dict[str, dict]:
    return json.loads(zstandard.ZstdDecompressor().decompress(logs.paths[OPS].read_bytes()))


def _catalog_names(path: Path) -> set[str]:
    return {t["function"]["name"] for t in json.loads(path.read_text())}


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


# --- recounts from the raw files -----------------------------------------------------------------


def _recount_tau(logs: ExternalLogs) -> dict:
    records = _tau(logs)
    good, bad = [], []
    for i, r in enumerate(records):
        rid = f"tau-{r['task_id']}-trial{r['trial']}"
        if not isinstance(r["traj"], list):
            bad.append((i, rid, "wrong_type"))
        elif any(m["role"] not in ROLES for m in r["traj"]):
            bad.append((i, rid, "invalid_step_order"))
        else:
            good.append((rid, r))
    msgs = [m for _, r in good for m in r["traj"]]
    calls = [c for m in msgs if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    return {
        "records": len(records),
        "bad": bad,
        "ids": [rid for rid, _ in good],
        "successes": sum(r["reward"] >= 1.0 for _, r in good),
        "failures": sum(r["reward"] < 1.0 for _, r in good),
        "unknown_outcome": 0,
        "messages": len(msgs),
        "tool_calls": len(calls),
        "tool_results": sum(m["role"] == "tool" for m in msgs),
        "called": {c["function"]["name"] for c in calls},
    }


_ACTION = re.compile(r"^Action: (.*)$", re.M)


def _recount_webshop(logs: ExternalLogs) -> dict:
    records = _webshop(logs)
    gpt = [(r["id"], t["value"]) for r in records for t in r["conversations"] if t["from"] == "gpt"]
    actions = [a.strip() for _, v in gpt for a in _ACTION.findall(v)]
    rewards = [r.get("reward") for r in records]
    return {
        "records": len(records),
        "bad": [],
        "ids": [r["id"] for r in records],
        "successes": sum(x is not None and x >= WEBSHOP_SUCCESS for x in rewards),
        "failures": sum(x is not None and x < WEBSHOP_SUCCESS for x in rewards),
        "unknown_outcome": sum(x is None for x in rewards),
        "messages": sum(len(r["conversations"]) for r in records),
        "tool_calls": sum(a != "???" and not a.startswith("finish[") for a in actions),
        "tool_results": sum(t["from"] == "human" and t["value"].startswith("Observation:")
                            for r in records for t in r["conversations"]),
        "flagged": actions.count("???"),
        "called": {re.match(r"\w+", a)[0] for a in actions if a != "???" and not a.startswith("finish[")},
    }


def _recount_ops(logs: ExternalLogs) -> dict:
    runs = _ops(logs)
    good, bad = [], []
    for i, (key, run) in enumerate(runs.items()):
        if "messages" not in run:
            bad.append((i, key, "missing_required_field"))
            continue
        args = [c["function"]["arguments"] for m in run["messages"] for c in m.get("tool_calls") or []]
        if not all(_is_json_object(a) for a in args):
            bad.append((i, key, "invalid_tool_arguments"))
            continue
        good.append((key, run))
    msgs = [m for _, r in good for m in r["messages"]]
    calls = [c for m in msgs if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    success = [r["outcome"]["success"] for _, r in good]
    return {
        "records": len(runs),
        "bad": bad,
        "ids": [key for key, _ in good],
        "successes": success.count(True),
        "failures": success.count(False),
        "unknown_outcome": success.count(None),
        "messages": len(msgs),
        "tool_calls": len(calls),
        "tool_results": sum(m["role"] == "tool" for m in msgs),
        "called": {c["function"]["name"] for c in calls},
        "tool_sets": len({frozenset(t["function"]["name"] for t in r["tools"]) for _, r in good}),
        "versions": dict(Counter(str(r["agent"]["version"]) for _, r in good)),
    }


_RECOUNT = {TAU: _recount_tau, WEBSHOP: _recount_webshop, OPS: _recount_ops}


def _assert_expected_matches_recount(logs: ExternalLogs) -> None:
    for source, recount in _RECOUNT.items():
        got, want = recount(logs), logs.expected[source]
        assert want.records == got["records"], source
        assert [(b.index, b.key, b.reason) for b in want.bad] == got["bad"], source
        assert want.quarantined == dict(Counter(reason for *_, reason in got["bad"])), source
        assert want.trajectories == len(got["ids"]) == want.records - len(want.bad), source
        assert want.ids == got["ids"], source
        assert len(set(want.ids)) == len(want.ids), source
        for key in ("successes", "failures", "unknown_outcome", "messages", "tool_calls", "tool_results"):
            assert getattr(want, key) == got[key], (source, key)
        assert want.successes + want.failures + want.unknown_outcome == want.trajectories, source
        assert want.tool_names_called == got["called"], source
        assert want.flagged_unparsed_actions == got.get("flagged", 0), source
        assert sum(t.messages for t in want.by_id.values()) == want.messages, source
    ops = _recount_ops(logs)
    assert logs.expected[OPS].tool_sets == ops["tool_sets"]
    assert logs.expected[OPS].agent_versions == ops["versions"]


# --- the tests -------------------------------------------------------------------------------------


def test_expected_counts_match_a_recount_of_the_raw_files(logs):
    _assert_expected_matches_recount(logs)


def test_the_numbers_at_seed_0(logs):
    """The fixed shape of the default write (the exact mix is the generator's, pinned here so a
    change to it is seen)."""
    tau, shop, ops = (logs.expected[s] for s in (TAU, WEBSHOP, OPS))
    assert (tau.records, tau.trajectories, tau.quarantined) == (200, 198, {"wrong_type": 1, "invalid_step_order": 1})
    assert (shop.records, shop.trajectories, shop.quarantined, shop.flagged_unparsed_actions) == (100, 100, {}, 3)
    assert (ops.records, ops.trajectories) == (100, 98)
    assert ops.quarantined == {"invalid_tool_arguments": 1, "missing_required_field": 1}
    assert (tau.tool_sets, shop.tool_sets, ops.tool_sets) == (1, 1, 3)
    assert (tau.may_train, shop.may_train, ops.may_train) == (True, True, None)


def test_tau_results_are_a_tau_bench_array(logs):
    records = _tau(logs)
    assert logs.paths[TAU].read_text().startswith("[\n  {\n")  # pretty-printed, indent 2
    assert len(records) == 200
    for r in records:
        assert set(r) == {"task_id", "trial", "reward", "info", "traj"}  # no tools, no success flag
        assert isinstance(r["task_id"], int) and isinstance(r["trial"], int)
        assert r["reward"] in (0.0, 1.0) and r["info"]["domain"] == "retail"
        traj = r["traj"] if isinstance(r["traj"], list) else json.loads(r["traj"])
        assert len(traj) >= 30
        assert traj[0]["role"] == "system" and traj[1]["role"] == "user"
    per_task = Counter(r["task_id"] for r in records)
    assert len(per_task) == 50 and set(per_task.values()) == {4}  # the task id alone is not unique
    assert 0.4 <= sum(r["reward"] for r in records) / len(records) <= 0.6
    assert sum(isinstance(r["traj"], str) for r in records) == 1


def test_tau_tool_calls_are_answered_and_in_the_catalog(logs):
    catalog = _catalog_names(logs.catalogs[TAU])
    for r in _tau(logs):
        if not isinstance(r["traj"], list):
            continue
        answered = {m["tool_call_id"] for m in r["traj"] if m["role"] == "tool"}
        for m in r["traj"]:
            for c in m.get("tool_calls") or []:
                assert c["function"]["name"] in catalog
                assert isinstance(c["function"]["arguments"], str) and _is_json_object(c["function"]["arguments"])
                assert c["id"] in answered


def test_tau_failures_look_different(logs):
    records = [r for r in _tau(logs) if isinstance(r["traj"], list)]

    def texts(rs):
        return [json.dumps(r["traj"]) for r in rs]

    wins, losses = texts(r for r in records if r["reward"] == 1.0), texts(r for r in records if r["reward"] == 0.0)
    assert not any("transfer_to_human_agents" in t or "never mind" in t for t in wins)
    assert any("transfer_to_human_agents" in t for t in losses) and any("never mind" in t for t in losses)
    assert all(t.count("###STOP###") == 1 for t in wins)


def test_webshop_is_a_gzip_sharegpt_react_corpus(logs):
    records = _webshop(logs)
    assert len(records) == 100
    values = []
    for r in records:
        turns = r["conversations"]
        assert re.fullmatch(r"webshop_\d+", r["id"]) and len(turns) >= 30
        assert turns[0]["from"] == "human" and "Observation:" not in turns[0]["value"][:20]
        assert {t["from"] for t in turns} == {"human", "gpt"}
        assert turns[-1]["from"] == "gpt"
        assert re.search(r"^(Action: finish\[|Final Answer: )", turns[-1]["value"], re.M)
        values += [t["value"] for t in turns if t["from"] == "gpt"]
        if "reward" in r:
            assert 0.0 <= r["reward"] <= 1.0
    text = "\n".join(values)
    for style in (r"^Action: search\[", r"^Action: click\[", r'^Action: search\(query="', r'^Action: click\(target="',
                  r"^Action: search\nAction Input: \{", r"^Action: click\nAction Input: \{", r"^Action: \?\?\?$"):
        assert re.search(style, text, re.M), style
    assert any(r.get("reward") == WEBSHOP_SUCCESS for r in records)  # on the threshold: a success
    catalog = _catalog_names(logs.catalogs[WEBSHOP])
    assert logs.expected[WEBSHOP].tool_names_called <= catalog


def test_ops_runs_are_a_zstd_json_object(logs):
    runs = _ops(logs)
    assert list(runs) == [f"run-{i:04d}" for i in range(1, 101)]
    for key, run in runs.items():
        if "messages" not in run:
            assert key == "run-0100"
            continue
        assert len(run["messages"]) >= 12 and run["agent"]["name"] == "ops-bot"
        offered = {t["function"]["name"] for t in run["tools"]}
        assert {c["function"]["name"] for m in run["messages"] for c in m.get("tool_calls") or []} <= offered
    assert {type(r["agent"]["version"]) for r in runs.values()} == {str, float}  # coerce: string


def test_registry_describes_the_files(logs):
    text = logs.registry.read_text()
    assert text == registry_yaml(logs.root)
    registry = yaml.safe_load(text)
    assert registry["version"] == 1 and set(registry["sources"]) == {TAU, WEBSHOP, OPS}
    for name, source in registry["sources"].items():
        relative = logs.paths[name].relative_to(logs.root).as_posix()
        assert fnmatch.fnmatch(relative, source["match"]), name
        others = [p for s, p in logs.paths.items() if s != name]
        assert not any(fnmatch.fnmatch(p.relative_to(logs.root).as_posix(), source["match"]) for p in others)
        assert source["format"] == "openai_chat"
        assert source["container"] in ("auto", "jsonl", "json_array", "json_object")
        assert source["compression"] in ("auto", "none", "gzip", "zstd")
        assert isinstance(source["react_in_chat"], bool)
        if "tool_catalog" in source:
            catalog = logs.registry.parent / source["tool_catalog"]
            assert catalog == logs.catalogs[name] and catalog.is_file()
            assert logs.expected[name].tool_names_called <= _catalog_names(catalog)
        assert ("consent" in source) == (logs.expected[name].may_train is not None)
    tau = registry["sources"][TAU]
    assert tau["id"]["template"].format(task_id=17, trial=2) == "tau-17-trial2"
    assert tau["outcome"]["success_threshold"] == 1.0
    shop = registry["sources"][WEBSHOP]
    assert shop["mapping"]["roles"] == {"human": "user", "gpt": "assistant"} and shop["react_in_chat"] is True
    assert shop["outcome"]["success_threshold"] == WEBSHOP_SUCCESS
    assert registry["sources"][OPS]["container"] == "json_object" and "id" not in registry["sources"][OPS]


def test_the_write_is_deterministic_and_scales(tmp_path):
    first = write_external_logs(tmp_path / "a", seed=3, scale=0.2)
    second = write_external_logs(tmp_path / "b", seed=3, scale=0.2)
    other = write_external_logs(tmp_path / "c", seed=4, scale=0.2)
    for source, path in first.paths.items():
        assert path.read_bytes() == second.paths[source].read_bytes(), source
        assert path.read_bytes() != other.paths[source].read_bytes(), source
    assert first.expected == second.expected
    assert first.expected[TAU].records == 40 and first.expected[WEBSHOP].records == 20
    for small in (first, other):
        assert all(e.bad for s, e in small.expected.items() if s != WEBSHOP)
        assert small.expected[WEBSHOP].flagged_unparsed_actions > 0
        _assert_expected_matches_recount(small)


def test_big_array_streams_tau_shaped_records(tmp_path):
    path = tmp_path / "big" / "array.json"
    count = write_big_array(path, target_bytes=2_000_000)
    assert path.stat().st_size >= 2_000_000
    records = json.loads(path.read_bytes())
    assert len(records) == count and count % 4 == 0
    assert len({(r["task_id"], r["trial"]) for r in records}) == count
    assert min(r["task_id"] for r in records) == 10_000
    assert all(isinstance(r["traj"], list) and len(r["traj"]) >= 30 for r in records)
