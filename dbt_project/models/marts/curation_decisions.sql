-- Every trajectory record, once: where it went (train / eval / excluded) and, when it was
-- excluded, every rule that excluded it (stable rule ids, see marts.yml), with the label,
-- split and dedup facts behind the decision and the datasets it ended up in.
with decisions as (
    select * from {{ ref('int_curation_balanced') }}
),

sft as (
    select record_key from {{ ref('sft_examples') }}
),

kto as (
    select record_key from {{ ref('kto_examples') }}
),

pair_sides as (
    select chosen_record_key as record_key from {{ ref('preference_pairs') }} where chosen_record_key is not null
    union all
    select rejected_record_key from {{ ref('preference_pairs') }}
),

pairs_per_record as (
    select record_key, count(*) as n_preference_pairs from pair_sides group by record_key
),

rl as (
    select record_key from {{ ref('rl_tasks') }}
),

eval_cases_per_record as (
    select record_key, count(*) as n_eval_cases from {{ ref('eval_cases') }} group by record_key
)

select
    d.record_key,
    d.trajectory_id,
    d.user_id,
    d.partition_date,
    d.source_format,
    d.task_type,
    d.template_id,
    d.split_group_key,
    d.split,
    d.destination,
    d.rule_ids,
    d.rule_ids[1] as primary_rule_id,
    d.label,
    d.label_source,
    d.label_confidence,
    d.label_reason,
    d.quality_score,
    d.weight,
    d.consent_may_train,
    d.consent_scope,
    d.exact_group_size,
    d.exact_representative_key,
    d.near_dup_cluster_key,
    d.near_dup_cluster_size,
    d.similarity_to_representative,
    sft.record_key is not null as in_sft,
    kto.record_key is not null as in_kto,
    rl.record_key is not null as in_rl_tasks,
    coalesce(p.n_preference_pairs, 0) as n_preference_pairs,
    coalesce(e.n_eval_cases, 0) as n_eval_cases
from decisions as d
left join sft using (record_key)
left join kto using (record_key)
left join rl using (record_key)
left join pairs_per_record as p using (record_key)
left join eval_cases_per_record as e using (record_key)
