-- One typed row per step. Empty strings become NULL (react_text writes missing text as
-- empty), and `normalized_text` is the step's text as deduplication compares it:
-- lower-cased, whitespace collapsed, a tool step's error standing in for its content.
-- Whitespace is spelt out ([ \t\n\f\r], what DuckDB's \s matches): PostgreSQL's \s also
-- takes \v, and the same text must give the same content_key on both.
with source_rows as (
    select * from {{ source('redacted', 'steps') }}
),

typed as (
    select
        record_key,
        trajectory_id,
        partition_date::date as partition_date,
        step_index,
        lower(trim(role)) as role,
        nullif(content, '') as content,
        nullif(trim(reasoning), '') as reasoning,
        nullif(trim(tool_call_id), '') as tool_call_id,
        nullif(trim(error), '') as error,
        latency_ms,
        prompt_tokens,
        completion_tokens,
        coalesce(n_tool_calls, 0) as n_tool_calls
    from source_rows
)

select
    *,
    lower(trim(regexp_replace(
        case when role = 'tool' then coalesce(error, content) else content end, '[ \t\n\f\r]+', ' ', 'g'
    ))) as normalized_text,
    lower(trim(regexp_replace(reasoning, '[ \t\n\f\r]+', ' ', 'g'))) as normalized_reasoning
from typed
