"""Schema validity of every tool call: do its arguments conform to the JSON schema of the
tool as offered in that trajectory?

A demonstration that calls a tool with invalid arguments (and recovers after the error)
still succeeds, but training on it teaches the invalid call. The check is the project's
own `pipeline.core.curation.conversation.argument_problems` (jsonschema), the same code the release's
Great Expectations suite runs, so curation and validation cannot disagree.
"""

import json


def model(dbt, session):
    dbt.config(materialized="table", packages=["jsonschema"])
    from pipeline.core.curation.conversation import argument_problems, tool_schemas

    calls = dbt.ref("stg_tool_calls").df()
    tools = dbt.ref("stg_trajectories").df()[["record_key", "tools"]]
    schemas = {row.record_key: tool_schemas(row.tools) for row in tools.itertuples()}

    problems = [
        argument_problems(row.name, json.loads(row.arguments) if row.arguments else None,
                          schemas.get(row.record_key, {}))
        for row in calls.itertuples()
    ]
    out = calls[["record_key", "step_index", "call_index", "name"]].copy()
    out["is_valid"] = [not p for p in problems]
    out["problems"] = ["; ".join(p) if p else None for p in problems]
    return out
