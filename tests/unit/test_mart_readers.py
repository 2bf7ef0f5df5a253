"""The marts as training and evaluation read them from the warehouse: JSON columns decoded,
stable order, the file opened read-only."""

import duckdb

from pipeline.shell.marts import load_eval_cases, load_sft_examples


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
