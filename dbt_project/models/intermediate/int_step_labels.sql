-- One row per step with a step-level label: what the step did and, for tool results,
-- whether an error was followed by a recovery. Also the per-step structural checks that
-- decide whether a trajectory is malformed (R05, R06).
--
-- A tool error on a call is RECOVERED when a later call of the same tool, or a later call
-- with the same arguments to another tool (the agent corrected its choice of tool),
-- succeeds. A failed call that was corrected by another tool is a WRONG TOOL call.
with steps as (
    select * from {{ ref('stg_steps') }}
),

calls as (
    select * from {{ ref('stg_tool_calls') }}
),

offered_tools as (
    select record_key, offered_tool_names from {{ ref('stg_trajectories') }}
),

-- every call with the tool step that answers it (same call id, later in the trajectory):
-- the first such step, picked by row_number in a subquery (QUALIFY is DuckDB's)
calls_with_answers as (
    select
        calls.record_key,
        calls.step_index,
        calls.call_index,
        calls.call_id,
        calls.name,
        calls.arguments,
        answer.step_index as result_step_index,
        answer.error as result_error,
        answer.step_index is not null as is_answered,
        answer.step_index is not null and answer.error is null as is_ok,
        {{ list_len('offered.offered_tool_names') }} = 0
            or {{ list_contains('offered.offered_tool_names', 'calls.name') }} as is_offered_tool,
        row_number() over (
            partition by calls.record_key, calls.step_index, calls.call_index order by answer.step_index
        ) as answer_rank
    from calls
    left join offered_tools as offered using (record_key)
    left join steps as answer
        on answer.record_key = calls.record_key
        and answer.role = 'tool'
        and answer.tool_call_id = calls.call_id
        and answer.step_index > calls.step_index
),

calls_with_results as (
    select
        record_key, step_index, call_index, call_id, name, arguments, result_step_index, result_error,
        is_answered, is_ok, is_offered_tool
    from calls_with_answers
    where answer_rank = 1
),

-- a failed call is recovered by a later successful call of the same tool or with the same arguments
failed_calls_recovery as (
    select
        failed.record_key,
        failed.step_index,
        failed.call_index,
        bool_or(later.name = failed.name) as retried_successfully,
        bool_or(later.name <> failed.name and later.arguments::varchar = failed.arguments::varchar)
            as corrected_by_other_tool
    from calls_with_results as failed
    join calls_with_results as later
        on later.record_key = failed.record_key
        and later.step_index > failed.step_index
        and later.is_ok
    where failed.is_answered and not failed.is_ok
    group by failed.record_key, failed.step_index, failed.call_index
),

calls_labelled as (
    select
        c.*,
        not c.is_ok and c.is_answered
            and coalesce(r.retried_successfully or r.corrected_by_other_tool, false) as is_recovered,
        (not c.is_ok and c.is_answered and coalesce(r.corrected_by_other_tool and not r.retried_successfully, false))
            or not c.is_offered_tool as is_wrong_tool
    from calls_with_results as c
    left join failed_calls_recovery as r using (record_key, step_index, call_index)
),

calls_per_step as (
    select
        record_key,
        step_index,
        count(*) as n_calls,
        count(*) filter (where not is_answered) as n_unanswered_calls,
        count(*) filter (where is_wrong_tool) as n_wrong_tool_calls,
        count(*) filter (where not is_offered_tool) as n_unoffered_tool_calls,
        bool_and(is_ok) as all_calls_ok,
        {{ list_agg('name', order_by='call_index') }} as call_names
    from calls_labelled
    group by record_key, step_index
),

-- the call a tool step answers (NULL: an orphan result)
answered_call as (
    select record_key, result_step_index as step_index, name as answered_tool, is_recovered, is_wrong_tool
    from calls_labelled
    where is_answered
),

steps_in_context as (
    select
        steps.*,
        row_number() over (partition by steps.record_key order by steps.step_index) - 1 as position,
        lag(steps.role) over (partition by steps.record_key order by steps.step_index) as previous_role,
        coalesce(lag(cps.n_calls) over (partition by steps.record_key order by steps.step_index), 0)
            as previous_n_calls,
        count(*) filter (where steps.role = 'user') over (
            partition by steps.record_key order by steps.step_index
            rows between unbounded preceding and 1 preceding
        ) as users_before,
        max(steps.step_index) filter (where steps.role = 'assistant') over (partition by steps.record_key)
            as last_assistant_index,
        max(steps.step_index) filter (where steps.role = 'tool') over (partition by steps.record_key)
            as last_tool_index,
        -- the tool error the agent saw just before this step, for labelling retries
        lag(steps.error) over (partition by steps.record_key order by steps.step_index) as previous_error,
        lag(ac.answered_tool) over (partition by steps.record_key order by steps.step_index) as previous_tool,
        coalesce(cps.n_calls, 0) as n_calls,
        coalesce(cps.n_unanswered_calls, 0) as n_unanswered_calls,
        coalesce(cps.n_wrong_tool_calls, 0) as n_wrong_tool_calls,
        coalesce(cps.n_unoffered_tool_calls, 0) as n_unoffered_tool_calls,
        cps.all_calls_ok,
        cps.call_names,
        ac.answered_tool,
        ac.is_recovered,
        ac.is_wrong_tool as answers_wrong_tool
    from steps
    left join calls_per_step as cps using (record_key, step_index)
    left join answered_call as ac using (record_key, step_index)
)

select
    record_key,
    trajectory_id,
    step_index,
    role,
    n_calls,
    call_names,
    answered_tool,
    error,
    prompt_tokens,
    completion_tokens,
    length(coalesce(content, '')) + length(coalesce(reasoning, '')) + length(coalesce(error, '')) as n_chars,
    normalized_text,
    normalized_reasoning,
    case
        when role = 'system' then 'system_prompt'
        when role = 'user' then 'user_turn'
        when role = 'assistant' and n_calls > 0 and n_wrong_tool_calls > 0 then 'wrong_tool_call'
        when role = 'assistant' and n_calls > 0 and previous_error is not null
            and {{ list_contains('call_names', 'previous_tool') }} then 'retry'
        when role = 'assistant' and n_calls > 0 then 'tool_call'
        when role = 'assistant' and step_index = last_assistant_index
            and step_index > coalesce(last_tool_index, -1) then 'final_answer'
        when role = 'assistant' then 'assistant_message'
        when role = 'tool' and answered_tool is null then 'orphan_tool_result'
        when role = 'tool' and error is null then 'tool_result'
        when role = 'tool' and is_recovered then 'tool_error_recovered'
        when role = 'tool' then 'tool_error_unrecovered'
        else 'unknown_role'
    end as step_label,
    role = 'tool' and error is not null as is_error,
    coalesce(role = 'tool' and error is not null and is_recovered, false) as is_recovered_error,
    coalesce(role = 'tool' and error is not null and not is_recovered, false) as is_unrecovered_error,
    n_unanswered_calls,
    n_wrong_tool_calls,
    n_unoffered_tool_calls,
    -- an assistant step whose every call got a result without error (NULL: no calls)
    all_calls_ok,
    -- roles out of order: what a chat template or a trainer would choke on
    case
        when role not in ('system', 'user', 'assistant', 'tool') then 'unknown_role'
        when step_index <> position then 'step_index_gap'
        when role = 'system' and position > 0 then 'system_not_first'
        when role in ('assistant', 'tool') and users_before = 0 then 'agent_before_user'
        when role = 'tool' and answered_tool is null then 'orphan_tool_result'
        when role = 'tool' and not (previous_role = 'tool' or (previous_role = 'assistant' and previous_n_calls > 0))
            then 'tool_result_without_call'
        when role <> 'assistant' and n_calls > 0 then 'tool_call_on_non_assistant'
    end as role_order_violation
from steps_in_context
