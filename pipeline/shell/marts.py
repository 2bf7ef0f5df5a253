"""The marts as they are validated and released (read, serialise, validate), and as
training and evaluation read them straight from the warehouse.

Shared by the GX asset checks on the marts and by the release, which validates the exact
Parquet bytes it is about to publish, so what passed is what ships.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.redaction.surrogates import IssuedSurrogates
from pipeline.core.training.packing import SFTExample, as_sft_example
from pipeline.evaluation.cases import COLUMNS as EVAL_CASE_COLUMNS
from pipeline.evaluation.cases import EvalCase, load_case, task_id
from pipeline.settings import EXPECTATIONS_DIR
from pipeline.shell.validation import ValidationOutcome, load_suite, validate_dataframe
from pipeline.simulator.tasks import TaskSpec

MARTS_SCHEMA = "marts"
# mart -> the columns that order it (deterministic files, stable digests) and identify a row
MART_KEYS: dict[str, tuple[str, ...]] = {
    "sft_examples": ("record_key",),
    "preference_pairs": ("pair_id",),
    "kto_examples": ("record_key",),
    "eval_cases": ("case_id",),
    "rl_tasks": ("record_key",),
    "curation_decisions": ("record_key",),
    "coverage": ("task_type", "outcome", "split"),
}
SPLIT_MEMBERSHIP = "split_membership"


def load_mart(con: Any, name: str) -> pd.DataFrame:
    order = ", ".join(MART_KEYS[name])
    return con.execute(f"SELECT * FROM {MARTS_SCHEMA}.{name} ORDER BY {order}").df()


def split_membership(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Which split each group key is used in, across every released mart: the frame the
    leakage expectation runs on (a group in two splits is a leak)."""
    parts = [
        frames["sft_examples"][["split_group_key"]].assign(split="train", mart="sft_examples"),
        frames["kto_examples"][["split_group_key"]].assign(split="train", mart="kto_examples"),
        frames["preference_pairs"][["split_group_key"]].assign(split="train", mart="preference_pairs"),
        # correction pairs have no rejected trajectory, hence no second group
        frames["preference_pairs"][["rejected_split_group_key"]]
        .dropna()
        .rename(columns={"rejected_split_group_key": "split_group_key"})
        .assign(split="train", mart="preference_pairs"),
        frames["rl_tasks"][["split_group_key"]].assign(split="train", mart="rl_tasks"),
        frames["eval_cases"][["split_group_key"]].assign(split="eval", mart="eval_cases"),
    ]
    return pd.concat(parts, ignore_index=True)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return buffer.getvalue()


def read_parquet(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()


def validate_suite(
    frame: pd.DataFrame, suite_name: str, docs_root: Path | None = None, issued: IssuedSurrogates | None = None
) -> ValidationOutcome:
    suite = load_suite(EXPECTATIONS_DIR / f"{suite_name}.json")
    id_columns = MART_KEYS.get(suite_name, ("split_group_key", "mart"))
    return validate_dataframe(frame, suite, docs_root=docs_root, id_columns=id_columns, issued=issued)


def outcome_record(outcome: ValidationOutcome) -> dict[str, Any]:
    """A JSON-able summary for check metadata, data cards and verdicts."""
    return {
        "suite": outcome.suite,
        "success": outcome.success,
        "evaluated": outcome.evaluated,
        "summary": outcome.summary(),
        "failures": [
            {
                "expectation": f.expectation,
                "column": f.column,
                "unexpected_count": f.unexpected_count,
                "sample_values": [str(v)[:200] for v in f.sample],
                "sample_rows": [{k: str(v)[:200] for k, v in row.items()} for row in f.rows],
                "observed": None if f.observed is None else str(f.observed)[:200],
            }
            for f in outcome.failures
        ],
    }


# --- the marts as training and evaluation read them from the warehouse -------------------


def load_sft_examples(duckdb_path: Path | str, table: str = "marts.sft_examples",
                      limit: int | None = None) -> list[SFTExample]:
    """Rows of the curated SFT mart, in a stable order (the warehouse is opened read-only)."""
    import duckdb

    sql = f"select messages, tools, weight from {table} order by record_key"
    if limit is not None:
        sql += f" limit {int(limit)}"
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        rows = con.execute(sql).fetchall()
    return [as_sft_example({"messages": m, "tools": t, "weight": w}) for m, t, w in rows]


def load_eval_cases(warehouse: str | Path, table: str = "marts.eval_cases") -> list[EvalCase]:
    """Every case of `table`, ordered by case_id (the DuckDB file is opened read-only)."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cursor = con.execute(f"select {', '.join(EVAL_CASE_COLUMNS)} from {table} order by case_id")
        names = [d[0] for d in cursor.description]
        return [load_case(dict(zip(names, row))) for row in cursor.fetchall()]
    finally:
        con.close()


def load_rl_tasks(frame: pd.DataFrame) -> dict[str, TaskSpec]:
    """The distinct task specs of `rl_tasks` rows (the release's Parquet or the warehouse),
    by task_id, sorted by it. JSON text is decoded; a row without a spec, or whose spec is not
    an object with a task_type (nothing a sandbox can replay), is skipped."""
    specs: dict[str, TaskSpec] = {}
    for spec in frame["task_spec"]:
        if isinstance(spec, (str, bytes)):
            spec = json.loads(spec)
        if isinstance(spec, Mapping) and spec.get("task_type"):
            specs.setdefault(task_id(spec), dict(spec))  # type: ignore[arg-type]
    return dict(sorted(specs.items()))
