-- One typed row per tool call of an assistant step; arguments stay a JSON object.
select
    record_key,
    trajectory_id,
    partition_date::date as partition_date,
    step_index,
    call_index,
    nullif(trim(call_id), '') as call_id,
    trim(name) as name,
    arguments::json as arguments,
    coalesce({{ json_is('arguments::json', 'object') }}, false) as arguments_is_object
from {{ source('redacted', 'tool_calls') }}
