"""Parsing a partition's files in worker processes (what raw_agent_logs does) gives exactly
the tables and counts of parsing them one by one in this process, and DuckDB stores the
Arrow tables the workers return exactly as it stores row dicts."""

from pathlib import Path

import duckdb
import pytest

from pipeline.shell.ingest import SourceFile, file_workers, ingest_files, merge_columnar, parse_files_columnar
from pipeline.shell.warehouse import partition_digests, replace_partition, to_arrow
from pipeline.simulator import simulate


@pytest.fixture(scope="module")
def landing_files(tmp_path_factory: pytest.TempPathFactory) -> list[SourceFile]:
    out = tmp_path_factory.mktemp("sim")
    simulate(days=1, per_day=80, out_dir=out, seed=13)
    [day] = sorted((out / "landing").iterdir())
    return [SourceFile(p.name, f"lakefs://raw/c0/dt={day.name}/{p.name}", p.read_bytes())
            for p in sorted(day.iterdir())]


def test_worker_processes_give_the_serial_tables_and_counts(landing_files: list[SourceFile]) -> None:
    serial = ingest_files(landing_files, partition="p", raw_commit="c0")
    with file_workers(2) as map_files:
        parallel = merge_columnar(
            parse_files_columnar(landing_files, partition="p", raw_commit="c0", map_files=map_files))
    assert parallel.files == serial.files
    assert (parallel.records_read, parallel.ingested, parallel.quarantined) == (
        serial.records_read, serial.ingested, serial.quarantined)
    assert serial.quarantined > 0 and len(serial.tables["tool_calls"]) > 0  # the mess was planted
    for table, rows in serial.tables.items():
        assert parallel.tables[table].to_pylist() == to_arrow(rows, table).to_pylist(), table


def test_one_worker_means_this_process(landing_files: list[SourceFile]) -> None:
    with file_workers(1) as map_files:
        assert map_files is map
        result = merge_columnar(
            parse_files_columnar(landing_files[:2], partition="p", raw_commit="c0", map_files=map_files))
    assert result.records_read == result.ingested + result.quarantined > 0


def test_arrow_tables_and_row_dicts_store_the_same_partition(landing_files: list[SourceFile], tmp_path: Path) -> None:
    rows = ingest_files(landing_files, partition="p", raw_commit="c0").tables
    columnar = merge_columnar(parse_files_columnar(landing_files, partition="p", raw_commit="c0")).tables
    digests = []
    for name, tables in (("rows", rows), ("arrow", columnar)):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as con:
            written = replace_partition(con, "p", tables)
            digests.append(partition_digests(con, "p"))
        assert written["trajectories"] == len(rows["trajectories"]) > 0
    assert digests[0] == digests[1]


def test_rows_parsed_before_the_commit_existed_name_it_once_bound(landing_files: list[SourceFile]) -> None:
    """raw_agent_logs parses while lakeFS commits: files named by their object path, then
    bound to the commit, give exactly the tables of parsing the committed URIs."""
    from dataclasses import replace

    from pipeline.shell.ingest import bind_commit

    prefix = "lakefs://raw/c0/"
    by_path = [replace(f, uri=f.uri.removeprefix(prefix)) for f in landing_files]
    with file_workers(2) as map_files:
        unbound = merge_columnar(
            parse_files_columnar(by_path, partition="p", raw_commit=None, map_files=map_files))
    bound = bind_commit(unbound, prefix, "c0")
    expected = merge_columnar(parse_files_columnar(landing_files, partition="p", raw_commit="c0"))
    assert unbound.tables["quarantine"].num_rows > 0
    for table in expected.tables:
        assert bound.tables[table].to_pylist() == expected.tables[table].to_pylist(), table
    assert bound.files == expected.files
    with pytest.raises(ValueError, match="raw commit already"):
        bind_commit(bound, prefix, "c0")


def test_workers_exit_when_the_step_that_owns_them_is_killed() -> None:
    """A SIGKILLed step cannot shut its pool down: its idle workers must notice and exit, or
    they wait forever on their task queue, holding the step's stdout pipe open."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import os, time, psutil\n"
         "from pipeline.shell.ingest import file_workers\n"
         "with file_workers(2) as map_files:\n"
         "    assert list(map_files(abs, [-1, -2])) == [1, 2]\n"
         "    me = psutil.Process()\n"
         "    print(' '.join(str(p.pid) for p in me.children(recursive=True)), flush=True)\n"
         "    time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    descendants = [psutil.Process(int(pid)) for pid in owner.stdout.readline().split()]
    assert len(descendants) >= 3  # the forkserver and two workers (and the resource tracker)
    owner.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                              for p in descendants):
        time.sleep(0.2)
    left = [p.pid for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for pid in left:  # don't leave them to the next test
        psutil.Process(pid).kill()
    assert left == []
    assert owner.stdout.read() == ""  # EOF: nothing holds the pipe any more
    owner.wait()


def test_a_record_whose_id_cannot_be_stored_is_quarantined_and_the_file_still_stored() -> None:
    """A lone surrogate (valid JSON escape, not UTF-8) in the trajectory id: the record is
    quarantined with an excerpt that can itself be stored, and the rest of the file is kept."""
    from test_formats import full_trajectory

    from pipeline.core.formats import export
    from pipeline.shell.ingest import IngestRules, ingest_file_columnar

    good = export("canonical", [full_trajectory("t-ok")])
    bad = good.replace(b'"t-ok"', b'"t-\\ud800"')
    assert bad != good
    part = ingest_file_columnar(SourceFile("c.jsonl", "lakefs://raw/c0/c.jsonl", good + bad),
                                partition="p", raw_commit="c0", rules=IngestRules())
    [stats] = part.files
    assert (stats.records_read, stats.ingested, stats.quarantined) == (2, 1, 1)
    [row] = part.tables["quarantine"].to_pylist()
    assert row["reason"] == "parse_error" and row["raw_excerpt"] == "trajectory_id=t-\\ud800"


def test_a_warehouse_made_by_an_older_layout_is_brought_to_the_new_one(landing_files: list[SourceFile],
                                                                   tmp_path: Path) -> None:
    """A raw.trajectories created before tool_set_id existed (and with the tools column the
    layout then had): ingestion adds the new column, drops the old one, writes the partition."""
    from pipeline.shell.warehouse import RAW_TABLES

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    old_columns = RAW_TABLES["trajectories"].replace("tool_set_id VARCHAR,", "tools JSON,")
    con.execute("CREATE SCHEMA raw")
    con.execute(f"CREATE TABLE raw.trajectories ({old_columns})")
    tables = merge_columnar(parse_files_columnar(landing_files, partition="p", raw_commit="c0")).tables
    written = replace_partition(con, "p", tables)
    assert written["trajectories"] > 0
    stored = con.execute("SELECT count(*), count(tool_set_id) FROM raw.trajectories").fetchone()
    assert stored == (written["trajectories"], written["trajectories"])
    columns = [r[0] for r in con.execute("DESCRIBE raw.trajectories").fetchall()]
    assert sorted(columns) == sorted(c.split()[0] for c in RAW_TABLES["trajectories"].split(","))  # tools gone
