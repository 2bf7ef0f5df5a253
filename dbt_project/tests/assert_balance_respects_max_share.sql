{{ config(severity='error', meta={'dagster': {'ref': {'name': 'coverage'}}}) }}
{#- Attached to coverage in Dagster (a singular test with several parents needs the ref). -#}
-- After balancing, no task type holds more than `balance_max_share` of the train split
-- (unless there are too few task types for any cap to reach it, 1 / share > types).
with train_types as (
    select task_type, max(task_type_share_after) as share_after
    from {{ ref('coverage') }}
    where split = 'train' and n_after_balancing > 0
    group by task_type
)

select task_type, share_after
from train_types
where share_after > {{ var('balance_max_share') }} + 1e-9
    and (select count(*) from train_types) * {{ var('balance_max_share') }} >= 1
