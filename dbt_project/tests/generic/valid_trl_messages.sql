{#- Rows whose JSON column `column_name` is not a valid TRL conversational message list: it
    must be a non-empty JSON array of objects with a known role, and every tool call must be
    {type: "function", function: {name, arguments}} with `arguments` a JSON OBJECT (a string
    there is the classic bug that breaks chat templates). With `allow_empty`, [] passes. -#}
{% test valid_trl_messages(model, column_name, allow_empty=false) %}
with checked as (
    select
        {{ column_name }} as messages,
        json_type({{ column_name }}) as top_type,
        json_array_length({{ column_name }}) as n_messages
    from {{ model }}
),

messages as (
    select messages, unnest(json_extract(messages, '$[*]')) as message
    from checked
    where top_type = 'ARRAY'
),

bad_messages as (
    select messages
    from messages
    where json_type(message) <> 'OBJECT'
        or coalesce(json_extract_string(message, '$.role'), '') not in ('system', 'user', 'assistant', 'tool')
        or (json_type(message, '$.tool_calls') = 'ARRAY' and exists (
                select 1
                from (select unnest(json_extract(message, '$.tool_calls[*]')) as call)
                where coalesce(json_extract_string(call, '$.type'), '') <> 'function'
                    or json_extract_string(call, '$.function.name') is null
                    or coalesce(json_type(call, '$.function.arguments'), '') <> 'OBJECT'
            ))
)

select messages from checked
where top_type is distinct from 'ARRAY'
    {% if not allow_empty %}or n_messages = 0{% endif %}
union all
select messages from bad_messages
{% endtest %}
