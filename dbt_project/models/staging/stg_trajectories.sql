-- One typed row per redacted trajectory record. Exact replays are still here: they share
-- content_digest, and deduplication is a curation decision made downstream.
with source_rows as (
    -- tool sets are stored once per day and referred to by id: each row gets its own back
    select t.*, s.tools
    from {{ source('redacted', 'trajectories') }} as t
    left join {{ source('redacted', 'tool_sets') }} as s using (partition_date, tool_set_id)
)

select
    record_key,
    trajectory_id,
    partition_date::date as partition_date,
    session_id,
    user_id,
    tenant,
    agent_name,
    agent_version,
    model,
    nullif(trim(task_type), '') as task_type,
    nullif(trim(goal), '') as goal,
    {{ try_cast_timestamptz('started_at') }} as started_at,
    {{ try_cast_timestamptz('ended_at') }} as ended_at,
    system_prompt,
    coalesce(tools, '[]')::json as tools,
    -- names of the tools offered to the agent, to spot calls to tools it was never given
    {{ json_tool_names("coalesce(tools, '[]')::json") }} as offered_tool_names,
    request_params::json as request_params,
    success,
    reward,
    nullif(trim(verified_by), '') as verified_by,
    nullif(trim(termination), '') as termination,
    coalesce(consent_may_train, false) as consent_may_train,
    nullif(trim(consent_scope), '') as consent_scope,
    task_spec::json as task_spec,
    nullif({{ json_text_at('task_spec', ['template_id']) }}, '') as template_id,
    extra::json as extra,
    n_steps,
    content_digest,
    source_format,
    source_uri,
    source_line,
    raw_commit,
    schema_version
from source_rows
