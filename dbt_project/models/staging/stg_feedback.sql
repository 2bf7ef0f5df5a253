-- One typed row per feedback signal, with the value decoded by kind: a rating as a number,
-- thumbs as a boolean, escalation / abandonment as a flag.
with source_rows as (
    select * from {{ source('redacted', 'feedback') }}
)

select
    record_key,
    trajectory_id,
    partition_date::date as partition_date,
    feedback_index,
    lower(trim(name)) as feedback_name,
    lower(trim(source)) as feedback_source,
    value::json as value,
    case when lower(trim(name)) = 'rating' then {{ try_cast_double(json_scalar_text('value')) }} end as rating,
    case
        when lower(trim(name)) = 'thumbs' then
            case lower({{ json_scalar_text('value') }})
                when 'up' then true when 'true' then true when '1' then true
                when 'down' then false when 'false' then false when '-1' then false
            end
    end as thumbs_up,
    -- escalation / abandonment are present when they happened; an explicit false cancels them
    coalesce(lower({{ json_scalar_text('value') }}) not in ('false', '0'), true) as flag_value,
    nullif(trim(comment), '') as comment,
    nullif(trim(corrected_output), '') as corrected_output,
    {{ try_cast_timestamptz('feedback_at') }} as feedback_at
from source_rows
