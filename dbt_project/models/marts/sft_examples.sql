-- Supervised fine-tuning examples in TRL's conversational format: every kept, good
-- trajectory of the train split, whole, with its tools and a balancing weight.
with decisions as (
    select * from {{ ref('int_curation_balanced') }}
    where destination = 'train' and label = 'good'
),

trajectories as (
    select record_key, tools from {{ ref('stg_trajectories') }}
),

messages as (
    select record_key, {{ json_list_agg('message', order_by='step_index') }}::json as messages
    from {{ ref('int_messages') }}
    group by record_key
)

select
    d.record_key,
    d.trajectory_id,
    d.task_type,
    d.template_id,
    d.split_group_key,
    m.messages,
    t.tools,
    d.weight,
    d.quality_score,
    d.label_confidence,
    d.partition_date
from decisions as d
join messages as m using (record_key)
join trajectories as t using (record_key)
