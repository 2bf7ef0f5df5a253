{{ config(severity='error', meta={'dagster': {'ref': {'name': 'curation_decisions'}}}) }}
{#- Attached to curation_decisions in Dagster (a singular test with several parents needs the ref). -#}
-- The split cannot leak: no split group key (template, user or session, var
-- `split_group_key`) may appear in both the training marts (sft_examples, kto_examples,
-- preference_pairs, both sides, rl_tasks) and the evaluation mart (eval_cases), nor in both the
-- train and eval rows of curation_decisions. Returns every leaking group key.
with train_groups as (
    select split_group_key from {{ ref('sft_examples') }}
    union
    select split_group_key from {{ ref('kto_examples') }}
    union
    select split_group_key from {{ ref('preference_pairs') }}
    union
    select rejected_split_group_key from {{ ref('preference_pairs') }}
    union
    select split_group_key from {{ ref('rl_tasks') }}
    union
    select split_group_key from {{ ref('curation_decisions') }} where destination = 'train'
),

eval_groups as (
    select split_group_key from {{ ref('eval_cases') }}
    union
    select split_group_key from {{ ref('curation_decisions') }} where destination = 'eval'
)

select split_group_key
from train_groups
join eval_groups using (split_group_key)
