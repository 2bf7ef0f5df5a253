-- How far the judge agrees with verified outcomes, on the records that have both: the
-- confusion matrix and Cohen's kappa per judge model and rubric, so that a weak judge shows
-- up as weak (the data card reports it). Unreadable replies are counted, not scored.
with pairs as (
    select
        j.judge_model,
        j.rubric_version,
        j.passed as judge_passed,
        t.success as verified_success
    from {{ judge_labels_source() }} as j
    join {{ ref('stg_trajectories') }} as t using (record_key)
    where t.success is not null and t.verified_by is not null
),

counts as (
    select
        judge_model,
        rubric_version,
        count(*) as n_scored,
        count(*) filter (where judge_passed is null) as n_unreadable,
        count(*) filter (where judge_passed and verified_success) as both_pass,
        count(*) filter (where judge_passed and not verified_success) as judge_pass_verified_fail,
        count(*) filter (where not judge_passed and verified_success) as judge_fail_verified_pass,
        count(*) filter (where not judge_passed and not verified_success) as both_fail
    from pairs
    group by judge_model, rubric_version
),

rates as (
    select
        *,
        both_pass + judge_pass_verified_fail + judge_fail_verified_pass + both_fail as n_compared,
        (both_pass + both_fail)::double precision
            / nullif(both_pass + judge_pass_verified_fail + judge_fail_verified_pass + both_fail, 0)
            as observed_agreement,
        ((both_pass + judge_pass_verified_fail)::double precision * (both_pass + judge_fail_verified_pass)
            + (judge_fail_verified_pass + both_fail)::double precision * (judge_pass_verified_fail + both_fail))
            / nullif((both_pass + judge_pass_verified_fail + judge_fail_verified_pass + both_fail)::double precision ^ 2, 0)
            as expected_agreement
    from counts
)

select
    *,
    -- undefined (NULL) when chance agreement is total: one class on both sides
    case when expected_agreement < 1
        then (observed_agreement - expected_agreement) / (1 - expected_agreement)
    end as cohen_kappa
from rates
