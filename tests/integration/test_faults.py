"""The lakeFS server, or the run itself, SIGKILLed at every point of a release.

The scenarios live in pipeline/harness/fault_scenarios.py because `flywheel bench
reliability` runs and counts the same ones; here every scenario must hold on its own.
"""

import pytest

from pipeline.harness.fault_scenarios import RELEASE_FAULTS, release_fault_scenarios
from pipeline.harness.throwaway_stack import throwaway_lakefs
from pipeline.settings import get_settings


@pytest.fixture(scope="module")
def scenarios():
    with throwaway_lakefs(get_settings()) as (stack, client):
        return release_fault_scenarios(stack, client, log=print)["scenarios"]


@pytest.mark.parametrize("index", range(len(RELEASE_FAULTS)),
                         ids=[f"{who}-{point}+{ms}ms" for who, point, ms in RELEASE_FAULTS])
def test_a_killed_release_never_partly_updates_main_and_reruns_into_one_release(scenarios, index):
    scenario = scenarios[index]
    assert scenario["fault_fired"] and scenario["victim_killed"], scenario
    assert scenario["main_after_crash"] in ("old", "new"), scenario  # never a mix
    assert scenario["rerun_ok"], scenario
    assert scenario["new_releases"] == 1, scenario
    assert scenario["main_after_rerun"] == "new", scenario


def test_the_kill_before_the_commit_publishes_nothing_and_the_one_after_the_merge_everything(scenarios):
    by_point = {(s["killed"], s["failpoint"], s["delay_ms"]): s["main_after_crash"] for s in scenarios}
    assert by_point[("lakefs", "release.before_commit", 0)] == "old"
    assert by_point[("lakefs", "release.after_commit", 0)] == "old"
    assert by_point[("lakefs", "release.after_merge", 0)] == "new"
    assert by_point[("run", "release.after_merge", 0)] == "new"
