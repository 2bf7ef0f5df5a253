"""A GX 1.x suite that fails on purpose says which expectation failed and why."""

import pandas as pd

from pipeline.shell.validation import validate_dataframe

SUITE = {
    "name": "steps_suite",
    "expectations": [
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "role", "value_set": ["system", "user", "assistant", "tool"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "trajectory_id"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    ],
}


def test_failing_expectation_is_named_with_its_bad_values():
    frame = pd.DataFrame({"trajectory_id": ["t1", "t1", "t2"], "role": ["user", "robot", "assistant"]})
    outcome = validate_dataframe(frame, SUITE)
    assert not outcome.success
    assert outcome.evaluated == 3
    assert len(outcome.failures) == 1
    failure = outcome.failures[0]
    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert failure.column == "role"
    assert failure.unexpected_count == 1
    assert failure.sample == ["robot"]
    assert "role" in outcome.summary() and "robot" in outcome.summary()


def test_passing_frame_passes():
    frame = pd.DataFrame({"trajectory_id": ["t1"], "role": ["user"]})
    outcome = validate_dataframe(frame, SUITE)
    assert outcome.success and outcome.failures == []


def test_failing_rows_sampled_and_data_docs_written(tmp_path):
    frame = pd.DataFrame({"record_key": ["r1", "r2", "r3"],
                          "text": ["hi <EMAIL_1>", "call me on +44 20 7946 0958", None]})
    suite = {"name": "no_pii", "expectations": [
        {"type": "expect_column_values_to_contain_no_pii", "kwargs": {"column": "text"}}]}
    outcome = validate_dataframe(frame, suite, docs_root=tmp_path / "gx", id_columns=("record_key",))
    assert not outcome.success
    [failure] = outcome.failures
    assert failure.expectation == "expect_column_values_to_contain_no_pii"
    assert failure.rows == [{"record_key": "r2", "text": "call me on +44 20 7946 0958"}]
    assert outcome.docs_url and outcome.docs_url.startswith("file://")
    index = outcome.docs_url.removeprefix("file://")
    assert "no_pii" in open(index).read()
