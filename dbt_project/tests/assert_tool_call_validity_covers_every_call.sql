{{ config(severity='error', meta={'dagster': {'ref': {'name': 'int_tool_call_validity'}}}) }}
{#- Attached to int_tool_call_validity in Dagster (a singular test with several parents needs the ref). -#}
-- Every tool call has a validity row: derived.tool_call_validity is written before dbt from
-- the same redacted tables, and a call missing there (a table left over from an earlier
-- run) would silently count as valid (R13).
select c.record_key, c.step_index, c.call_index
from {{ ref('stg_tool_calls') }} as c
left join {{ ref('int_tool_call_validity') }} as v using (record_key, step_index, call_index)
where v.record_key is null
