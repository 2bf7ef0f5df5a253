"""The portable warehouse: the same curation, from the same inputs, on DuckDB and on a real
PostgreSQL gives the same marts, byte for byte once sorted.

One simulated corpus (test_dbt_curation's: three days of traffic with replays, near
duplicates and planted defects), plus judge labels and a consent revocation so that every
label tier and rule is exercised, is written to a DuckDB file and copied table by table to
a PostgreSQL database. On each, the Python curation inputs are written through the
warehouse abstraction (schema `derived`), then the same dbt project runs one `dbt build`
(targets `duckdb` and `warehouse`), every data test included. Every mart of MART_KEYS is
then read back into pandas, as the release does before writing Parquet, and compared.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import duckdb
import pandas as pd
import pytest
from test_dbt_curation import DBT, DBT_PROJECT_DIR, RAW_COMMIT, TABLES, _plant_defects, _uri

from pipeline.shell.curation_inputs import write_curation_inputs
from pipeline.shell.ingest import SourceFile, ingest_files
from pipeline.shell.marts import MART_KEYS, load_mart, parquet_bytes
from pipeline.shell.postgres import create_databases
from pipeline.shell.sql_warehouse import DuckDBWarehouse, PostgresWarehouse, copy_duckdb_schemas
from pipeline.shell.warehouse import LABELS_SCHEMA, record_consent_revocation, replace_partition
from pipeline.simulator import simulate

DATABASE = "portable_marts"
INPUT_SCHEMAS = ("redacted", LABELS_SCHEMA, "governance")  # what dbt reads (besides `derived`)


def _inputs(root) -> duckdb.DuckDBPyConnection:
    """The corpus in a DuckDB file: redacted tables, judge labels, one consent revocation."""
    sim = root / "sim"
    simulate(days=3, per_day=150, out_dir=sim, seed=7)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    for day_dir in sorted((sim / "landing").iterdir()):
        files = [SourceFile(p.name, _uri(day_dir.name, p.name), p.read_bytes()) for p in sorted(day_dir.iterdir())]
        replace_partition(con, day_dir.name, ingest_files(files, partition=day_dir.name, raw_commit=RAW_COMMIT).tables)
    con.execute("create schema redacted")
    for table in TABLES:
        con.execute(f"create table redacted.{table} as select * from raw.{table}")
    _plant_defects(con, set())
    # the simulator verifies every outcome: un-verify some, so that human feedback, the judge
    # and implicit signals decide labels too; the judge also scores some verified records
    con.execute("update redacted.trajectories set verified_by = null where record_key in "
                "(select record_key from redacted.trajectories where record_key not like 'planted%' "
                "order by md5(record_key) limit 90)")
    keys = [k for (k,) in con.execute(
        "(select record_key from redacted.trajectories where verified_by is null order by record_key limit 45) "
        "union all (select record_key from redacted.trajectories where verified_by is not null "
        "order by record_key limit 15)").fetchall()]
    judged = [{"partition_date": "2026-11-16", "record_key": key, "judge_model": "judge", "rubric_version": "v1",
               "goal_achieved": None, "policy_followed": None, "tool_use_correct": None,
               "passed": (True, False, None)[i % 3], "reply": "{}"} for i, key in enumerate(keys)]
    replace_partition(con, "2026-11-16", {"judge_labels": judged}, schema=LABELS_SCHEMA)
    [(user,)] = con.execute("select min(user_id) from redacted.trajectories").fetchall()
    record_consent_revocation(con, user, "portable warehouse test")
    return con


def _build(project_root, env: dict[str, str]) -> subprocess.CompletedProcess:
    project = project_root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
    return subprocess.run([DBT, "build", "--profiles-dir", str(project)], cwd=project, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})


@pytest.fixture(scope="module")
def marts(tmp_path_factory, postgres_server) -> dict[str, dict[str, pd.DataFrame]]:
    import psycopg2
    import psycopg2.extras

    root = tmp_path_factory.mktemp("portable")
    create_databases(postgres_server, [DATABASE])
    con = _inputs(root)
    pg = psycopg2.connect(postgres_server.url(DATABASE))
    # JSON comes back as the text the warehouse holds, not parsed (DuckDB returns text too)
    psycopg2.extras.register_default_json(pg, loads=lambda text: text)
    try:
        copy_duckdb_schemas(con, PostgresWarehouse(pg), INPUT_SCHEMAS)
        write_curation_inputs(PostgresWarehouse(pg))
        write_curation_inputs(DuckDBWarehouse(con))
        con.close()

        duck_build = _build(root / "duckdb", {"FLYWHEEL_DBT_TARGET": "duckdb",
                                              "FLYWHEEL_DUCKDB_PATH": str(root / "warehouse.duckdb")})
        assert duck_build.returncode == 0, duck_build.stdout[-5000:]
        pg_build = _build(root / "postgres", {
            "FLYWHEEL_DBT_TARGET": "warehouse", "FLYWHEEL_WAREHOUSE_HOST": postgres_server.host,
            "FLYWHEEL_WAREHOUSE_PORT": str(postgres_server.port), "FLYWHEEL_WAREHOUSE_USER": postgres_server.user,
            "FLYWHEEL_WAREHOUSE_PASSWORD": postgres_server.password, "FLYWHEEL_WAREHOUSE_DB": DATABASE,
        })
        assert pg_build.returncode == 0, pg_build.stdout[-5000:]
        assert "ERROR=0" in pg_build.stdout and "assert_no_split_group_leak" in pg_build.stdout

        frames: dict[str, dict[str, pd.DataFrame]] = {"duckdb": {}, "postgres": {}}
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as duck:
            for name in MART_KEYS:
                frames["duckdb"][name] = load_mart(duck, name)
        with pg.cursor() as cur:
            for name in MART_KEYS:
                cur.execute(f"select * from marts.{name}")
                frames["postgres"][name] = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
        return frames
    finally:
        pg.close()


def _as_duckdb_gives_it(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """A mart read from PostgreSQL (psycopg2's Python values) in the pandas dtypes DuckDB's
    `.df()` gives the same columns. The normalisation, and why it is needed:
    - numeric -> float64: DuckDB computes the decimal columns (label_confidence,
      quality_score) as DECIMAL and `.df()` returns float64; psycopg2 returns Decimal;
    - date -> datetime64: `.df()` turns DATE into datetime64, psycopg2 into datetime.date;
    - integers -> int32/int64/Int64: psycopg2 has one int type; DuckDB distinguishes INTEGER
      (int32) and BIGINT (int64, or nullable Int64 where NULLs occur);
    - text[] -> an object array per row: DuckDB returns LIST values as numpy arrays.
    Values are not touched otherwise: text, JSON text and doubles must already be equal."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values, dtype = frame[column], like[column].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype):
            out[column] = pd.to_datetime(values).astype(dtype)
        elif pd.api.types.is_float_dtype(dtype):
            out[column] = values.map(lambda v: None if v is None else float(v)).astype(dtype)
        elif pd.api.types.is_integer_dtype(dtype):
            out[column] = values.astype(dtype)
        elif like[column].map(lambda v: hasattr(v, "dtype") and hasattr(v, "tolist")).any():
            out[column] = values.map(lambda v: None if v is None else pd.array(v, dtype=object).to_numpy())
        else:
            out[column] = values
    return out


def _sorted(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    # in Python's order (code points): the two engines' ORDER BY collations differ
    return frame.sort_values(list(MART_KEYS[name]), ignore_index=True)


@pytest.mark.parametrize("name", list(MART_KEYS))
def test_a_mart_is_the_same_bytes_on_duckdb_and_postgresql(marts, name):
    duck = _sorted(marts["duckdb"][name], name)
    pg = _sorted(_as_duckdb_gives_it(marts["postgres"][name], marts["duckdb"][name]), name)
    assert len(duck) > 0, f"{name} is empty: the corpus does not exercise it"
    assert list(pg.columns) == list(duck.columns)
    assert len(pg) == len(duck)
    for column in duck.columns:  # the first column that differs, for a readable failure
        left, right = duck[column].tolist(), pg[column].tolist()
        differing = [i for i, (a, b) in enumerate(zip(left, right)) if repr(a) != repr(b)]
        assert not differing, (f"{name}.{column} differs in {len(differing)} rows, e.g. "
                               f"duckdb {left[differing[0]]!r} vs postgres {right[differing[0]]!r}")
    assert parquet_bytes(pg) == parquet_bytes(duck)


def test_the_corpus_exercises_every_rule_and_label_source(marts):
    """So that equal marts mean equal curation logic, not two empty tables."""
    decisions = marts["duckdb"]["curation_decisions"]
    rules = {rule for ids in decisions["rule_ids"] for rule in ids}
    assert {"R01_exact_duplicate", "R02_near_duplicate", "R03_no_consent", "R05_unanswered_tool_call",
            "R06_role_order", "R07_ambiguous_outcome", "R08_over_long", "R12_balance_cap",
            "R13_invalid_tool_call", "R14_consent_revoked"} <= rules
    assert {"verified_outcome", "human_rating", "judge", "implicit"} <= set(decisions["label_source"])
    assert set(marts["duckdb"]["preference_pairs"]["pair_source"]) >= {"attempts"}
