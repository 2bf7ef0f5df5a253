-- One row per trajectory record with its split and every curation rule that fires on it
-- (R01-R11, R13, R14; balancing, R12, follows in int_curation_balanced). Rules are evaluated
-- independently, so a record lists every reason it is out, not just the first.
{% set eval_buckets = (var('eval_share') | float * 10000) | int %}

with trajectories as (
    select * from {{ ref('stg_trajectories') }}
),

structure as (
    select * from {{ ref('int_trajectory_structure') }}
),

quality as (
    select * from {{ ref('int_quality_labels') }}
),

exact_duplicates as (
    select * from {{ ref('int_exact_duplicates') }}
),

near_duplicates as (
    select * from {{ ref('int_near_duplicates') }}
),

-- consent withdrawn after the fact (`flywheel forget --user`): the user's records leave
-- every split of the next release
revoked_users as (
    select distinct user_id from {{ source('governance', 'consent_revocations') }}
),

invalid_calls as (
    select record_key, count(*) as n_invalid_tool_calls
    from {{ ref('int_tool_call_validity') }}
    where not is_valid
    group by record_key
),

-- a whole split group (template, user or session) goes to one side, by a stable hash
split_assignment as (
    select
        t.record_key,
        {{ split_group_key('t') }} as split_group_key
    from trajectories as t
),

records as (
    select
        t.record_key,
        t.trajectory_id,
        t.user_id,
        t.partition_date,
        t.source_format,
        coalesce(t.task_type, 'unknown') as task_type,
        t.template_id,
        t.goal,
        t.success,
        t.termination,
        t.consent_may_train,
        t.consent_scope,
        {{ training_consent('t') }} as may_train,
        {{ evaluation_consent('t') }} as may_evaluate,
        sa.split_group_key,
        case when {{ stable_bucket('sa.split_group_key', var('split_salt')) }} < {{ eval_buckets }}
            then 'eval' else 'train' end as split,
        q.label,
        q.label_source,
        q.label_confidence,
        q.label_reason,
        q.quality_score,
        s.n_steps_observed,
        s.context_tokens,
        s.n_tool_errors,
        s.n_unrecovered_errors,
        s.n_wrong_tool_calls,
        s.n_unoffered_tool_calls,
        s.role_order_violations,
        s.has_unanswered_tool_call,
        e.content_key,
        e.exact_group_size,
        e.exact_representative_key,
        e.is_exact_representative,
        n.near_dup_cluster_key,
        n.near_dup_cluster_size,
        coalesce(n.is_near_representative, false) as is_near_representative,
        n.similarity_to_representative,
        coalesce(i.n_invalid_tool_calls, 0) as n_invalid_tool_calls,
        r.user_id is not null as consent_revoked
    from trajectories as t
    join split_assignment as sa using (record_key)
    join quality as q using (record_key)
    join structure as s using (record_key)
    join exact_duplicates as e using (record_key)
    left join near_duplicates as n using (record_key)
    left join invalid_calls as i using (record_key)
    left join revoked_users as r on r.user_id = t.user_id
),

rule_flags as (
    select
        *,
        not is_exact_representative as r01_exact_duplicate,
        is_exact_representative and not is_near_representative as r02_near_duplicate,
        not may_evaluate as r03_no_consent,
        may_evaluate and not may_train and split = 'train' as r04_evaluation_only_consent,
        has_unanswered_tool_call as r05_unanswered_tool_call,
        {{ list_len('role_order_violations') }} > 0 as r06_role_order,
        label = 'unknown' as r07_ambiguous_outcome,
        n_steps_observed > {{ var('max_steps') }} or context_tokens > {{ var('max_context_tokens') }}
            as r08_over_long,
        -- success despite errors the agent never recovered from, or tools it was never given
        label = 'good' and (n_unrecovered_errors > 0 or n_unoffered_tool_calls > 0) as r09_lucky_success,
        split = 'eval' and label = 'bad' as r11_eval_reference_not_good,
        -- a good outcome reached through calls that break the tool's schema would teach the
        -- invalid call (SFT) or grade the model against it (eval)
        label = 'good' and n_invalid_tool_calls > 0 as r13_invalid_tool_call,
        consent_revoked as r14_consent_revoked
    from records
),

-- R10 ranks the good demonstrations that survived R01-R09 (both splits) and drops the
-- lowest-scored `bottom_quality_percent`; ties broken by a stable hash, not at random
good_pool as (
    select
        record_key,
        row_number() over (
            order by quality_score, {{ stable_bucket('record_key', var('balance_salt')) }}, record_key
        ) as quality_position,
        count(*) over () as pool_size
    from rule_flags
    where label = 'good'
        and not (r01_exact_duplicate or r02_near_duplicate or r03_no_consent or r04_evaluation_only_consent
            or r05_unanswered_tool_call or r06_role_order or r07_ambiguous_outcome or r08_over_long
            or r09_lucky_success or r13_invalid_tool_call or r14_consent_revoked)
),

with_bottom_quality as (
    select
        f.*,
        coalesce(g.quality_position <= floor(g.pool_size * {{ var('bottom_quality_percent') }} / 100.0), false)
            as r10_bottom_quality
    from rule_flags as f
    left join good_pool as g using (record_key)
)

select
    *,
    {{ list_without_nulls([
        "case when r01_exact_duplicate then 'R01_exact_duplicate' end",
        "case when r02_near_duplicate then 'R02_near_duplicate' end",
        "case when r03_no_consent then 'R03_no_consent' end",
        "case when r04_evaluation_only_consent then 'R04_evaluation_only_consent' end",
        "case when r05_unanswered_tool_call then 'R05_unanswered_tool_call' end",
        "case when r06_role_order then 'R06_role_order' end",
        "case when r07_ambiguous_outcome then 'R07_ambiguous_outcome' end",
        "case when r08_over_long then 'R08_over_long' end",
        "case when r09_lucky_success then 'R09_lucky_success' end",
        "case when r10_bottom_quality then 'R10_bottom_quality' end",
        "case when r11_eval_reference_not_good then 'R11_eval_reference_not_good' end",
        "case when r13_invalid_tool_call then 'R13_invalid_tool_call' end",
        "case when r14_consent_revoked then 'R14_consent_revoked' end",
    ]) }} as pre_balance_rule_ids
from with_bottom_quality
