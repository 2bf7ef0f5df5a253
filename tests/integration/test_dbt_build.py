"""`dbt build` of the staging model and its tests on a temporary DuckDB file."""

import os
import shutil
import subprocess
from pathlib import Path

import duckdb

from pipeline.orchestration.resources import venv_tool
from pipeline.settings import DBT_PROJECT_DIR
from pipeline.shell.warehouse import replace_partition


def _row(key: str, fmt: str = "canonical") -> dict:
    return {
        "partition_date": "2026-11-20", "record_key": key, "trajectory_id": f"t-{key}",
        "source_format": fmt, "raw_commit": "c0ffee", "success": True,
        "started_at": "2026-11-20T10:00:00Z", "n_steps": 3, "content_digest": key,
    }


def _dbt_build(db_path: Path, project_copy: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv_tool("dbt"), "build", "--profiles-dir", str(project_copy), "--select", "stg_trajectories"],
        cwd=project_copy, capture_output=True, text=True,
        env={**os.environ, "FLYWHEEL_DUCKDB_PATH": str(db_path), "FLYWHEEL_DBT_TARGET": "duckdb"},
    )


def _project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    return copy


def test_staging_builds_and_its_tests_pass(tmp_path):
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        replace_partition(con, "2026-11-20", {"trajectories": [_row("a"), _row("b", "react_text")]},
                          schema="redacted")
    result = _dbt_build(db, _project_copy(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    with duckdb.connect(str(db)) as con:
        rows = con.execute(
            "select record_key, source_format, partition_date::varchar from staging.stg_trajectories order by 1"
        ).fetchall()
    assert rows == [("a", "canonical", "2026-11-20"), ("b", "react_text", "2026-11-20")]


def test_a_violated_dbt_test_fails_the_build(tmp_path):
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        replace_partition(con, "2026-11-20", {"trajectories": [_row("a", "carrier_pigeon")]},
                          schema="redacted")
    result = _dbt_build(db, _project_copy(tmp_path))
    assert result.returncode != 0
    assert "accepted_values_stg_trajectories_source_format" in result.stdout
