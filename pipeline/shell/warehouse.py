"""The canonical tables in DuckDB and the partition-replace write.

Schema `raw` holds what ingestion parsed (restricted: it still contains PII); schema
`redacted` holds the same tables after redaction and is the only thing the dbt project
reads. A partition is replaced in one transaction (delete, then insert), so
re-materializing a day never duplicates rows and a crash mid-write leaves the previous
contents in place.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from pipeline.shell.failpoints import failpoint

RAW_SCHEMA = "raw"
REDACTED_SCHEMA = "redacted"
GOVERNANCE_SCHEMA = "governance"
LABELS_SCHEMA = "labels"

_KEY = "partition_date VARCHAR NOT NULL, record_key VARCHAR NOT NULL, trajectory_id VARCHAR"

RAW_TABLES: dict[str, str] = {
    "trajectories": f"""{_KEY},
        session_id VARCHAR, user_id VARCHAR, tenant VARCHAR, agent_name VARCHAR,
        agent_version VARCHAR, model VARCHAR, task_type VARCHAR, goal VARCHAR,
        started_at VARCHAR, ended_at VARCHAR, system_prompt VARCHAR, tool_set_id VARCHAR,
        request_params JSON, success BOOLEAN, reward DOUBLE, verified_by VARCHAR,
        termination VARCHAR, consent_may_train BOOLEAN, consent_scope VARCHAR, task_spec JSON,
        extra JSON, n_steps INTEGER, content_digest VARCHAR, source_format VARCHAR,
        source_uri VARCHAR, source_line INTEGER, raw_commit VARCHAR, schema_version VARCHAR""",
    "steps": f"""{_KEY},
        step_index INTEGER, role VARCHAR, content VARCHAR, reasoning VARCHAR,
        tool_call_id VARCHAR, error VARCHAR, latency_ms DOUBLE, prompt_tokens INTEGER,
        completion_tokens INTEGER, n_tool_calls INTEGER, raw_text VARCHAR, flag VARCHAR""",
    "tool_calls": f"""{_KEY},
        step_index INTEGER, call_index INTEGER, call_id VARCHAR, name VARCHAR, arguments JSON""",
    "feedback": f"""{_KEY},
        feedback_index INTEGER, name VARCHAR, value JSON, source VARCHAR, comment VARCHAR,
        corrected_output VARCHAR, feedback_at VARCHAR""",
    # Each distinct tool set once per day, content-addressed (tool_set_id = sha256 of its JSON):
    # trajectories refer to it. Agents offer the same few tool sets in every trajectory, and
    # repeating their JSON schemas per row was most of the trajectories table's bytes.
    "tool_sets": "partition_date VARCHAR NOT NULL, tool_set_id VARCHAR NOT NULL, tools JSON",
}
# Quarantined records keep a raw excerpt for the operator: they stay in the raw schema only.
QUARANTINE_TABLE = {
    "quarantine": """partition_date VARCHAR NOT NULL, source_file VARCHAR, source_uri VARCHAR,
        source_line INTEGER, source_format VARCHAR, reason VARCHAR NOT NULL, detail VARCHAR,
        raw_excerpt VARCHAR""",
}
# The surrogates redaction wrote in place of personal data (made-up values, one row per
# distinct surrogate of a trajectory): what the release's PII scan accepts.
SURROGATES_TABLE = {
    "surrogates": "partition_date VARCHAR NOT NULL, record_key VARCHAR NOT NULL, entity_type VARCHAR NOT NULL, "
                  "surrogate VARCHAR NOT NULL",
}
# Labels from a judge model (pipeline/core/judge.py) for records nothing verified, one row per
# record it scored: the verdict (NULL where its reply could not be read), the model and rubric.
LABEL_TABLES = {
    "judge_labels": "partition_date VARCHAR NOT NULL, record_key VARCHAR NOT NULL, judge_model VARCHAR NOT NULL, "
                    "rubric_version VARCHAR NOT NULL, goal_achieved BOOLEAN, policy_followed BOOLEAN, "
                    "tool_use_correct BOOLEAN, passed BOOLEAN, reply VARCHAR",
}
SCHEMAS: dict[str, dict[str, str]] = {
    RAW_SCHEMA: {**RAW_TABLES, **QUARANTINE_TABLE},
    REDACTED_SCHEMA: {**RAW_TABLES, **SURROGATES_TABLE},
    LABELS_SCHEMA: LABEL_TABLES,
}


# DuckDB column type → the Arrow type rows are converted to before the insert (DuckDB casts
# JSON text and int64 → INTEGER on the way in; parsing keeps ints within 32 bits).
_ARROW_TYPES = {"VARCHAR": pa.string(), "JSON": pa.string(), "INTEGER": pa.int64(),
                "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}


@functools.cache
def arrow_schema(table: str, schema: str = RAW_SCHEMA) -> pa.Schema:
    """The Arrow schema of one canonical table, read off its column definitions above (once:
    every parsed file asks for each table's)."""
    columns = (c.split() for c in SCHEMAS[schema][table].split(","))
    return pa.schema([(c[0], _ARROW_TYPES[c[1]]) for c in columns])


Rows = Sequence[Mapping[str, Any]]


def to_arrow(rows: Rows | pa.Table, table: str, schema: str = RAW_SCHEMA) -> pa.Table:
    """Rows as an Arrow table (columnar: cheap to pickle between processes, and DuckDB scans
    it in place); an Arrow table is passed through."""
    if isinstance(rows, pa.Table):
        return rows
    return pa.Table.from_pylist(list(rows), schema=arrow_schema(table, schema))


def ensure_tables(con: Any, schema: str = RAW_SCHEMA) -> None:
    """`schema`'s tables, and the governance and label tables curation reads (they exist
    even before anyone writes to them)."""
    for name in dict.fromkeys([schema, LABELS_SCHEMA]):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        for table, columns in SCHEMAS[name].items():
            con.execute(f"CREATE TABLE IF NOT EXISTS {name}.{table} ({columns})")
            _migrate_columns(con, name, table, columns)
    ensure_governance(con)


def _migrate_columns(con: Any, schema: str, table: str, columns: str) -> None:
    """A table an older version created, brought to this layout: columns added since (e.g.
    tool_set_id) are added, empty; columns since dropped (e.g. the per-row tools, now in
    tool_sets) are dropped, or dbt's `select *` would read them in place of the new ones. The
    tables are projections of the raw commits in lakeFS: rows written before are right again
    once their day is ingested again (`flywheel run` re-ingests every landing day)."""
    present = _column_names(con, schema, table)
    declared = dict(definition.split()[:2] for definition in columns.split(","))
    for name, kind in declared.items():
        if name not in present:
            con.execute(f"ALTER TABLE {schema}.{table} ADD COLUMN {name} {kind}")
    for name in present:
        if name not in declared:
            con.execute(f"ALTER TABLE {schema}.{table} DROP COLUMN {name}")


def ensure_governance(con: Any) -> None:
    """The governance tables curation reads (they exist even before anyone writes to them)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {GOVERNANCE_SCHEMA}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {GOVERNANCE_SCHEMA}.consent_revocations "
        "(user_id VARCHAR NOT NULL, revoked_at TIMESTAMPTZ NOT NULL, reason VARCHAR)"
    )


def record_consent_revocation(con: Any, user_id: str, reason: str | None) -> None:
    ensure_governance(con)
    con.execute(
        f"INSERT INTO {GOVERNANCE_SCHEMA}.consent_revocations VALUES (?, now(), ?)",
        [user_id, reason],
    )


def _column_names(con: Any, schema: str, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    return [r[0] for r in rows]


def replace_partition(
    con: Any,
    partition: str,
    tables: Mapping[str, Rows | pa.Table],
    schema: str = RAW_SCHEMA,
) -> dict[str, int]:
    """Atomically replace one partition's rows in every table of `schema`; return rows written.
    Each table is given as row dicts or as an Arrow table of `arrow_schema`."""
    ensure_tables(con, schema)
    written: dict[str, int] = {}
    # Readers order explicitly; not keeping arrival order lets DuckDB insert in parallel. The
    # setting is the database's, not this connection's: put back whatever it was.
    [(keep_order,)] = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
    con.execute("SET preserve_insertion_order = false")
    con.execute("BEGIN TRANSACTION")
    try:
        for table in SCHEMAS[schema]:
            incoming = to_arrow(tables.get(table, []), table, schema)
            con.execute(f"DELETE FROM {schema}.{table} WHERE partition_date = ?", [partition])
            if incoming.num_rows:
                con.register("incoming_rows", incoming)
                con.execute(f"INSERT INTO {schema}.{table} BY NAME SELECT * FROM incoming_rows")
                con.unregister("incoming_rows")
            written[table] = incoming.num_rows
            failpoint("warehouse.partly_replaced")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute(f"SET preserve_insertion_order = {bool(keep_order)}")
    return written


def read_partition(con: Any, partition: str, schema: str = RAW_SCHEMA) -> dict[str, list[dict[str, Any]]]:
    """Every table of `schema` for one partition, as plain row dicts (JSON columns as text)."""
    ensure_tables(con, schema)
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in RAW_TABLES:
        cursor = con.execute(
            f"SELECT * FROM {schema}.{table} WHERE partition_date = ? ORDER BY ALL", [partition]
        )
        names = [d[0] for d in cursor.description]
        tables[table] = [dict(zip(names, row)) for row in cursor.fetchall()]
    return tables


def issued_surrogates(con: Any) -> list[str]:
    """Every surrogate redaction has written, over all partitions."""
    ensure_tables(con, REDACTED_SCHEMA)
    return [r[0] for r in con.execute(f"SELECT DISTINCT surrogate FROM {REDACTED_SCHEMA}.surrogates").fetchall()]


# Columns that name the ingestion run's own raw commit: each run commits anew (an audit
# trail per run), so they differ between two runs over the same files, by design.
RUN_LINEAGE_COLUMNS = ("raw_commit", "source_uri")


def partition_digests(con: Any, partition: str, schema: str = RAW_SCHEMA) -> dict[str, str]:
    """Per table, a sha256 of one partition's rows (order-independent, lineage columns
    excluded): equal digests mean two ingestions produced the same tables."""
    digests = {}
    for table in SCHEMAS[schema]:
        columns = [c for c in _column_names(con, schema, table) if c not in RUN_LINEAGE_COLUMNS]
        rows = con.execute(
            f"SELECT {', '.join(columns)} FROM {schema}.{table} WHERE partition_date = ? ORDER BY ALL",
            [partition],
        ).fetchall()
        digests[table] = hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()
    return digests
