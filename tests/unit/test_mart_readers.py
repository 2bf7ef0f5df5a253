"""The marts as training and evaluation read them from the warehouse: JSON columns decoded,
stable order, the file opened read-only."""

import json

import duckdb
import pandas as pd

from pipeline.evaluation.cases import task_id
from pipeline.shell.marts import load_eval_cases, load_rl_tasks, load_sft_examples, split_membership


def _warehouse(path):
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.sft_examples (record_key varchar, messages json, tools json, weight double)")
        con.execute("""insert into marts.sft_examples values
            ('b', '[{"role": "user", "content": "hi"}]', '[]', 2.0),
            ('a', '[{"role": "user", "content": "hello"}]', null, null)""")
        con.execute("""create table marts.eval_cases (case_id varchar, record_key varchar, task_type varchar,
            prompt json, expected_kind varchar, expected_tool_call json, expected_answer varchar, tools json,
            task_spec json)""")
        con.execute("""insert into marts.eval_cases values
            ('c2', 'r2', 'refund', '[{"role": "user", "content": "refund"}]', 'final_answer', null, 'done', '[]', null),
            ('c1', 'r1', 'order_status', '[]', 'tool_call', '{"name": "lookup_order", "arguments": {}}', null,
             '[{"type": "function"}]', '{"task_type": "order_status"}')""")
    return path


def test_sft_examples_in_record_order_with_defaults(tmp_path):
    db = _warehouse(tmp_path / "w.duckdb")
    first, second = load_sft_examples(db)
    assert first.messages == [{"role": "user", "content": "hello"}] and first.tools == [] and first.weight == 1.0
    assert second.weight == 2.0
    assert len(load_sft_examples(db, limit=1)) == 1


def test_eval_cases_in_case_order_with_json_decoded(tmp_path):
    db = _warehouse(tmp_path / "w.duckdb")
    cases = load_eval_cases(db)
    assert [c["case_id"] for c in cases] == ["c1", "c2"]
    assert cases[0]["expected_tool_call"] == {"name": "lookup_order", "arguments": {}}
    assert cases[0]["task_spec"] == {"task_type": "order_status"} and cases[1]["task_spec"] is None
    with duckdb.connect(str(db), read_only=True):  # the readers left no writer behind
        pass


def _spec(task_type: str, env_seed: int) -> dict:
    return {"spec_version": 1, "task_type": task_type, "template_id": f"{task_type}/0", "env_seed": env_seed,
            "user_seed": 1, "tools": [], "params": {}, "goal": "g", "checks": []}


def test_rl_tasks_are_the_distinct_specs_by_task_id():
    refund, status = _spec("refund", 1), _spec("order_status", 2)
    frame = pd.DataFrame({
        "record_key": ["r1", "r2", "r3", "r4", "r5"],
        # JSON text as the Parquet holds it, an already decoded object, the same spec twice
        # (two attempts at one task), no spec, and a spec a sandbox cannot replay
        "task_spec": [json.dumps(refund), status, json.dumps(refund, indent=1), None, '{"nested": {}}'],
    })
    tasks = load_rl_tasks(frame)
    assert tasks == dict(sorted({task_id(refund): refund, task_id(status): status}.items()))
    assert list(tasks) == sorted(tasks) and all(isinstance(s, dict) for s in tasks.values())
    assert load_rl_tasks(frame.iloc[:0]) == {}


def test_split_membership_counts_rl_tasks_as_train():
    frames = {
        "sft_examples": pd.DataFrame({"split_group_key": ["user:a"]}),
        "kto_examples": pd.DataFrame({"split_group_key": ["user:a"]}),
        "preference_pairs": pd.DataFrame({"split_group_key": ["user:a"], "rejected_split_group_key": [None]}),
        "rl_tasks": pd.DataFrame({"split_group_key": ["user:b"]}),
        "eval_cases": pd.DataFrame({"split_group_key": ["user:c"]}),
    }
    membership = split_membership(frames)
    rows = membership[membership["mart"] == "rl_tasks"]
    assert rows[["split_group_key", "split"]].values.tolist() == [["user:b", "train"]]
