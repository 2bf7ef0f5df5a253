"""The curation inputs that need Python, computed from the redacted tables before dbt runs
and written to schema `derived` through the warehouse (DuckDB or PostgreSQL alike), where
the dbt project reads them as sources:

- `derived.tool_call_validity`: every tool call checked against the JSON schema of its tool
  as offered in that trajectory (`argument_problems`, the code the release's GX suite runs).
- `derived.near_duplicate_documents` and `derived.near_duplicate_pairs`: each record's
  conversation as a near-duplicate document, and the MinHash/LSH pairs between documents
  (`near_duplicate_graph`); the SQL model int_near_duplicates makes the clusters.

Both only read `redacted`, so they run before the one `dbt build` of a run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from pipeline.shell.sql_warehouse import Warehouse
from pipeline.shell.warehouse import REDACTED_SCHEMA

DERIVED_SCHEMA = "derived"

TOOL_CALL_VALIDITY = {"record_key": "VARCHAR", "step_index": "INTEGER", "call_index": "INTEGER",
                      "name": "VARCHAR", "is_valid": "BOOLEAN", "problems": "VARCHAR"}
NEAR_DUPLICATE_DOCUMENTS = {"record_key": "VARCHAR", "document_key": "VARCHAR"}
NEAR_DUPLICATE_PAIRS = {"document_key": "VARCHAR", "other_document_key": "VARCHAR",
                        "is_verified_pair": "BOOLEAN", "similarity": "DOUBLE"}

# stg_trajectories' view of a record's tools: its day's tool set, [] when it has none
_TRAJECTORIES = f"""
    select t.record_key, t.task_type, cast(s.tools as varchar) as tools
    from {REDACTED_SCHEMA}.trajectories as t
    left join {REDACTED_SCHEMA}.tool_sets as s
        on s.partition_date = t.partition_date and s.tool_set_id = t.tool_set_id
"""
_CALLS = f"""
    select record_key, step_index, call_index, name, cast(arguments as varchar) as arguments
    from {REDACTED_SCHEMA}.tool_calls
"""
_STEPS = f"select record_key, step_index, role, content, error from {REDACTED_SCHEMA}.steps"


def _strip(value: str | None) -> str | None:
    """SQL's nullif(trim(x), ''): trim removes spaces only."""
    return (value.strip(" ") or None) if value is not None else None


def write_tool_call_validity(warehouse: Warehouse) -> dict[str, Any]:
    """One row per tool call of `redacted.tool_calls`: is_valid, and the problems when not."""
    from pipeline.core.curation.conversation import argument_problems, tool_schemas

    schemas = {key: tool_schemas(tools if tools is not None else "[]")
               for key, _task, tools in warehouse.rows(_TRAJECTORIES)}
    rows = []
    for key, step_index, call_index, name, arguments in warehouse.rows(_CALLS):
        name = name.strip(" ") if name is not None else None
        problems = argument_problems(name, json.loads(arguments) if arguments else None, schemas.get(key, {}))
        rows.append((key, step_index, call_index, name, not problems, "; ".join(problems) if problems else None))
    written = warehouse.replace_table(DERIVED_SCHEMA, "tool_call_validity", TOOL_CALL_VALIDITY, rows)
    return {"tool_calls": written, "invalid": sum(1 for r in rows if not r[4])}


def write_near_duplicate_graph(warehouse: Warehouse, threshold: float, num_perm: int,
                               width: int) -> dict[str, Any]:
    """Every record's near-duplicate document, and the pairs between documents."""
    from pipeline.core.curation.near_duplicates import Document, conversation_text, near_duplicate_graph

    steps: dict[str, list[tuple]] = defaultdict(list)
    for key, *step in warehouse.rows(_STEPS):
        steps[key].append(tuple(step))
    calls: dict[str, dict[int, list[tuple]]] = defaultdict(lambda: defaultdict(list))
    for key, step_index, call_index, name, arguments in warehouse.rows(_CALLS):
        calls[key][step_index].append((call_index, name, arguments))
    documents = [Document(key, _strip(task) or "", conversation_text(steps.get(key, ()), calls.get(key, {})))
                 for key, task, _tools in sorted(warehouse.rows(_TRAJECTORIES))]
    graph = near_duplicate_graph(documents, threshold=threshold, num_perm=num_perm, width=width)
    n_documents = warehouse.replace_table(DERIVED_SCHEMA, "near_duplicate_documents", NEAR_DUPLICATE_DOCUMENTS,
                                          sorted(graph.documents.items()))
    n_pairs = warehouse.replace_table(DERIVED_SCHEMA, "near_duplicate_pairs", NEAR_DUPLICATE_PAIRS,
                                      sorted(graph.pairs))
    return {"records": n_documents, "documents": len(set(graph.documents.values())), "pairs": n_pairs,
            "verified_pairs": sum(1 for p in graph.pairs if p[2])}


def write_curation_inputs(warehouse: Warehouse, knobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Both, with the near-duplicate knobs of `knobs` (dbt_project.yml's vars by default)."""
    if knobs is None:
        from pipeline.shell.dbt_vars import dbt_vars

        knobs = dbt_vars()
    return {
        "tool_call_validity": write_tool_call_validity(warehouse),
        "near_duplicates": write_near_duplicate_graph(
            warehouse, threshold=float(knobs["near_dup_threshold"]), num_perm=int(knobs["near_dup_num_perm"]),
            width=int(knobs["near_dup_shingle_words"])),
    }
