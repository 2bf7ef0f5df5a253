-- One quality label per trajectory record, from the first tier that has a signal:
--   1. verified outcome  (success checked by the environment, a test or a human reviewer)
--   2. human feedback    (rating, thumbs, correction)
--   3. judge             (a judge model's rubric verdict, labels.judge_labels; its model and rubric kept)
--   4. implicit signals  (abandonment, escalation, implicit or judge votes in the logs, an unverified success flag)
-- The deciding tier gives the label and a base confidence; every lower tier that contradicts
-- it costs `label_conflict_penalty`, except the judge's: a model's opinion never weakens a
-- verified or human label (its disagreement is measured in int_judge_agreement instead). Signals that contradict each other inside the deciding
-- tier, or a confidence below `label_min_confidence`, give `unknown` with the reason.
{% set good_min = var('rating_good_min') %}
{% set bad_max = var('rating_bad_max') %}

with trajectories as (
    select * from {{ ref('stg_trajectories') }}
),

feedback as (
    select * from {{ ref('stg_feedback') }}
),

structure as (
    select * from {{ ref('int_trajectory_structure') }}
),

-- a judge's readable verdicts (an unreadable reply is no signal)
judge as (
    select
        record_key,
        judge_model,
        rubric_version as judge_rubric_version,
        case when passed then 'positive' else 'negative' end as judge_polarity
    from {{ judge_labels_source() }}
    where passed is not null
),

-- each feedback row as a vote: +1 positive, -1 negative, NULL neutral; and its tier
feedback_votes as (
    select
        record_key,
        case when feedback_source = 'human' then 'human' else 'implicit' end as tier,
        feedback_name,
        rating,
        corrected_output,
        case
            when feedback_name = 'rating' and rating >= {{ good_min }} then 1
            when feedback_name = 'rating' and rating <= {{ bad_max }} then -1
            when feedback_name = 'thumbs' and thumbs_up then 1
            when feedback_name = 'thumbs' and not thumbs_up then -1
            when feedback_name = 'correction' then -1
            when feedback_name in ('escalation', 'abandonment') and flag_value then -1
        end as vote
    from feedback
    where feedback_source <> 'environment'  -- the environment speaks through the verified outcome
),

feedback_per_record as (
    select
        record_key,
        count(*) filter (where tier = 'human' and vote = 1) as human_positive,
        count(*) filter (where tier = 'human' and vote = -1) as human_negative,
        count(*) filter (where tier = 'implicit' and vote = 1) as implicit_positive,
        count(*) filter (where tier = 'implicit' and vote = -1) as implicit_negative,
        bool_or(feedback_name = 'correction') as has_correction,
        max(corrected_output) filter (where feedback_name = 'correction') as corrected_output,
        avg(rating) filter (where tier = 'human') as human_rating
    from feedback_votes
    group by record_key
),

-- the three tiers' polarity per record: positive / negative / conflict / NULL (no signal)
tier_polarity as (
    select
        t.record_key,
        t.termination,
        case when t.success is not null and t.verified_by is not null
            then case when t.success then 'positive' else 'negative' end
        end as verified_polarity,
        case
            when f.human_positive > 0 and f.human_negative > 0 then 'conflict'
            when f.human_positive > 0 then 'positive'
            when f.human_negative > 0 then 'negative'
        end as human_polarity,
        -- implicit: feedback rows, a termination that says the user did not get helped,
        -- and a success flag nobody verified
        coalesce(f.implicit_positive, 0)
            + case when t.success and t.verified_by is null then 1 else 0 end as implicit_positive,
        coalesce(f.implicit_negative, 0)
            + case when t.termination in ('user_abandoned', 'escalated') then 1 else 0 end
            + case when not t.success and t.verified_by is null then 1 else 0 end as implicit_negative,
        coalesce(f.has_correction, false) as has_correction,
        f.corrected_output,
        f.human_rating,
        j.judge_polarity,
        j.judge_model,
        j.judge_rubric_version
    from trajectories as t
    left join feedback_per_record as f using (record_key)
    left join judge as j using (record_key)
),

tiers as (
    select
        *,
        case
            when implicit_positive > 0 and implicit_negative > 0 then 'conflict'
            when implicit_positive > 0 then 'positive'
            when implicit_negative > 0 then 'negative'
        end as implicit_polarity
    from tier_polarity
),

decided as (
    select
        *,
        case
            when verified_polarity is not null then 'verified_outcome'
            when human_polarity is not null then 'human'
            when judge_polarity is not null then 'judge'
            when implicit_polarity is not null then 'implicit'
        end as deciding_tier,
        coalesce(verified_polarity, human_polarity, judge_polarity, implicit_polarity) as deciding_polarity
    from tiers
),

with_contradictions as (
    select
        *,
        -- lower tiers that say otherwise (a tier in conflict with itself counts as saying otherwise)
        {{ list_without_nulls([
            "case when deciding_tier = 'verified_outcome' and human_polarity is not null
                and human_polarity <> deciding_polarity then 'human' end",
            "case when deciding_tier in ('verified_outcome', 'human', 'judge') and implicit_polarity is not null
                and implicit_polarity <> deciding_polarity then 'implicit' end",
        ]) }} as contradicted_by,
        case deciding_tier
            when 'verified_outcome' then {{ var('label_confidence_verified') }}
            when 'human' then {{ var('label_confidence_human') }}
            when 'judge' then {{ var('label_confidence_judge') }}
            when 'implicit' then {{ var('label_confidence_implicit') }}
        end as base_confidence
    from decided
),

labelled as (
    select
        *,
        greatest(0.0, base_confidence - {{ var('label_conflict_penalty') }} * {{ list_len('contradicted_by') }})
            as confidence_after_conflicts
    from with_contradictions
),

final_labels as (
    select
        *,
        case
            when deciding_tier is null then 'unknown'
            when deciding_polarity = 'conflict' then 'unknown'
            when confidence_after_conflicts < {{ var('label_min_confidence') }} then 'unknown'
            when deciding_polarity = 'positive' then 'good'
            else 'bad'
        end as label,
        case
            when deciding_tier is null then 'no_outcome_signal'
            when deciding_polarity = 'conflict' then 'conflicting_' || deciding_tier || '_signals'
            when {{ list_len('contradicted_by') }} > 0 and confidence_after_conflicts < {{ var('label_min_confidence') }}
                then deciding_tier || '_contradicted_by_' || array_to_string(contradicted_by, '_and_')
            when {{ list_len('contradicted_by') }} > 0
                then deciding_tier || '_kept_despite_' || array_to_string(contradicted_by, '_and_')
            else deciding_tier || '_uncontested'
        end as label_reason
    from labelled
)

select
    l.record_key,
    l.label,
    case
        when l.deciding_tier is null then 'none'
        when l.deciding_tier = 'human' and l.has_correction and l.deciding_polarity = 'negative'
            then 'human_correction'
        when l.deciding_tier = 'human' then 'human_rating'
        else l.deciding_tier
    end as label_source,
    case when l.label = 'unknown' then 0.0 else round(l.confidence_after_conflicts, 4) end as label_confidence,
    l.label_reason,
    l.verified_polarity,
    l.human_polarity,
    l.implicit_polarity,
    l.judge_polarity,
    l.judge_model,
    l.judge_rubric_version,
    l.human_rating,
    l.has_correction,
    l.corrected_output,
    -- ranking score for R10: how good a demonstration this is (0-1). Label and confidence
    -- set the base; every tool error, wrong tool and unanswered call costs `quality_error_penalty`.
    round(greatest(0.0, least(1.0,
        case l.label
            when 'good' then 0.5 + 0.5 * l.confidence_after_conflicts
            when 'bad' then 0.5 - 0.5 * l.confidence_after_conflicts
            else 0.5
        end
        - {{ var('quality_error_penalty') }}
            * (s.n_tool_errors + s.n_wrong_tool_calls + s.n_unanswered_calls)
    )), 4) as quality_score
from final_labels as l
join structure as s using (record_key)
