-- Schema validity of every tool call: do its arguments conform to the JSON schema of the
-- tool as offered in that trajectory? A demonstration that calls a tool with invalid
-- arguments (and recovers after the error) still succeeds, but training on it teaches the
-- invalid call.
--
-- The check is jsonschema in Python (pipeline.core.curation.conversation.argument_problems,
-- the same code the release's Great Expectations suite runs, so curation and validation
-- cannot disagree); the `tool_call_validity` asset runs it before dbt and writes
-- derived.tool_call_validity through the warehouse, so no model needs a Python adapter.
select
    record_key,
    step_index,
    call_index,
    name,
    is_valid,
    problems
from {{ source('derived', 'tool_call_validity') }}
