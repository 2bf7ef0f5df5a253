"""The warehouse as curation's Python steps use it, DuckDB or PostgreSQL alike: run a query,
replace a table. DuckDB is the embedded default (`FLYWHEEL_DBT_TARGET=duckdb`); PostgreSQL
is the dbt profile's `warehouse` target (FLYWHEEL_WAREHOUSE_* variables). Python steps that
feed dbt (pipeline/shell/curation_inputs.py) write through this, so the dbt project never
needs an adapter that runs Python.

Column types are named once, DuckDB-style (VARCHAR, INTEGER, BIGINT, DOUBLE, BOOLEAN, JSON,
DATE, TIMESTAMPTZ), and spelt per engine. PostgreSQL gets `json` for JSON (never jsonb: json
keeps the text as written, as DuckDB's JSON does). Queries are written in SQL both engines
read (casts with `cast(x as varchar)`, no engine-only functions); JSON comes back as text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

POSTGRES_TYPES = {"VARCHAR": "text", "INTEGER": "integer", "BIGINT": "bigint", "DOUBLE": "double precision",
                  "BOOLEAN": "boolean", "JSON": "json", "DATE": "date", "TIMESTAMPTZ": "timestamptz"}


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain SQL name: {name!r}")
    return name


class Warehouse:
    """One open connection; `replace_table` commits (a table is swapped in one transaction)."""

    dialect: str

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def replace_table(self, schema: str, table: str, columns: Mapping[str, str],
                      rows: Iterable[Sequence[Any]]) -> int:
        raise NotImplementedError

    def _create(self, schema: str, table: str, columns: Mapping[str, str]) -> list[str]:
        schema, table = _quoted(schema), _quoted(table)
        types = {name: self.column_type(kind) for name, kind in columns.items()}
        spec = ", ".join(f"{_quoted(name)} {kind}" for name, kind in types.items())
        return [f"create schema if not exists {schema}", f"drop table if exists {schema}.{table}",
                f"create table {schema}.{table} ({spec})"]

    def column_type(self, kind: str) -> str:
        return kind


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, con: Any) -> None:
        self.con = con

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def replace_table(self, schema: str, table: str, columns: Mapping[str, str],
                      rows: Iterable[Sequence[Any]]) -> int:
        import pyarrow as pa

        arrow_types = {"VARCHAR": pa.string(), "JSON": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
                       "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}
        rows = list(rows)
        incoming = pa.table({name: pa.array([r[i] for r in rows], type=arrow_types[kind])
                             for i, (name, kind) in enumerate(columns.items())})
        self.con.execute("begin transaction")
        try:
            for statement in self._create(schema, table, columns):
                self.con.execute(statement)
            if rows:
                self.con.register("incoming_rows", incoming)
                self.con.execute(f"insert into {schema}.{table} select * from incoming_rows")
                self.con.unregister("incoming_rows")
            self.con.execute("commit")
        except BaseException:
            self.con.execute("rollback")
            raise
        return len(rows)


class PostgresWarehouse(Warehouse):
    dialect = "postgres"

    def __init__(self, con: Any) -> None:
        self.con = con

    def column_type(self, kind: str) -> str:
        return POSTGRES_TYPES[kind]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            rows = cur.fetchall()
        self.con.commit()
        return rows

    def replace_table(self, schema: str, table: str, columns: Mapping[str, str],
                      rows: Iterable[Sequence[Any]]) -> int:
        from psycopg2.extras import execute_values

        rows = list(rows)
        try:
            with self.con.cursor() as cur:
                for statement in self._create(schema, table, columns):
                    cur.execute(statement)
                if rows:
                    execute_values(cur, f"insert into {schema}.{table} values %s", rows, page_size=1000)
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        return len(rows)


def postgres_dsn_from_env(env: Mapping[str, str] | None = None) -> str:
    """The dbt profile's `warehouse` target as a libpq connection string (same variables,
    same defaults as dbt_project/profiles.yml)."""
    from psycopg2.extensions import make_dsn

    env = os.environ if env is None else env
    return make_dsn(host=env.get("FLYWHEEL_WAREHOUSE_HOST", "localhost"),
                    port=env.get("FLYWHEEL_WAREHOUSE_PORT", "5432"),
                    user=env.get("FLYWHEEL_WAREHOUSE_USER", "flywheel"),
                    password=env.get("FLYWHEEL_WAREHOUSE_PASSWORD", ""),
                    dbname=env.get("FLYWHEEL_WAREHOUSE_DB", "flywheel"))


@contextmanager
def open_warehouse(target: str, duckdb_path: str | os.PathLike[str] | None = None,
                   env: Mapping[str, str] | None = None) -> Iterator[Warehouse]:
    """The warehouse of dbt target `target`: `duckdb` (the file at `duckdb_path`) or
    `warehouse` (PostgreSQL, from the FLYWHEEL_WAREHOUSE_* variables)."""
    if target == "duckdb":
        import duckdb

        con = duckdb.connect(str(duckdb_path))
        try:
            yield DuckDBWarehouse(con)
        finally:
            con.close()
    elif target == "warehouse":
        import psycopg2

        con = psycopg2.connect(postgres_dsn_from_env(env))
        try:
            yield PostgresWarehouse(con)
        finally:
            con.close()
    else:
        raise ValueError(f"unknown dbt target {target!r} (duckdb or warehouse)")


# DuckDB's information_schema type names -> the names above
_DUCKDB_TYPES = {"VARCHAR": "VARCHAR", "JSON": "JSON", "INTEGER": "INTEGER", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE",
                 "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}


def copy_duckdb_schemas(con: Any, target: Warehouse, schemas: Sequence[str]) -> dict[str, int]:
    """Every table of `schemas` in the DuckDB connection `con`, replaced in `target` with the
    same columns and rows (e.g. a trial of the `warehouse` target on what DuckDB holds)."""
    written = {}
    for schema in schemas:
        tables = con.execute("select table_name from information_schema.tables where table_schema = ? "
                             "order by table_name", [schema]).fetchall()
        for (table,) in tables:
            columns = {name: _DUCKDB_TYPES[kind] for name, kind in con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position", [schema, table]).fetchall()}
            rows = con.execute(f"select * from {_quoted(schema)}.{_quoted(table)}").fetchall()
            written[f"{schema}.{table}"] = target.replace_table(schema, table, columns, rows)
    return written
