-- Exact deduplication on normalised content: records whose steps say the same thing
-- (role, text, reasoning, tool calls; ids, timings and source format ignored) form one
-- group, and one representative is kept. The representative is the most usable copy:
-- consented, well-formed, best quality score, from the most lossless format, earliest.
with trajectories as (
    select * from {{ ref('stg_trajectories') }}
),

structure as (
    select * from {{ ref('int_trajectory_structure') }}
),

quality as (
    select * from {{ ref('int_quality_labels') }}
),

ranked as (
    select
        t.record_key,
        t.task_type,
        s.content_key,
        -- one global preference order, reused to pick near-duplicate representatives
        row_number() over (
            order by
                {{ training_consent('t') }} desc,
                ({{ list_len('s.role_order_violations') }} = 0 and not s.has_unanswered_tool_call) desc,
                q.quality_score desc,
                case t.source_format when 'canonical' then 0 when 'openai_chat' then 1
                    when 'otel_genai' then 2 else 3 end,
                t.partition_date,
                t.record_key
        ) as preference_rank
    from trajectories as t
    join structure as s using (record_key)
    join quality as q using (record_key)
)

select
    record_key,
    task_type,
    content_key,
    preference_rank,
    count(*) over (partition by content_key) as exact_group_size,
    first_value(record_key) over (partition by content_key order by preference_rank) as exact_representative_key,
    row_number() over (partition by content_key order by preference_rank) = 1 as is_exact_representative
from ranked
