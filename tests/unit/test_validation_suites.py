"""The GX suite files: bounds that curation guarantees are read from the dbt vars, not
copied, and a suite that names a var dbt does not define is refused."""

import json

import pytest

from pipeline.settings import EXPECTATIONS_DIR
from pipeline.shell.dbt_vars import dbt_vars
from pipeline.shell.validation import DBT_VAR, load_suite


def _kwargs(suite: dict, column: str) -> dict:
    [kwargs] = [e["kwargs"] for e in suite["expectations"] if e["kwargs"].get("column") == column]
    return kwargs


def test_the_balancing_bounds_are_the_dbt_vars():
    knobs = dbt_vars()
    assert _kwargs(load_suite(EXPECTATIONS_DIR / "coverage.json"), "task_type_share_after")["max_value"] \
        == knobs["balance_max_share"]
    weight = _kwargs(load_suite(EXPECTATIONS_DIR / "sft_examples.json"), "weight")
    assert weight["max_value"] == knobs["balance_max_weight"]


def test_every_suite_loads_with_plain_values_only():
    for path in sorted(EXPECTATIONS_DIR.glob("*.json")):
        text = json.dumps(load_suite(path))
        assert DBT_VAR not in text, path.name


def test_a_var_dbt_does_not_define_is_refused(tmp_path):
    suite = {"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "x", "max_value": {DBT_VAR: "no_such_var"}}}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(suite))
    with pytest.raises(KeyError, match="no_such_var"):
        load_suite(path)
