-- Preference pairs (prompt / chosen / rejected as TRL message lists) from two sources:
--   attempts:   kept train trajectories of the same task (same template and goal) with
--               different outcomes; each failed attempt is paired with the best
--               `max_pairs_per_rejected` successful ones. The prompt is the chosen
--               attempt's conversation up to its last user turn; `prompts_identical` says
--               whether the rejected attempt was asked exactly the same.
--   correction: a failed train trajectory with a human correction: the correction is the
--               chosen reply, what the agent did after the last user turn the rejected one.
with decisions as (
    select * from {{ ref('int_curation_balanced') }}
    where destination = 'train' and label in ('good', 'bad')
),

trajectories as (
    select record_key, tools from {{ ref('stg_trajectories') }}
),

corrections as (
    select record_key, corrected_output from {{ ref('int_quality_labels') }}
    where corrected_output is not null
),

structure as (
    select record_key, last_user_step_index from {{ ref('int_trajectory_structure') }}
),

conversation_parts as (
    select
        m.record_key,
        {{ json_list_agg('m.message', order_by='m.step_index', filter='m.step_index <= s.last_user_step_index') }}
            as prompt,
        {{ json_list_agg('m.message', order_by='m.step_index', filter='m.step_index > s.last_user_step_index') }}
            as completion,
        md5(string_agg(coalesce(m.content, ''), chr(30) order by m.step_index)
            filter (where m.step_index <= s.last_user_step_index and m.role in ('system', 'user'))) as prompt_key,
        count(*) filter (where m.step_index > s.last_user_step_index and m.role = 'assistant') as n_completion_turns
    from {{ ref('int_messages') }} as m
    join structure as s using (record_key)
    group by m.record_key
),

attempts as (
    select
        d.*,
        -- whitespace spelt out: what DuckDB's \s matches (PostgreSQL's also takes \v)
        coalesce(d.template_id, d.task_type) || '|'
            || lower(regexp_replace(trim(coalesce(d.goal, '')), '[ \t\n\f\r]+', ' ', 'g')) as task_key,
        p.prompt,
        p.completion,
        p.prompt_key
    from decisions as d
    join conversation_parts as p using (record_key)
    where p.n_completion_turns > 0
),

-- each failed attempt with every successful one of its task, ranked (best first)
attempt_candidates as (
    select
        'attempts' as pair_source,
        chosen.record_key as chosen_record_key,
        rejected.record_key as rejected_record_key,
        chosen.trajectory_id as chosen_trajectory_id,
        rejected.trajectory_id as rejected_trajectory_id,
        chosen.task_type,
        chosen.template_id,
        chosen.split_group_key,
        rejected.split_group_key as rejected_split_group_key,
        chosen.prompt,
        chosen.completion as chosen,
        rejected.completion as rejected,
        chosen.prompt_key = rejected.prompt_key as prompts_identical,
        row_number() over (
            partition by rejected.record_key
            order by chosen.quality_score desc,
                {{ stable_bucket('chosen.record_key || rejected.record_key', var('balance_salt')) }},
                chosen.record_key
        ) as chosen_rank
    from attempts as rejected
    join attempts as chosen
        on chosen.task_key = rejected.task_key
        and chosen.label = 'good'
        and chosen.content_key <> rejected.content_key
    where rejected.label = 'bad'
),

-- the best `max_pairs_per_rejected` (a subquery filter: QUALIFY is DuckDB's)
attempt_pairs as (
    select
        pair_source, chosen_record_key, rejected_record_key, chosen_trajectory_id, rejected_trajectory_id,
        task_type, template_id, split_group_key, rejected_split_group_key, prompt, chosen, rejected,
        prompts_identical
    from attempt_candidates
    where chosen_rank <= {{ var('max_pairs_per_rejected') }}
),

correction_pairs as (
    select
        'correction' as pair_source,
        null::varchar as chosen_record_key,
        a.record_key as rejected_record_key,
        null::varchar as chosen_trajectory_id,
        a.trajectory_id as rejected_trajectory_id,
        a.task_type,
        a.template_id,
        a.split_group_key,
        a.split_group_key as rejected_split_group_key,
        a.prompt,
        {{ json_list_of_one(json_object([
            ['role', "'assistant'"], ['content', 'c.corrected_output'], ['tool_calls', 'null::json'],
            ['tool_call_id', 'null::varchar'],
        ])) }} as chosen,
        a.completion as rejected,
        true as prompts_identical
    from attempts as a
    join corrections as c using (record_key)
    where a.label = 'bad'
),

all_pairs as (
    select * from attempt_pairs
    union all
    select * from correction_pairs
)

select
    md5(pair_source || '|' || coalesce(chosen_record_key, '') || '|' || rejected_record_key) as pair_id,
    pair_source,
    chosen_record_key,
    rejected_record_key,
    chosen_trajectory_id,
    rejected_trajectory_id,
    task_type,
    template_id,
    split_group_key,
    rejected_split_group_key,
    prompt::json as prompt,
    chosen::json as chosen,
    rejected::json as rejected,
    t.tools,
    prompts_identical
from all_pairs
join trajectories as t on t.record_key = all_pairs.rejected_record_key
