-- Every step of the curated (train or eval) records as one message in TRL's conversational
-- format: {role, content, tool_calls: [{id, type: "function", function: {name, arguments}}],
-- tool_call_id}, with `arguments` a JSON object (never a string). Marts assemble these into
-- examples; the step label rides along so marts can pick decision points. The JSON is
-- compact text, the same bytes on DuckDB and PostgreSQL (macros/portable.sql).
with curated as (
    select record_key from {{ ref('int_curation_balanced') }}
    where destination <> 'excluded'
),

steps as (
    select s.* from {{ ref('stg_steps') }} as s
    join curated using (record_key)
),

step_labels as (
    select record_key, step_index, step_label, all_calls_ok from {{ ref('int_step_labels') }}
),

calls as (
    select c.* from {{ ref('stg_tool_calls') }} as c
    join curated using (record_key)
),

tool_calls_per_step as (
    select
        record_key,
        step_index,
        {{ json_list_agg(
            json_object([
                ['id', 'call_id'],
                ['type', "'function'"],
                ['function', json_object([['name', 'name'], ['arguments', 'arguments']])],
            ]),
            order_by='call_index'
        ) }} as tool_calls,
        -- the first call, for eval cases: {name, arguments}
        {{ first_by(json_object([['name', 'name'], ['arguments', 'arguments']]), 'call_index') }} as first_call
    from calls
    group by record_key, step_index
)

select
    steps.record_key,
    steps.step_index,
    steps.role,
    l.step_label,
    l.all_calls_ok,
    {{ json_object([
        ['role', 'steps.role'],
        ['content', "case when steps.role = 'tool' then coalesce(steps.content, steps.error) else steps.content end"],
        ['tool_calls', 'tc.tool_calls::json'],
        ['tool_call_id', 'steps.tool_call_id'],
    ]) }} as message,
    tc.first_call,
    steps.content
from steps
left join step_labels as l using (record_key, step_index)
left join tool_calls_per_step as tc using (record_key, step_index)
