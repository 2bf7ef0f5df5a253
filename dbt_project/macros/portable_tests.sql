{#- The PostgreSQL and DuckDB bodies of the generic tests whose SQL differs between the two
    (tests/generic/*.sql dispatch here: a macro defined in a test file is not dispatchable). -#}

{% macro default__test_valid_trl_messages(model, column_name, allow_empty) %}
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
{% endmacro %}

{% macro postgres__test_valid_trl_messages(model, column_name, allow_empty) %}
with checked as (
    select
        ({{ column_name }})::json as messages,
        json_typeof(({{ column_name }})::json) as top_type
    from {{ model }}
),

messages as (
    select c.messages, m.value as message
    from checked as c
    cross join lateral json_array_elements(
        case when c.top_type = 'array' then c.messages else '[]'::json end
    ) as m
),

bad_messages as (
    select messages
    from messages
    where json_typeof(message) <> 'object'
        or coalesce(message ->> 'role', '') not in ('system', 'user', 'assistant', 'tool')
        or exists (
            select 1
            from json_array_elements(
                case when json_typeof(message -> 'tool_calls') = 'array' then message -> 'tool_calls' else '[]'::json end
            ) as call
            where coalesce(call.value ->> 'type', '') <> 'function'
                or call.value #>> '{function,name}' is null
                or coalesce(json_typeof(call.value #> '{function,arguments}'), '') <> 'object'
        )
)

select messages from checked
where top_type is distinct from 'array'
    {% if not allow_empty %}or json_array_length(case when top_type = 'array' then messages else '[]'::json end) = 0{% endif %}
union all
select messages from bad_messages
{% endmacro %}

{% macro default__test_array_values_accepted(model, column_name, values) %}
select {{ column_name }}
from {{ model }}
where len(list_filter({{ column_name }}, lambda x: x not in ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %}))) > 0
{% endmacro %}

{% macro postgres__test_array_values_accepted(model, column_name, values) %}
select {{ column_name }}
from {{ model }}
where exists (
    select 1 from unnest({{ column_name }}) as item(value)
    where item.value not in ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %})
)
{% endmacro %}
