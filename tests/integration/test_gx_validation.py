"""A GX 1.x suite that fails on purpose says which expectation failed and why."""

import pandas as pd

from pipeline.validation import validate_dataframe

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
