"""`flywheel bench ingest` on a small corpus: its three arms read the same files and its
numbers add up (the speeds themselves are measured by the bench, never asserted)."""

from pipeline.benchmarks.ingest import format_ingest_bench, run_ingest_bench
from pipeline.settings import get_settings


def test_ingest_bench_arms_read_the_same_files_and_account_for_every_record():
    result = run_ingest_bench(get_settings(), n=40, seed=3, log=lambda _: None, repeat=2)
    ours, duck, loads = result["raw_agent_logs"], result["duckdb_read_json"], result["json_loads"]
    assert duck["bytes"] == loads["bytes"] < ours["bytes"]  # the baselines skip the ReAct text files
    assert ours["records"] == ours["trajectories"] + ours["quarantined"] and ours["trajectories"] >= 40
    assert loads["records"] + loads["failed"] > 0 and duck["records"] > 0
    assert len(result["share_per_round"]) == 2
    for arm in (ours, duck, loads):  # the median of two rounds is the faster one
        assert len(arm["seconds_all"]) == 2 and arm["seconds"] == min(arm["seconds_all"])
    # tool schemas are stored once per distinct set: less than (or, with one trajectory per
    # set, equal to) a copy per row
    assert 0 < ours["tool_sets_bytes"] <= ours["tools_one_copy_per_row_bytes"]
    assert "raw_agent_logs reaches" in format_ingest_bench(result)
