"""`flywheel bench ingest`: the whole raw_agent_logs step next to DuckDB's bare `read_json`
(the C++ reader: no lakeFS, no accounting, no quarantine) and a plain `json.loads` loop (the
naive baseline), on the same simulated landing files, in one run.

Each arm runs in a fresh process (`python -m pipeline.benchmarks.ingest ARM ...`) so that its
peak memory is its own; its clock starts after imports. The arms run in rounds, one of each
in turn, and each arm's median round is reported: on a shared 2-core machine one run of an
arm varies by ±20 %, and a ratio of two single runs inherits both errors. The step runs
against a throwaway lakeFS server (persistent local KV, as `flywheel up` runs it) and a
temporary DuckDB file, in a Dagster instance created before the clock starts (a deployed
run has its instance before any step runs). It parses in worker processes (FLYWHEEL_INGEST_WORKERS, default one
per core): its peak memory is the whole process tree's, sampled.
The two baselines read only the JSON files (DuckDB cannot read the ReAct text transcripts);
MB/s are over the bytes each arm read.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.benchmarks.samplers import RssSampler, peak_hwm
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.shell.failpoints import without_failpoints

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
RAW_REPO = "bench-raw"


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    across exec, so a child would report the (larger) parent's peak."""
    hwm = peak_hwm()
    return round(hwm / 2**20 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _json_files(landing: Path) -> list[Path]:
    return sorted(p for p in landing.iterdir() if p.name.endswith(JSON_SUFFIXES))


def arm_raw_agent_logs(landing_day: Path, endpoint: str, db: Path) -> dict[str, Any]:
    """The asset itself: lakeFS commit, parse from the commit, quarantine, DuckDB write."""
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from assets.ingestion import raw_agent_logs
    from pipeline.orchestration.resources import LakeFSResource

    instance = dg.DagsterInstance.ephemeral()
    with RssSampler(interval=0.02, with_descendants=True) as tree:
        started = time.perf_counter()
        result = dg.materialize([raw_agent_logs], partition_key=landing_day.name, instance=instance,
                                resources={"lakefs": LakeFSResource(endpoint=endpoint),
                                           "duckdb": DuckDBResource(database=str(db))})
        seconds = time.perf_counter() - started
    [event] = result.asset_materializations_for_node("raw_agent_logs")
    metadata = {k: v.value for k, v in event.metadata.items()}
    return {"seconds": seconds, "bytes": sum(p.stat().st_size for p in landing_day.iterdir()),
            "records": metadata["records_read"], "trajectories": metadata["dagster/row_count"],
            "quarantined": metadata["records_quarantined"], "peak_rss_tree_mb": round(tree.peak / 2**20, 1),
            **_tool_set_bytes(db)}


def _tool_set_bytes(db: Path) -> dict[str, int]:
    """The tool schemas' JSON as stored (each distinct set once per day) against what one
    copy per trajectory row, the earlier layout, would hold: the same rows, counted both ways."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        [(once, repeated)] = con.execute(
            "select (select sum(strlen(tools::varchar)) from raw.tool_sets), sum(strlen(s.tools::varchar)) "
            "from raw.trajectories t join raw.tool_sets s using (partition_date, tool_set_id)"
        ).fetchall()
    return {"tool_sets_bytes": int(once or 0), "tools_one_copy_per_row_bytes": int(repeated or 0)}


def arm_duckdb_read_json(landing_day: Path) -> dict[str, Any]:
    """DuckDB's reader over the JSON files into a table (schemas unified by name; bad lines
    skipped, not accounted for)."""
    import duckdb

    files = [str(p) for p in _json_files(landing_day)]
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute("CREATE TABLE landed AS SELECT * FROM read_json(?, format = 'newline_delimited', "
                "union_by_name = true, ignore_errors = true, maximum_object_size = 16777216)", [files])
    rows = con.execute("SELECT count(*) FROM landed").fetchone()[0]
    return {"seconds": time.perf_counter() - started, "bytes": sum(os.path.getsize(f) for f in files),
            "records": rows}


def arm_json_loads(landing_day: Path) -> dict[str, Any]:
    """Read each JSON file and `json.loads` every non-blank line; failures only counted."""
    started = time.perf_counter()
    size = records = failed = 0
    for path in _json_files(landing_day):
        data = path.read_bytes()
        size += len(data)
        for line in data.split(b"\n"):
            if line.strip():
                try:
                    json.loads(line)
                    records += 1
                except ValueError:
                    failed += 1
    return {"seconds": time.perf_counter() - started, "bytes": size, "records": records, "failed": failed}


def _run_arm(arm: str, landing_day: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "pipeline.benchmarks.ingest", arm, str(landing_day), *args],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"bench arm {arm} failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = result["seconds"]
    result |= {"mb": round(result["bytes"] / 1e6, 2), "mb_per_second": round(result["bytes"] / 1e6 / seconds, 2),
               "records_per_second": round(result["records"] / seconds, 1), "seconds": round(seconds, 3)}
    if "trajectories" in result:
        result["trajectories_per_second"] = round(result["trajectories"] / seconds, 1)
    return result


ARMS = ("raw_agent_logs", "duckdb_read_json", "json_loads")


def run_ingest_bench(
    settings: Settings, n: int, seed: int, log: Callable[[str], None] = print, repeat: int = 3
) -> dict[str, Any]:
    """The three arms, `repeat` rounds of each in turn (a slow moment of the machine then
    hits every arm of its round, not one arm); each arm's median round is reported. Every
    round of the step ingests into its own lakeFS repository and DuckDB file, as a first
    ingestion of the day would."""
    from pipeline.harness.throwaway_stack import throwaway_lakefs
    from pipeline.simulator import simulate

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-ingest-") as work, \
            throwaway_lakefs(settings) as (stack, _client):
        log(f"simulating {n} trajectories ...")
        simulate(days=1, per_day=n, out_dir=Path(work), seed=seed)
        [landing_day] = sorted((Path(work) / "landing").iterdir())
        env = without_failpoints({**os.environ, "FLYWHEEL_LANDING_DIR": str(landing_day.parent)})
        rounds = []
        for i in range(repeat):
            arm_args = {"raw_agent_logs": (stack.lakefs_endpoint, str(Path(work) / f"bench-{i}.duckdb")),
                        "duckdb_read_json": (), "json_loads": ()}
            results = {}
            for name in ARMS:
                log(f"round {i + 1}/{repeat}: running {name} ...")
                results[name] = _run_arm(name, landing_day, {**env, "FLYWHEEL_RAW_REPO": f"{RAW_REPO}-{i}"},
                                         *arm_args[name])
                log(f"  {name}: {results[name]}")
            rounds.append(results)
    arms = {name: _median_round([r[name] for r in rounds]) for name in ARMS}
    return {"trajectories_simulated": n, "rounds": repeat, **arms,
            "ours_share_of_duckdb_mb_per_second": round(
                arms["raw_agent_logs"]["mb_per_second"] / arms["duckdb_read_json"]["mb_per_second"], 3),
            "share_per_round": [round(r["raw_agent_logs"]["mb_per_second"] / r["duckdb_read_json"]["mb_per_second"], 3)
                                for r in rounds]}


def _median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time (the faster middle one for an even count), with every time."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "seconds_all": [r["seconds"] for r in runs]}


def format_ingest_bench(result: dict[str, Any]) -> str:
    lines = [f"median of {result['rounds']} rounds per arm",
             f"{'arm':18} {'MB':>7} {'seconds':>8} {'MB/s':>7} {'records/s':>10} {'traj/s':>8} "
             f"{'peak RSS MB':>11} {'(at start)':>10} {'+ workers':>9}  all seconds"]
    for arm in ARMS:
        r = result[arm]
        lines.append(f"{arm:18} {r['mb']:>7} {r['seconds']:>8} {r['mb_per_second']:>7} {r['records_per_second']:>10} "
                     f"{r.get('trajectories_per_second', '-'):>8} {r['peak_rss_mb']:>11} {r['rss_before_mb']:>10} "
                     f"{r.get('peak_rss_tree_mb', '-'):>9}  {r['seconds_all']}")
    per_round = ", ".join(f"{share:.0%}" for share in result["share_per_round"])
    ours = result["raw_agent_logs"]
    lines.append(f"raw_agent_logs reaches {result['ours_share_of_duckdb_mb_per_second']:.0%} of DuckDB read_json's "
                 f"MB/s (target: 60%; round by round: {per_round}); it read {ours['records']} records, "
                 f"quarantined {ours['quarantined']}, ingested {ours['trajectories']} trajectories")
    lines.append(f"tool schemas stored: {ours['tool_sets_bytes'] / 1e6:.2f} MB as distinct tool sets, where one "
                 f"copy per trajectory row would be {ours['tools_one_copy_per_row_bytes'] / 1e6:.2f} MB")
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    import dagster  # noqa: F401 - every arm pays the same imports before rss_before is taken
    import duckdb  # noqa: F401
    import lakefs  # noqa: F401 - the step's resource imports it on first use
    import pandas  # noqa: F401 - pyarrow imports it on the first conversion of Python rows

    arm, landing_day, *rest = argv
    rss_before = _peak_rss_mb()  # the interpreter and its imports, before the arm reads anything
    functions = {"raw_agent_logs": arm_raw_agent_logs, "duckdb_read_json": arm_duckdb_read_json,
                 "json_loads": arm_json_loads}
    result = functions[arm](Path(landing_day), *(Path(a) if a.endswith(".duckdb") else a for a in rest))
    print(json.dumps({**result, "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": rss_before}))


if __name__ == "__main__":
    _main(sys.argv[1:])
