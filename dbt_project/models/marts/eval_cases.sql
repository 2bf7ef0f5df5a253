-- Held-out evaluation cases: one per decision point of every kept eval-split trajectory
-- (only good ones are references, R11). A decision point is an assistant step whose tool
-- calls all succeeded (a first call or a retry after an error; never a wrong tool) or that
-- gave the final answer. The case holds the conversation before that step (prompt), what the agent did
-- there (expected tool call {name, arguments} or expected answer), the tools, and the
-- simulator task_spec so a sandbox can replay the task and judge the end state.
with decisions as (
    select * from {{ ref('int_curation_balanced') }}
    where destination = 'eval'
),

trajectories as (
    select record_key, tools, task_spec from {{ ref('stg_trajectories') }}
),

messages as (
    select m.* from {{ ref('int_messages') }} as m
    join decisions using (record_key)
),

decision_points as (
    select record_key, step_index, step_label, first_call, content
    from messages
    where (step_label in ('tool_call', 'retry') and all_calls_ok)
        or step_label = 'final_answer'
),

-- the conversation before each decision point (grouped by the point's key alone: JSON
-- columns cannot be grouped on in PostgreSQL)
prompts as (
    select
        dp.record_key,
        dp.step_index,
        {{ json_list_agg('m.message', order_by='m.step_index') }} as prompt
    from decision_points as dp
    join messages as m
        on m.record_key = dp.record_key and m.step_index < dp.step_index
    group by dp.record_key, dp.step_index
),

cases as (
    select
        dp.record_key,
        dp.step_index as decision_step_index,
        case when dp.step_label = 'final_answer' then 'final_answer' else 'tool_call' end as expected_kind,
        case when dp.step_label <> 'final_answer' then dp.first_call end as expected_tool_call,
        case when dp.step_label = 'final_answer' then dp.content end as expected_answer,
        p.prompt
    from decision_points as dp
    join prompts as p using (record_key, step_index)
)

select
    c.record_key || '@' || c.decision_step_index as case_id,
    c.record_key,
    d.trajectory_id,
    d.task_type,
    d.template_id,
    d.split_group_key,
    c.decision_step_index,
    c.prompt::json as prompt,
    c.expected_kind,
    c.expected_tool_call,
    c.expected_answer,
    t.tools,
    t.task_spec,
    d.label_confidence
from cases as c
join decisions as d using (record_key)
join trajectories as t using (record_key)
