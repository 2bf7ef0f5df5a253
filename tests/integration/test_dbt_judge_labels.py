"""Judge labels in curation, on hand-made trajectories: a judge's verdict labels what nothing
verified and no human rated, never weakens a verified or human label, and its agreement with
verified outcomes (Cohen's kappa, confusion matrix) is measured on the records that have both.
Expected numbers come from dbt_project.yml's vars and from scikit-learn's cohen_kappa_score."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from test_dbt_curation import DBT_PROJECT_DIR, VARS, _dbt
from test_dbt_labels import ABANDONED, GOOD_RATING, PARTITION, Case, _tables

from pipeline.core.judge import RUBRIC_VERSION
from pipeline.shell.warehouse import LABELS_SCHEMA, replace_partition

JUDGE_MODEL = "judge-test-model"
JUDGE, HUMAN, VERIFIED = (VARS[f"label_confidence_{tier}"] for tier in ("judge", "human", "verified"))
PENALTY, MIN_CONFIDENCE = VARS["label_conflict_penalty"], VARS["label_min_confidence"]

# case → the judge's verdict: True passed, False failed, None an unreadable reply
CASES: dict[str, tuple[Case, bool | None]] = {
    "judge_pass": (Case("judge_pass"), True),
    "judge_fail": (Case("judge_fail"), False),
    "judge_unreadable": (Case("judge_unreadable"), None),
    "judge_vs_verified": (Case("judge_vs_verified", success=False, verified_by="environment"), True),
    "judge_vs_human": (Case("judge_vs_human", feedback=[("rating", GOOD_RATING, "human")]), False),
    "judge_vs_implicit": (Case("judge_vs_implicit", termination="user_abandoned", feedback=[ABANDONED]), True),
    # verified records the judge also scored: its agreement is measured on these (and judge_vs_verified)
    **{f"agree_{i}": (Case(f"agree_{i}", success=ok, verified_by="test"), verdict)
       for i, (ok, verdict) in enumerate([(True, True)] * 5 + [(True, False)] * 2 + [(False, False)] * 3
                                         + [(False, True)] + [(True, None)])},
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge")
    path = root / "warehouse.duckdb"
    judge_rows = [{"partition_date": PARTITION, "record_key": case.key, "judge_model": JUDGE_MODEL,
                   "rubric_version": RUBRIC_VERSION, "goal_achieved": verdict, "policy_followed": verdict,
                   "tool_use_correct": verdict, "passed": verdict, "reply": "{...}"}
                  for case, verdict in CASES.values()]
    with duckdb.connect(str(path)) as con:
        replace_partition(con, PARTITION, _tables([case for case, _ in CASES.values()]), schema="redacted")
        replace_partition(con, PARTITION, {"judge_labels": judge_rows}, schema=LABELS_SCHEMA)
    project = root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    for command in (["run", "--select", "+int_quality_labels", "+int_judge_agreement"],
                    ["test", "--select", "int_quality_labels", "int_judge_agreement"]):
        done = _dbt(command, project, path)
        assert done.returncode == 0, done.stdout[-5000:]
    return path


def _labels(db) -> dict[str, tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select record_key, label, label_source, label_confidence, label_reason, judge_model, "
                           "judge_rubric_version from intermediate.int_quality_labels").fetchall()
    names = {case.key: name for name, (case, _) in CASES.items()}
    return {names[r[0]]: (r[1], r[2], float(r[3]), r[4], r[5], r[6]) for r in rows}


def test_a_judge_verdict_labels_what_nothing_else_does_and_says_whose_it_is(db):
    labels = _labels(db)
    assert labels["judge_pass"] == ("good", "judge", pytest.approx(JUDGE), "judge_uncontested", JUDGE_MODEL,
                                    RUBRIC_VERSION)
    assert labels["judge_fail"][:4] == ("bad", "judge", pytest.approx(JUDGE), "judge_uncontested")
    # an unreadable reply is no signal at all
    assert labels["judge_unreadable"][:4] == ("unknown", "none", 0.0, "no_outcome_signal")


def test_a_judge_never_overrides_or_weakens_a_verified_or_human_label(db):
    labels = _labels(db)
    assert labels["judge_vs_verified"][:4] == ("bad", "verified_outcome", pytest.approx(VERIFIED),
                                               "verified_outcome_uncontested")
    assert labels["judge_vs_human"][:4] == ("good", "human_rating", pytest.approx(HUMAN), "human_uncontested")


def test_implicit_signals_contradicting_the_judge_cost_it_confidence(db):
    label, source, confidence, reason, *_ = _labels(db)["judge_vs_implicit"]
    expected = JUDGE - PENALTY
    assert source == "judge" and reason.startswith("judge_") and "implicit" in reason
    assert label == ("unknown" if expected < MIN_CONFIDENCE else "good")
    assert confidence == pytest.approx(0.0 if label == "unknown" else expected)


def test_agreement_with_verified_outcomes_is_cohens_kappa_on_the_records_with_both(db):
    with duckdb.connect(str(db), read_only=True) as con:
        [row] = con.execute("select judge_model, rubric_version, n_scored, n_unreadable, both_pass, "
                            "judge_pass_verified_fail, judge_fail_verified_pass, both_fail, cohen_kappa "
                            "from intermediate.int_judge_agreement").fetchall()
    both = [(case.success, verdict) for case, verdict in CASES.values() if case.verified_by is not None]
    readable = [(ok, verdict) for ok, verdict in both if verdict is not None]
    truth, judged = [ok for ok, _ in readable], [v for _, v in readable]
    (tn, fp), (fn, tp) = confusion_matrix(truth, judged, labels=[False, True])
    assert row[:4] == (JUDGE_MODEL, RUBRIC_VERSION, len(both), len(both) - len(readable))
    assert row[4:8] == (tp, fp, fn, tn)
    assert row[8] == pytest.approx(cohen_kappa_score(truth, judged))
