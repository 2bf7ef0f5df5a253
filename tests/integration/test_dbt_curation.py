"""Curation end to end: a simulated corpus → one `dbt build` → the curated marts.

The module fixture simulates three days of traffic (exact replays, near duplicates, consent
flags, feedback), ingests the landing files into the raw tables of a temporary DuckDB,
copies them to `redacted` (redaction is another stage's job), plants a few defects the
simulator does not make (an unanswered tool call, roles out of order, an over-long and a
lucky trajectory, a whitespace-only copy), writes the Python curation inputs (schema
`derived`, as the tool_call_validity and near_duplicate_candidates assets do) and runs ONE
`dbt build` on a copy of the project. The tests then only read tables, except the last, which plants a split leak in a
copy of the warehouse and checks that the leak test catches it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml

from pipeline.shell.curation_inputs import write_curation_inputs
from pipeline.shell.ingest import SourceFile, ingest_files, record_key
from pipeline.shell.sql_warehouse import DuckDBWarehouse
from pipeline.shell.warehouse import replace_partition
from pipeline.simulator import simulate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT = str(Path(sys.executable).with_name("dbt")) if Path(sys.executable).with_name("dbt").exists() else "dbt"
RAW_COMMIT = "c0ffee"
RECORD_TABLES = ("trajectories", "steps", "tool_calls", "feedback")  # keyed by record_key
TABLES = (*RECORD_TABLES, "tool_sets")
ROLES = {"system", "user", "assistant", "tool"}
PLANTED = {
    "unanswered": "planted://unanswered#1",
    "role_order": "planted://role-order#1",
    "over_long": "planted://over-long#1",
    "lucky": "planted://lucky#1",
    "whitespace": "planted://whitespace#1",
}
VARS = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


@dataclass
class Curated:
    db: Path
    project: Path
    build: subprocess.CompletedProcess
    build_seconds: float
    exact_replays: set[str]  # record keys of ground-truth exact replays
    near_pairs: list[tuple[str, str]]  # (near duplicate, original) trajectory ids
    planted_source: str  # the record the planted defects were copied from

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()


def _uri(day: str, name: str) -> str:
    return f"lakefs://raw-agent-logs/{RAW_COMMIT}/{day}/{name}"


def _dbt(args: list[str], project: Path, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT, *args, "--profiles-dir", str(project)],
        cwd=project, capture_output=True, text=True, timeout=600,
        env={**os.environ, "FLYWHEEL_DUCKDB_PATH": str(db), "FLYWHEEL_DBT_TARGET": "duckdb"},
    )


def _copy_record(con: duckdb.DuckDBPyConnection, source: str, key: str) -> None:
    """A copy of one record in every redacted table, under a new record key and trajectory id."""
    for table in RECORD_TABLES:
        con.execute(
            f"insert into redacted.{table} select * replace (? as record_key, ? as trajectory_id) "
            f"from redacted.{table} where record_key = ?",
            [key, key.split("//")[1], source],
        )


def _plant_defects(con: duckdb.DuckDBPyConnection, exclude: set[str]) -> str:
    """Copies of one consented, verified-successful canonical record, each with one defect."""
    candidates = con.execute(
        """
        select t.record_key from redacted.trajectories t
        where t.success and t.verified_by = 'environment' and t.consent_may_train
            and t.consent_scope = 'training' and t.source_format = 'canonical' and t.termination = 'completed'
            and (select count(*) from redacted.steps s where s.record_key = t.record_key and s.role = 'tool') >= 3
            and not exists (select 1 from redacted.steps s where s.record_key = t.record_key and s.error is not null)
            and (select count(*) from redacted.trajectories o where o.content_digest = t.content_digest) = 1
        order by t.record_key
        """
    ).fetchall()
    source = next(key for (key,) in candidates if key not in exclude)
    for key in PLANTED.values():
        _copy_record(con, source, key)
    # a tool call never answered: its tool result step is gone (and the steps re-numbered)
    first_tool = con.execute(
        "select min(step_index) from redacted.steps where record_key = ? and role = 'tool'", [PLANTED["unanswered"]]
    ).fetchall()[0][0]
    con.execute("delete from redacted.steps where record_key = ? and step_index = ?",
                [PLANTED["unanswered"], first_tool])
    for table in ("steps", "tool_calls"):
        con.execute(f"update redacted.{table} set step_index = step_index - 1 where record_key = ? and step_index > ?",
                    [PLANTED["unanswered"], first_tool])
    con.execute("update redacted.trajectories set n_steps = n_steps - 1 where record_key = ?", [PLANTED["unanswered"]])
    # roles out of order: the agent speaks before the user has said anything
    con.execute("update redacted.steps set role = 'assistant' where record_key = ? and role = 'user' "
                "and step_index = (select min(step_index) from redacted.steps where record_key = ? and role = 'user')",
                [PLANTED["role_order"], PLANTED["role_order"]])
    # over-long: one model call with a huge context
    con.execute("update redacted.steps set prompt_tokens = 50000, completion_tokens = 10 where record_key = ? "
                "and step_index = (select max(step_index) from redacted.steps "
                "where record_key = ? and role = 'assistant')",
                [PLANTED["over_long"], PLANTED["over_long"]])
    # lucky: the last tool call failed and was never retried, yet the outcome is a success
    con.execute("update redacted.steps set content = null, error = '503 Service Unavailable: upstream service error' "
                "where record_key = ? and step_index = "
                "(select max(step_index) from redacted.steps where record_key = ? and role = 'tool')",
                [PLANTED["lucky"], PLANTED["lucky"]])
    # an exact duplicate once normalised: only case and whitespace differ
    con.execute("update redacted.steps set content = '  ' || upper(replace(content, ' ', '   ')) || ' ' "
                "where record_key = ? and role = 'user'", [PLANTED["whitespace"]])
    return source


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> Curated:
    root = tmp_path_factory.mktemp("curation")
    sim = root / "sim"
    simulate(days=3, per_day=150, out_dir=sim, seed=7)
    db = root / "warehouse.duckdb"
    exact_replays: set[str] = set()
    near_pairs: list[tuple[str, str]] = []
    with duckdb.connect(str(db)) as con:
        for day_dir in sorted((sim / "landing").iterdir()):
            day = day_dir.name
            files = [SourceFile(p.name, _uri(day, p.name), p.read_bytes()) for p in sorted(day_dir.iterdir())]
            result = ingest_files(files, partition=day, raw_commit=RAW_COMMIT)
            replace_partition(con, day, result.tables)
            for line in (sim / "ground_truth" / day / "duplicates.jsonl").read_text().splitlines():
                dup = json.loads(line)
                if dup["kind"] == "exact":
                    exact_replays.add(record_key(day, dup["file"], dup["line"]))
                else:
                    near_pairs.append((dup["trajectory_id"], dup["duplicate_of"]))
        con.execute("create schema redacted")
        for table in TABLES:
            con.execute(f"create table redacted.{table} as select * from raw.{table}")
        planted_source = _plant_defects(con, exact_replays)
        write_curation_inputs(DuckDBWarehouse(con))  # what the Python assets do before dbt
    project = root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
    started = time.monotonic()
    build = _dbt(["build"], project, db)
    seconds = time.monotonic() - started
    print(f"dbt build on the simulated corpus: {seconds:.1f}s")
    return Curated(db, project, build, seconds, exact_replays, near_pairs, planted_source)


@pytest.fixture(scope="module")
def decisions(curated) -> dict[str, tuple]:
    """record_key → (destination, rule_ids, split, split_group_key, label, trajectory_id)."""
    rows = curated.rows(
        "select record_key, destination, rule_ids, split, split_group_key, label, trajectory_id "
        "from marts.curation_decisions"
    )
    return {r[0]: r[1:] for r in rows}


def test_one_dbt_build_succeeds_with_every_test_passing(curated):
    assert curated.build.returncode == 0, curated.build.stdout[-5000:]
    assert "ERROR=0" in curated.build.stdout
    assert "assert_no_split_group_leak" in curated.build.stdout  # the leak test ran, and passed


def test_every_record_appears_exactly_once_in_curation_decisions(curated, decisions):
    records = curated.rows("select record_key from redacted.trajectories")
    n_decisions = curated.rows("select count(*) from marts.curation_decisions")[0][0]
    assert n_decisions == len(records) == len(decisions)
    assert set(decisions) == {r[0] for r in records}
    destinations = {d[0] for d in decisions.values()}
    assert destinations == {"train", "eval", "excluded"}
    for key, (destination, rule_ids, *_rest) in decisions.items():
        assert (destination == "excluded") == bool(rule_ids), key


def test_exact_duplicates_are_excluded_with_R01(curated, decisions):
    assert len(curated.exact_replays) >= 5
    for key in curated.exact_replays:
        destination, rule_ids = decisions[key][:2]
        assert destination == "excluded" and "R01_exact_duplicate" in rule_ids, key
    # at most one copy of each content survives R01 (none when an identical conversation under
    # another id was kept instead), and the replayed contents keep exactly one
    kept = dict(curated.rows(
        "select t.content_digest, count(*) filter (where not list_contains(d.rule_ids, 'R01_exact_duplicate')) "
        "from redacted.trajectories t join marts.curation_decisions d using (record_key) "
        "where t.record_key not like 'planted://%' group by 1"
    ))
    assert all(n <= 1 for n in kept.values())
    replayed = curated.rows(
        "select distinct content_digest from redacted.trajectories where list_contains(?, record_key)",
        [sorted(curated.exact_replays)])
    assert sum(kept[d] for (d,) in replayed) >= len(replayed) - 1
    # exact on *normalised* content: a copy differing only in case and whitespace is a duplicate
    assert "R01_exact_duplicate" in decisions[PLANTED["whitespace"]][1]
    assert "R01_exact_duplicate" not in decisions[curated.planted_source][1]


def test_near_duplicates_keep_one_representative(curated, decisions):
    assert len(curated.near_pairs) >= 3
    by_trajectory: dict[str, list[tuple]] = {}
    for d in decisions.values():
        by_trajectory.setdefault(d[5], []).append(d)
    n_with_one_survivor = 0
    for near, original in curated.near_pairs:
        copies = by_trajectory[near] + by_trajectory[original]
        survivors = [d for d in copies if not {"R01_exact_duplicate", "R02_near_duplicate"} & set(d[1])]
        assert len(survivors) <= 1, (near, original, copies)
        n_with_one_survivor += len(survivors)
    # none survives only when the pair's content was kept under a third id (an identical conversation)
    assert n_with_one_survivor >= 0.8 * len(curated.near_pairs)
    assert any("R02_near_duplicate" in d[1] for d in decisions.values())


def test_records_without_consent_are_excluded(curated, decisions):
    consent = dict(curated.rows(
        "select record_key, case when consent_may_train and coalesce(consent_scope, '') <> 'evaluation_only' "
        "then 'train' when consent_scope = 'evaluation_only' then 'eval_only' else 'none' end "
        "from redacted.trajectories"
    ))
    assert {"none", "eval_only", "train"} <= set(consent.values())
    for key, kind in consent.items():
        destination, rule_ids = decisions[key][:2]
        if kind == "none":
            assert destination == "excluded" and "R03_no_consent" in rule_ids, key
        if kind == "eval_only":
            assert destination != "train", key
    train_marts = curated.rows(
        "select record_key from marts.sft_examples union all select record_key from marts.kto_examples "
        "union all select rejected_record_key from marts.preference_pairs "
        "union all select chosen_record_key from marts.preference_pairs where chosen_record_key is not null"
    )
    assert train_marts and all(consent[k] == "train" for (k,) in train_marts)


def test_train_and_eval_split_groups_are_disjoint(curated, decisions):
    split_of_group: dict[str, set[str]] = {}
    for _destination, _, split, group, *_ in decisions.values():
        split_of_group.setdefault(group, set()).add(split)
    assert all(len(splits) == 1 for splits in split_of_group.values())
    train = {d[3] for d in decisions.values() if d[0] == "train"}
    evaluation = {d[3] for d in decisions.values() if d[0] == "eval"}
    assert train and evaluation and not train & evaluation
    mart_train = {g for (g,) in curated.rows(
        "select split_group_key from marts.sft_examples union select split_group_key from marts.kto_examples "
        "union select split_group_key from marts.preference_pairs "
        "union select rejected_split_group_key from marts.preference_pairs")}
    mart_eval = {g for (g,) in curated.rows("select split_group_key from marts.eval_cases")}
    assert mart_train <= train and mart_eval <= evaluation and not mart_train & mart_eval
    # rl_tasks also takes train-split records that other rules excluded: train-split groups
    rl_groups = {g for (g,) in curated.rows("select split_group_key from marts.rl_tasks")}
    train_split = {d[3] for d in decisions.values() if d[2] == "train"}
    assert rl_groups and rl_groups <= train_split and not rl_groups & (evaluation | mart_eval)


def test_balancing_caps_the_commonest_task_type_and_keeps_the_rare_ones(curated):
    max_share, min_share = VARS["balance_max_share"], VARS["balance_min_share"]
    rows = curated.rows(
        "select task_type, sum(n_before_balancing), sum(n_after_balancing), max(task_type_share_before), "
        "max(task_type_share_after) from marts.coverage where split = 'train' group by 1"
    )
    shares_before = {r[0]: r[3] for r in rows}
    assert max(shares_before.values()) > max_share  # the skewed mix needed balancing
    assert all(r[4] <= max_share + 1e-9 for r in rows), rows
    total_after = sum(r[2] for r in rows)
    train = curated.rows("select count(*) from marts.curation_decisions where destination = 'train'")
    assert total_after == train[0][0]
    capped = {r[0] for r in rows if r[2] < r[1]}
    assert max(shares_before, key=shares_before.get) in capped  # the commonest type lost records
    assert len(capped) < len(rows)  # and not every type did
    rare = [r[0] for r in rows if r[2] and r[2] / total_after < min_share]
    assert rare
    weights = dict(curated.rows("select task_type, min(weight) from marts.sft_examples group by 1"))
    assert all(weights[t] > 1 for t in rare if t in weights)
    capped_records = curated.rows(
        "select count(*) from marts.curation_decisions where list_contains(rule_ids, 'R12_balance_cap')")
    assert capped_records[0][0] > 0


def _check_messages(messages: list) -> None:
    assert isinstance(messages, list) and messages
    call_ids = set()
    for m in messages:
        assert m["role"] in ROLES
        for call in m.get("tool_calls") or []:
            assert call["type"] == "function"
            assert isinstance(call["function"]["name"], str)
            assert isinstance(call["function"]["arguments"], dict)  # an object, never a JSON string
            call_ids.add(call["id"])
        if m["role"] == "tool":
            assert m["tool_call_id"] in call_ids


def test_sft_messages_are_trl_conversations_with_object_arguments(curated, decisions):
    rows = curated.rows("select record_key, messages, tools, weight from marts.sft_examples")
    assert len(rows) >= 50
    n_calls = 0
    for key, messages, tools, weight in rows:
        parsed = json.loads(messages)
        _check_messages(parsed)
        assert parsed[0]["role"] == "system" and parsed[-1]["role"] in ("assistant", "tool")
        n_calls += sum(len(m.get("tool_calls") or []) for m in parsed)
        assert all(t["type"] == "function" for t in json.loads(tools))
        assert weight >= 1
        assert decisions[key][0] == "train" and decisions[key][4] == "good"
    assert n_calls > len(rows)


def test_eval_cases_have_an_expectation_and_a_task_spec(curated, decisions):
    rows = curated.rows(
        "select record_key, prompt, expected_kind, expected_tool_call, expected_answer, task_spec, tools, task_type "
        "from marts.eval_cases"
    )
    assert len(rows) >= 20
    assert {r[2] for r in rows} == {"tool_call", "final_answer"}
    sft_keys = {k for (k,) in curated.rows("select record_key from marts.sft_examples")}
    for key, prompt, kind, call, answer, spec, tools, task_type in rows:
        assert decisions[key][0] == "eval" and key not in sft_keys
        _check_messages(json.loads(prompt))
        if kind == "tool_call":
            call = json.loads(call)
            assert isinstance(call["name"], str) and isinstance(call["arguments"], dict)
            assert call["name"] in {t["function"]["name"] for t in json.loads(tools)}
        else:
            assert answer
        spec = json.loads(spec)
        assert spec["task_type"] == task_type and spec["template_id"] and spec["checks"]


def test_rl_tasks_are_every_consented_train_record_with_a_task_spec(curated, decisions):
    consent_rules = {"R03_no_consent", "R04_evaluation_only_consent", "R14_consent_revoked"}
    rows = curated.rows("select record_key, split_group_key, task_type, task_spec, success, label, destination, "
                        "rule_ids from marts.rl_tasks")
    assert len(rows) >= 50
    with_spec = {k for (k,) in curated.rows("select record_key from redacted.trajectories where task_spec is not null")}
    # the consent rules alone decide, whatever else fired (quality, duplicates, balancing)
    expected = {k for k, (_dest, rule_ids, split, *_) in decisions.items()
                if split == "train" and k in with_spec and not consent_rules & set(rule_ids)}
    assert {r[0] for r in rows} == expected
    assert {k for (k,) in curated.rows("select record_key from marts.curation_decisions where in_rl_tasks")} \
        == expected
    eval_groups = {d[3] for d in decisions.values() if d[2] == "eval"}
    eval_case_groups = {g for (g,) in curated.rows("select split_group_key from marts.eval_cases")}
    assert eval_case_groups and eval_case_groups <= eval_groups
    consent = dict(curated.rows(
        "select record_key, consent_may_train and coalesce(consent_scope, '') <> 'evaluation_only' "
        "from redacted.trajectories"))
    for key, group, task_type, spec, _success, label, destination, rule_ids in rows:
        assert decisions[key][2] == "train" and destination in ("train", "excluded"), key
        assert group not in eval_groups, key
        assert consent[key] and not consent_rules & set(rule_ids), key
        assert destination == decisions[key][0] and label == decisions[key][4]
        spec = json.loads(spec)
        assert spec["task_type"] == task_type and spec["checks"]
    # a failed attempt is a fine task; so is a record other rules kept out of the other marts
    assert any(r[5] == "bad" for r in rows) and any(r[4] is False for r in rows)
    assert any(r[6] == "excluded" for r in rows) and any(r[6] == "train" for r in rows)
    # and the training-split records with a spec that consent kept out are missing
    assert any(decisions[k][2] == "train" and consent_rules & set(decisions[k][1]) for k in with_spec)


def test_preference_pairs_prefer_something_different(curated, decisions):
    rows = curated.rows("select pair_source, prompt, chosen, rejected, chosen_record_key, rejected_record_key "
                        "from marts.preference_pairs")
    assert rows and {r[0] for r in rows} == {"attempts", "correction"}
    for source, prompt, chosen, rejected, chosen_key, rejected_key in rows:
        prompt, chosen, rejected = json.loads(prompt), json.loads(chosen), json.loads(rejected)
        assert chosen != rejected
        assert prompt[-1]["role"] == "user" and chosen[0]["role"] == rejected[0]["role"] == "assistant"
        assert decisions[rejected_key][4] == "bad" and decisions[rejected_key][0] == "train"
        if source == "attempts":
            assert decisions[chosen_key][4] == "good" and decisions[chosen_key][0] == "train"


def test_kto_examples_have_both_labels(curated):
    labels = dict(curated.rows("select label, count(*) from marts.kto_examples group by 1"))
    assert labels.get(True, 0) > 0 and labels.get(False, 0) > 0
    for prompt, completion in curated.rows("select prompt, completion from marts.kto_examples"):
        assert json.loads(prompt)[-1]["role"] == "user"
        assert json.loads(completion)[0]["role"] == "assistant"


def test_planted_defects_are_excluded_with_their_rule(curated, decisions):
    expected = {
        "unanswered": "R05_unanswered_tool_call",
        "role_order": "R06_role_order",
        "over_long": "R08_over_long",
        "lucky": "R09_lucky_success",
    }
    for plant, rule in expected.items():
        destination, rule_ids = decisions[PLANTED[plant]][:2]
        assert destination == "excluded" and rule in rule_ids, (plant, rule_ids)
    labels = dict(curated.rows(
        "select record_key, step_label from intermediate.int_step_labels where record_key = ? and is_error",
        [PLANTED["lucky"]]))
    assert labels == {PLANTED["lucky"]: "tool_error_unrecovered"}
    recovered = curated.rows(
        "select count(*) from intermediate.int_step_labels where step_label = 'tool_error_recovered'")
    assert recovered[0][0] > 0


@pytest.mark.parametrize(("mart", "key", "other_split_mart"), [
    ("eval_cases", "case_id", "sft_examples"),  # an eval case whose group is a training group
    ("rl_tasks", "record_key", "eval_cases"),  # a training task whose group is an eval group
])
def test_the_leak_test_fails_when_a_group_is_in_both_splits(curated, tmp_path, mart, key, other_split_mart):
    leaky = tmp_path / "leaky.duckdb"
    shutil.copy(curated.db, leaky)
    with duckdb.connect(str(leaky)) as con:
        con.execute(
            f"insert into marts.{mart} by name "
            f"select 'leak' as {key}, m.* exclude ({key}, split_group_key), "
            f"(select split_group_key from marts.{other_split_mart} limit 1) as split_group_key "
            f"from marts.{mart} m limit 1"
        )
    result = _dbt(["test", "--select", "assert_no_split_group_leak"], curated.project, leaky)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "FAIL 1 assert_no_split_group_leak" in result.stdout
