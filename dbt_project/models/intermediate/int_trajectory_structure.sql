-- One row per trajectory record: its shape (steps, calls, errors, recoveries, size), the
-- structural defects that make it malformed, and the fingerprint of its normalised content
-- that exact deduplication compares (near-duplicate detection reads the redacted steps
-- itself, before dbt: pipeline.core.curation.near_duplicates.conversation_text).
with trajectories as (
    select * from {{ ref('stg_trajectories') }}
),

step_labels as (
    select * from {{ ref('int_step_labels') }}
),

calls as (
    select * from {{ ref('stg_tool_calls') }}
),

-- tool calls rendered as text, per step, for the content fingerprint
calls_text as (
    select
        record_key,
        step_index,
        string_agg(name || '(' || arguments::varchar || ')', ';' order by call_index) as calls_text
    from calls
    group by record_key, step_index
),

step_aggregates as (
    select
        s.record_key,
        count(*) as n_steps_observed,
        count(*) filter (where s.role = 'user') as n_user_turns,
        count(*) filter (where s.role = 'assistant') as n_assistant_turns,
        count(*) filter (where s.role = 'tool') as n_tool_results,
        sum(s.n_calls) as n_tool_calls,
        sum(s.n_unanswered_calls) as n_unanswered_calls,
        count(*) filter (where s.step_label = 'orphan_tool_result') as n_orphan_results,
        count(*) filter (where s.is_error) as n_tool_errors,
        count(*) filter (where s.is_recovered_error) as n_recovered_errors,
        count(*) filter (where s.is_unrecovered_error) as n_unrecovered_errors,
        sum(s.n_wrong_tool_calls) as n_wrong_tool_calls,
        sum(s.n_unoffered_tool_calls) as n_unoffered_tool_calls,
        count(*) filter (where s.step_label = 'retry') as n_retries,
        bool_or(s.step_label = 'final_answer') as has_final_answer,
        max(s.step_index) filter (where s.role = 'user') as last_user_step_index,
        {{ list_agg('s.role_order_violation', distinct=true) }} filter (where s.role_order_violation is not null)
            as role_order_violations,
        -- context size: what the model saw at its largest call; estimated from text when
        -- the format lost token counts (react_text, otel)
        max(s.prompt_tokens + s.completion_tokens) as max_context_tokens_logged,
        sum(s.n_chars) as n_chars,
        -- exact fingerprint: every step's role, text, reasoning and calls (no ids, no timings)
        md5(string_agg(
            s.role || '|' || coalesce(s.normalized_text, '') || '|' || coalesce(s.normalized_reasoning, '')
                || '|' || coalesce(ct.calls_text, ''),
            chr(30) order by s.step_index
        )) as content_key
    from step_labels as s
    left join calls_text as ct using (record_key, step_index)
    group by s.record_key
)

select
    t.record_key,
    t.trajectory_id,
    t.task_type,
    coalesce(a.n_steps_observed, 0) as n_steps_observed,
    t.n_steps as n_steps_declared,
    coalesce(a.n_user_turns, 0) as n_user_turns,
    coalesce(a.n_assistant_turns, 0) as n_assistant_turns,
    coalesce(a.n_tool_results, 0) as n_tool_results,
    coalesce(a.n_tool_calls, 0) as n_tool_calls,
    coalesce(a.n_unanswered_calls, 0) as n_unanswered_calls,
    coalesce(a.n_orphan_results, 0) as n_orphan_results,
    coalesce(a.n_tool_errors, 0) as n_tool_errors,
    coalesce(a.n_recovered_errors, 0) as n_recovered_errors,
    coalesce(a.n_unrecovered_errors, 0) as n_unrecovered_errors,
    coalesce(a.n_wrong_tool_calls, 0) as n_wrong_tool_calls,
    coalesce(a.n_unoffered_tool_calls, 0) as n_unoffered_tool_calls,
    coalesce(a.n_retries, 0) as n_retries,
    coalesce(a.has_final_answer, false) as has_final_answer,
    a.last_user_step_index,
    -- / 4.0: PostgreSQL divides integers to an integer (DuckDB to a double)
    greatest(coalesce(a.max_context_tokens_logged, 0), ceil(coalesce(a.n_chars, 0) / 4.0))::integer
        as context_tokens,
    -- a trajectory is malformed when a trainer or chat template could not use it as is
    -- (lists join with ||, DuckDB's list_concat and PostgreSQL's array concatenation)
    coalesce(a.role_order_violations, {{ list_of([]) }})
        || case when coalesce(a.n_steps_observed, 0) = 0 then {{ list_of(["'no_steps'"]) }} else {{ list_of([]) }} end
        || case when coalesce(a.n_steps_observed, 0) > 0 and coalesce(a.n_assistant_turns, 0) = 0
            then {{ list_of(["'no_assistant_turn'"]) }} else {{ list_of([]) }} end
        || case when t.n_steps is not null and t.n_steps <> coalesce(a.n_steps_observed, 0)
            then {{ list_of(["'step_count_mismatch'"]) }} else {{ list_of([]) }} end
        as role_order_violations,
    coalesce(a.n_unanswered_calls, 0) > 0 as has_unanswered_tool_call,
    coalesce(a.content_key, md5('no-steps:' || t.record_key)) as content_key
from trajectories as t
left join step_aggregates as a using (record_key)
