-- Unpaired preference examples for KTO: every kept train trajectory with a known label.
-- The prompt is the conversation up to and including the last user turn; the completion
-- is everything the agent did after it (assistant turns and tool results).
with decisions as (
    select * from {{ ref('int_curation_balanced') }}
    where destination = 'train' and label in ('good', 'bad')
),

trajectories as (
    select record_key, tools from {{ ref('stg_trajectories') }}
),

structure as (
    select record_key, last_user_step_index from {{ ref('int_trajectory_structure') }}
),

split_messages as (
    select
        m.record_key,
        {{ json_list_agg('m.message', order_by='m.step_index', filter='m.step_index <= s.last_user_step_index') }}
            as prompt,
        {{ json_list_agg('m.message', order_by='m.step_index', filter='m.step_index > s.last_user_step_index') }}
            as completion,
        count(*) filter (where m.step_index > s.last_user_step_index and m.role = 'assistant') as n_completion_turns
    from {{ ref('int_messages') }} as m
    join structure as s using (record_key)
    group by m.record_key
)

select
    d.record_key,
    d.trajectory_id,
    d.task_type,
    d.template_id,
    d.split_group_key,
    sm.prompt::json as prompt,
    sm.completion::json as completion,
    d.label = 'good' as label,
    t.tools,
    d.weight,
    d.label_confidence
from decisions as d
join split_messages as sm using (record_key)
join trajectories as t using (record_key)
where sm.n_completion_turns > 0
