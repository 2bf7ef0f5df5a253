"""Quality labels and two label-driven filters of the dbt curation, on hand-made trajectories.

Each trajectory of the small warehouse below carries exactly the outcome signals one case
needs, so the label, its source, confidence and reason are unambiguous:

* the hierarchy verified outcome > human rating or correction > implicit signals, with the
  deciding tier's confidence minus `label_conflict_penalty` per lower tier that contradicts it;
* `unknown` with a reason when the signals conflict (inside a tier, or enough contradictions
  to fall below `label_min_confidence`), or when there is no signal at all;
* R07_ambiguous_outcome: every `unknown` record is excluded and reaches no training mart;
* R10_bottom_quality: the lowest `bottom_quality_percent` of the good demonstrations, by
  quality score, are excluded (0 = off).

Every expected number is computed from the vars of dbt_project.yml, never hard-coded. One
`dbt build` (defaults, with the project's data tests) builds the warehouse; the var
overrides re-run only the affected models on copies of it.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from test_dbt_curation import DBT_PROJECT_DIR, VARS, _dbt  # same dbt invocation and vars

from pipeline.shell.curation_inputs import write_curation_inputs
from pipeline.shell.sql_warehouse import DuckDBWarehouse
from pipeline.shell.warehouse import replace_partition

PARTITION = "2026-11-20"
TASK_TYPE = "lookup"  # one task type: balancing (R12) then keeps every train record
N_VERIFIED_GOOD = 7  # plain verified successes: the top of the R10 ranking

PENALTY = VARS["label_conflict_penalty"]
MIN_CONFIDENCE = VARS["label_min_confidence"]
VERIFIED, HUMAN, IMPLICIT = (VARS[f"label_confidence_{tier}"] for tier in ("verified", "human", "implicit"))


@dataclass
class Case:
    """One hand-made trajectory: its outcome and its feedback as (name, value, source[, corrected])."""

    name: str
    success: bool | None = None
    verified_by: str | None = None
    termination: str = "completed"
    feedback: list[tuple] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"labels://{self.name}#1"


GOOD_RATING = max(5, VARS["rating_good_min"])
BAD_RATING = min(1, VARS["rating_bad_max"])
ABANDONED = ("abandonment", True, "implicit")

CASES = [
    # 1. verified success, but the user rated it badly: the verified outcome decides
    Case("verified_vs_human", success=True, verified_by="environment", feedback=[("rating", BAD_RATING, "human")]),
    # 2. no verified outcome: a good human rating against an abandonment
    Case("human_vs_abandonment", termination="user_abandoned", feedback=[("rating", GOOD_RATING, "human"), ABANDONED]),
    # a human rating (and a correction) with nothing to contradict it
    Case("human_good", feedback=[("rating", GOOD_RATING, "human")]),
    Case("human_correction", feedback=[("correction", None, "human", "The agent should have looked it up.")]),
    # 3. implicit signals only: an unverified success flag, an abandonment
    Case("implicit_good", success=True),
    Case("implicit_bad", termination="user_abandoned", feedback=[ABANDONED]),
    # 4. conflicts: two lower tiers against the verified outcome; a tier against itself; no signal
    Case("verified_vs_both", success=True, verified_by="environment", termination="user_abandoned",
         feedback=[("rating", BAD_RATING, "human"), ABANDONED]),
    Case("human_split", feedback=[("thumbs", "up", "human"), ("rating", BAD_RATING, "human")]),
    Case("implicit_split", success=True, termination="user_abandoned", feedback=[ABANDONED]),
    Case("no_signal"),
    # verified failure: a bad label, for completeness of the hierarchy
    Case("verified_bad", success=False, verified_by="environment"),
    *[Case(f"verified_good_{i}", success=True, verified_by="environment") for i in range(N_VERIFIED_GOOD)],
]
BY_NAME = {c.name: c for c in CASES}


def _tables(cases: list[Case]) -> dict[str, list[dict]]:
    """Redacted rows of well-formed three-step conversations (system, user, final answer) whose
    words are unique to each case, so no exact or near-duplicate rule can touch them."""
    tables: dict[str, list[dict]] = {"trajectories": [], "steps": [], "tool_calls": [], "feedback": []}
    for n, case in enumerate(cases):
        words = " ".join(f"{case.name.replace('_', '')}{i}x{n}" for i in range(12))
        base = {"partition_date": PARTITION, "record_key": case.key, "trajectory_id": case.name}
        tables["trajectories"].append({
            **base, "session_id": f"session-{case.name}", "user_id": f"user-{case.name}", "tenant": "acme",
            "agent_name": "support-agent", "agent_version": "1", "model": "m", "task_type": TASK_TYPE,
            "goal": f"Look up {words}", "started_at": f"{PARTITION}T10:00:00Z", "ended_at": f"{PARTITION}T10:01:00Z",
            "system_prompt": "You are a helpful agent.", "tools": "[]", "request_params": "{}",
            "success": case.success, "reward": None if case.success is None else float(case.success),
            "verified_by": case.verified_by, "termination": case.termination,
            "consent_may_train": True, "consent_scope": "training",
            "task_spec": json.dumps({"task_type": TASK_TYPE, "template_id": f"tpl-{case.name}", "checks": ["answer"]}),
            "extra": "{}", "n_steps": 3, "content_digest": f"digest-{case.name}", "source_format": "canonical",
            "source_uri": f"labels://{case.name}", "source_line": 1, "raw_commit": "c0ffee", "schema_version": "1",
        })
        for index, (role, content) in enumerate([
            ("system", "You are a helpful agent."), ("user", f"Please look up {words}"),
            ("assistant", f"Here is what I found about {words}"),
        ]):
            tables["steps"].append({**base, "step_index": index, "role": role, "content": content})
        for index, (name, value, source, *corrected) in enumerate(case.feedback):
            tables["feedback"].append({
                **base, "feedback_index": index, "name": name, "value": json.dumps(value), "source": source,
                "corrected_output": corrected[0] if corrected else None, "feedback_at": f"{PARTITION}T11:00:00Z",
            })
    return tables


@dataclass
class Warehouse:
    db: Path
    project: Path

    def rows(self, sql: str, params: list | None = None, db: Path | None = None) -> list[tuple]:
        with duckdb.connect(str(db or self.db), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def rerun(self, select: str, dbt_vars: dict, tmp: Path) -> Path:
        """`dbt run` of `select` with vars overridden, on a copy of the built warehouse."""
        copy = tmp / "rerun.duckdb"
        shutil.copy(self.db, copy)
        result = _dbt(["run", "--select", select, "--vars", json.dumps(dbt_vars)], self.project, copy)
        assert result.returncode == 0, result.stdout[-3000:]
        return copy


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    root = tmp_path_factory.mktemp("labels")
    db = root / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        replace_partition(con, PARTITION, _tables(CASES), schema="redacted")
        write_curation_inputs(DuckDBWarehouse(con))  # what the Python assets do before dbt
    project = root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
    build = _dbt(["build"], project, db)
    assert build.returncode == 0, build.stdout[-5000:]
    return Warehouse(db, project)


def _labels(warehouse: Warehouse, db: Path | None = None) -> dict[str, tuple]:
    """case name → (label, label_source, label_confidence, label_reason) from int_quality_labels."""
    rows = warehouse.rows("select record_key, label, label_source, label_confidence, label_reason "
                          "from intermediate.int_quality_labels", db=db)
    by_key = {c.key: c.name for c in CASES}
    # label_confidence is a DECIMAL in DuckDB: compare it as a float
    return {by_key[r[0]]: (r[1], r[2], float(r[3]), r[4]) for r in rows}


def _decisions(warehouse: Warehouse, db: Path | None = None) -> dict[str, tuple]:
    """case name → (destination, rule_ids, label, quality_score, in_sft, in_kto, n_preference_pairs)."""
    rows = warehouse.rows("select record_key, destination, rule_ids, label, quality_score, in_sft, in_kto, "
                          "n_preference_pairs from marts.curation_decisions", db=db)
    by_key = {c.key: c.name for c in CASES}
    return {by_key[r[0]]: (*r[1:4], float(r[4]), *r[5:]) for r in rows}


def test_every_case_gets_exactly_one_label_and_decision(warehouse):
    labels, decisions = _labels(warehouse), _decisions(warehouse)
    assert set(labels) == set(decisions) == set(BY_NAME)
    # the fixture is clean: no rule other than the label-driven ones fires on any case
    fired = {rule for d in decisions.values() for rule in d[1]}
    assert fired <= {"R07_ambiguous_outcome", "R10_bottom_quality", "R11_eval_reference_not_good"}, fired


def test_a_verified_outcome_outranks_a_contradicting_human_rating(warehouse):
    label, source, confidence, reason = _labels(warehouse)["verified_vs_human"]
    assert VERIFIED - PENALTY >= MIN_CONFIDENCE  # one contradiction is not enough to overturn it
    assert (label, source) == ("good", "verified_outcome")
    assert confidence == pytest.approx(VERIFIED - PENALTY)
    assert reason == "verified_outcome_kept_despite_human"
    # and the same verified outcome, uncontested, keeps its full confidence
    assert _labels(warehouse)["verified_good_0"] == ("good", "verified_outcome", pytest.approx(VERIFIED),
                                                     "verified_outcome_uncontested")
    assert _labels(warehouse)["verified_bad"] == ("bad", "verified_outcome", pytest.approx(VERIFIED),
                                                  "verified_outcome_uncontested")


def test_a_human_rating_outranks_implicit_signals(warehouse, tmp_path):
    labels = _labels(warehouse)
    # uncontested human feedback: a rating, and a correction (which always says the output was wrong)
    assert labels["human_good"] == ("good", "human_rating", pytest.approx(HUMAN), "human_uncontested")
    assert labels["human_correction"] == ("bad", "human_correction", pytest.approx(HUMAN), "human_uncontested")
    # a good rating against an abandonment: the human tier decides, the abandonment costs one penalty
    label, source, confidence, reason = labels["human_vs_abandonment"]
    assert source == "human_rating"
    if HUMAN - PENALTY >= MIN_CONFIDENCE:
        assert (label, confidence, reason) == ("good", pytest.approx(HUMAN - PENALTY), "human_kept_despite_implicit")
    else:  # the defaults: 0.75 - 0.3 < 0.5, so the conflict makes it unknown, with the reason
        assert (label, confidence, reason) == ("unknown", 0.0, "human_contradicted_by_implicit")
    # with a smaller penalty the human's polarity wins outright (and never the abandonment's)
    penalty = round(HUMAN - MIN_CONFIDENCE, 4) / 2
    relabelled = _labels(warehouse,
                         warehouse.rerun("int_quality_labels", {"label_conflict_penalty": penalty}, tmp_path))
    assert relabelled["human_vs_abandonment"] == ("good", "human_rating", pytest.approx(HUMAN - penalty),
                                                   "human_kept_despite_implicit")
    assert relabelled["verified_vs_human"][2] == pytest.approx(VERIFIED - penalty)


def test_implicit_signals_alone_give_an_implicit_label(warehouse):
    labels = _labels(warehouse)
    assert labels["implicit_good"] == ("good", "implicit", pytest.approx(IMPLICIT), "implicit_uncontested")
    assert labels["implicit_bad"] == ("bad", "implicit", pytest.approx(IMPLICIT), "implicit_uncontested")


def test_conflicting_signals_give_unknown_with_a_reason(warehouse):
    labels = _labels(warehouse)
    # two lower tiers against the verified outcome push it below the minimum confidence
    assert VERIFIED - 2 * PENALTY < MIN_CONFIDENCE
    assert labels["verified_vs_both"] == ("unknown", "verified_outcome", 0.0,
                                          "verified_outcome_contradicted_by_human_and_implicit")
    # a tier that contradicts itself decides nothing
    assert labels["human_split"] == ("unknown", "human_rating", 0.0, "conflicting_human_signals")
    assert labels["implicit_split"] == ("unknown", "implicit", 0.0, "conflicting_implicit_signals")
    # and no signal at all is not a label either
    assert labels["no_signal"] == ("unknown", "none", 0.0, "no_outcome_signal")
    expected_unknown = {"verified_vs_both", "human_split", "implicit_split", "no_signal"}
    if HUMAN - PENALTY < MIN_CONFIDENCE:
        expected_unknown.add("human_vs_abandonment")
    assert {name for name, label in labels.items() if label[0] == "unknown"} == expected_unknown
    assert all(reason for (_label, _source, _confidence, reason) in labels.values())


def test_ambiguous_outcomes_are_excluded_with_R07(warehouse):
    decisions = _decisions(warehouse)
    unknown = {name for name, d in decisions.items() if d[2] == "unknown"}
    assert {"verified_vs_both", "human_split", "implicit_split", "no_signal"} <= unknown
    for name, (destination, rule_ids, label, _score, in_sft, in_kto, n_pairs) in decisions.items():
        assert ("R07_ambiguous_outcome" in rule_ids) == (label == "unknown"), name
        if label == "unknown":
            assert destination == "excluded" and not in_sft and not in_kto and n_pairs == 0, name
    sft = {k for (k,) in warehouse.rows("select record_key from marts.sft_examples")}
    kto = {k for (k,) in warehouse.rows("select record_key from marts.kto_examples")}
    assert not {BY_NAME[n].key for n in unknown} & (sft | kto)
    assert sft  # the good, kept demonstrations do reach SFT


def _r10(decisions: dict[str, tuple]) -> set[str]:
    return {name for name, d in decisions.items() if "R10_bottom_quality" in d[1]}


def _good_pool(decisions: dict[str, tuple]) -> list[tuple[float, str]]:
    """The good demonstrations no other rule excluded, as (quality score, name), lowest first."""
    return sorted((d[3], name) for name, d in decisions.items()
                  if d[2] == "good" and not set(d[1]) - {"R10_bottom_quality"})


@pytest.mark.parametrize("percent", [0, VARS["bottom_quality_percent"], 25])
def test_R10_drops_the_lowest_scored_good_demonstrations(warehouse, tmp_path, percent):
    if percent == VARS["bottom_quality_percent"]:
        db = None  # the default build
    else:
        db = warehouse.rerun("int_curation_candidates+", {"bottom_quality_percent": percent}, tmp_path)
    decisions = _decisions(warehouse, db)
    pool = _good_pool(decisions)
    assert len(pool) == N_VERIFIED_GOOD + 3  # + verified_vs_human, human_good, implicit_good
    n_dropped = math.floor(len(pool) * percent / 100)
    dropped = _r10(decisions)
    assert len(dropped) == n_dropped
    for _score, name in pool:  # the rest of the pool is kept, in train or eval
        assert (decisions[name][0] == "excluded") == (name in dropped), name
    if percent == 0:
        return
    # the dropped ones are exactly the lowest-scored (the fixture has no tie at the cut)
    assert pool[n_dropped - 1][0] < pool[n_dropped][0]
    assert dropped == {name for _score, name in pool[:n_dropped]}
    for name in dropped:
        destination, rule_ids, label, *_ = decisions[name]
        assert destination == "excluded" and rule_ids == ["R10_bottom_quality"] and label == "good"
    # the scores follow the labels' confidence: implicit < verified-but-contested < human < verified
    score = {name: s for s, name in pool}
    assert score["implicit_good"] < score["verified_vs_human"] < score["human_good"] < score["verified_good_0"]
    # only good demonstrations are ranked: bad and unknown records never get R10
    assert all(decisions[name][2] == "good" for name in dropped)
