"""The GX suite files: bounds that curation guarantees are read from the dbt vars, not
copied, and a suite that names a var dbt does not define is refused."""

import json

import pytest
import yaml

from pipeline.settings import DBT_PROJECT_DIR, EXPECTATIONS_DIR
from pipeline.shell.dbt_vars import dbt_vars
from pipeline.shell.marts import MART_KEYS, SPLIT_MEMBERSHIP
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


def test_every_released_mart_has_a_suite_and_every_suite_a_mart():
    suites = {p.stem for p in EXPECTATIONS_DIR.glob("*.json")}
    assert suites == {*MART_KEYS, SPLIT_MEMBERSHIP}


def test_the_rl_tasks_suite_names_exactly_the_columns_dbt_documents():
    marts = yaml.safe_load((DBT_PROJECT_DIR / "models" / "marts" / "marts.yml").read_text())
    [model] = [m for m in marts["models"] if m["name"] == "rl_tasks"]
    suite = load_suite(EXPECTATIONS_DIR / "rl_tasks.json")
    [columns] = [e["kwargs"]["column_set"] for e in suite["expectations"]
                 if e["type"] == "expect_table_columns_to_match_set"]
    assert columns == [c["name"] for c in model["columns"]]
    sql = (DBT_PROJECT_DIR / "models" / "marts" / "rl_tasks.sql").read_text()
    assert all(f".{c}" in sql for c in columns)
