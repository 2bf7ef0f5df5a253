-- Tasks for reinforcement learning: one row per train-split trajectory record that carries a
-- simulator task_spec, so a sandbox can replay the task and reward the policy on the end
-- state. What matters is the task, not the demonstration: records that quality, duplicate or
-- balancing rules excluded from the other marts (a failed attempt, a near duplicate, a cut by
-- the task-type cap) are fine tasks and stay; only records that consent keeps out of training
-- are dropped (R03_no_consent, R04_evaluation_only_consent, R14_consent_revoked). Tasks never
-- come from the evaluation split: the row's split is train, and, defensively, its split group
-- must not be one of the eval split's groups (a superset of eval_cases' groups). The outcome
-- columns (success, label) let training report a curriculum by difficulty.
with decisions as (
    select * from {{ ref('int_curation_balanced') }}
),

trajectories as (
    select record_key, task_spec from {{ ref('stg_trajectories') }}
),

eval_groups as (
    select distinct split_group_key from decisions where split = 'eval'
),

train_records as (
    select d.*
    from decisions as d
    where d.split = 'train'
        -- consent: the rule flags behind R03, R04 and R14, and the training consent itself
        and d.may_train
        and not (d.r03_no_consent or d.r04_evaluation_only_consent or d.r14_consent_revoked)
        and not exists (
            select 1 from eval_groups as e where e.split_group_key = d.split_group_key
        )
)

select
    r.record_key,
    r.trajectory_id,
    r.task_type,
    r.template_id,
    r.split_group_key,
    t.task_spec,
    r.success,
    r.label,
    r.label_source,
    r.label_confidence,
    r.destination,
    r.rule_ids
from train_records as r
join trajectories as t on t.record_key = r.record_key
where t.task_spec is not null
