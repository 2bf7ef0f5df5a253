{#- Portable SQL: the few constructs DuckDB and PostgreSQL spell differently, one macro each,
    dispatched on the adapter (`adapter.dispatch`). The DuckDB branch is the SQL the models
    were first written in (its output must not change); the PostgreSQL branch gives the same
    values, so the marts are the same bytes on both targets (tests/integration/
    test_portable_warehouse.py). Everything else in the models is SQL both engines read
    alike: explicit GROUP BY lists, no QUALIFY, casts to `double precision`, md5, FILTER.

    Lists are DuckDB LISTs and PostgreSQL arrays. JSON is DuckDB's JSON type and
    PostgreSQL's `json` (never jsonb: `json` keeps its text, key order and duplicates);
    the JSON the models build (messages, tool calls) is DuckDB's compact text, which
    PostgreSQL reproduces with `flywheel_json_compact` (created by `portable_functions`,
    an on-run-start hook). -#}


{#- ---- lists ---------------------------------------------------------------------------- -#}

{#- Number of elements (NULL for a NULL list). -#}
{% macro list_len(list) -%}{{ adapter.dispatch('list_len', 'flywheel')(list) }}{%- endmacro %}
{% macro default__list_len(list) -%}len({{ list }}){%- endmacro %}
{% macro postgres__list_len(list) -%}cardinality({{ list }}){%- endmacro %}

{#- A list literal of text items (`items`: SQL expressions); [] when empty. -#}
{% macro list_of(items) -%}{{ adapter.dispatch('list_of', 'flywheel')(items) }}{%- endmacro %}
{% macro default__list_of(items) -%}[{{ items | join(', ') }}]{%- endmacro %}
{% macro postgres__list_of(items) -%}array[{{ items | join(', ') }}]::varchar[]{%- endmacro %}

{#- The text items that are not NULL, as a list, in order (rule ids, label contradictions). -#}
{% macro list_without_nulls(items) -%}{{ adapter.dispatch('list_without_nulls', 'flywheel')(items) }}{%- endmacro %}
{% macro default__list_without_nulls(items) -%}
    list_filter([{{ items | join(', ') }}], lambda x: x is not null)
{%- endmacro %}
{% macro postgres__list_without_nulls(items) -%}
    array_remove(array[{{ items | join(', ') }}]::varchar[], null)
{%- endmacro %}

{#- Whether `list` holds `value`: NULL when either is NULL, else true or false (a NULL
    element does not make the answer NULL, as it does for PostgreSQL's `= any`). -#}
{% macro list_contains(list, value) -%}{{ adapter.dispatch('list_contains', 'flywheel')(list, value) }}{%- endmacro %}
{% macro default__list_contains(list, value) -%}list_contains({{ list }}, {{ value }}){%- endmacro %}
{% macro postgres__list_contains(list, value) -%}
    (case when {{ list }} is null or {{ value }} is null then null
        else coalesce({{ value }} = any({{ list }}), false) end)
{%- endmacro %}

{#- Aggregate: the values as a list, in `order_by` order (`distinct`: each value once, in no
    particular order). -#}
{% macro list_agg(expression, order_by=none, distinct=false) -%}
    {{ adapter.dispatch('list_agg', 'flywheel')(expression, order_by, distinct) }}
{%- endmacro %}
{% macro default__list_agg(expression, order_by, distinct) -%}
    list({{ 'distinct ' if distinct }}{{ expression }}{{ ' order by ' ~ order_by if order_by }})
{%- endmacro %}
{% macro postgres__list_agg(expression, order_by, distinct) -%}
    array_agg({{ 'distinct ' if distinct }}{{ expression }}{{ ' order by ' ~ order_by if order_by }})
{%- endmacro %}

{#- Aggregate: the value of the first row in `order_by` order. -#}
{% macro first_by(expression, order_by) -%}{{ adapter.dispatch('first_by', 'flywheel')(expression, order_by) }}{%- endmacro %}
{% macro default__first_by(expression, order_by) -%}first({{ expression }} order by {{ order_by }}){%- endmacro %}
{% macro postgres__first_by(expression, order_by) -%}(array_agg({{ expression }} order by {{ order_by }}))[1]{%- endmacro %}

{#- A one-column relation `k` of the integers 0 .. n - 1 (`n`: a scalar SQL expression). -#}
{% macro integers_below(n) -%}{{ adapter.dispatch('integers_below', 'flywheel')(n) }}{%- endmacro %}
{% macro default__integers_below(n) -%}(select unnest(range(0, {{ n }})) as k){%- endmacro %}
{% macro postgres__integers_below(n) -%}(select generate_series(0, ({{ n }}) - 1) as k){%- endmacro %}


{#- ---- numbers and casts ------------------------------------------------------------------ -#}

{#- `x` (a double) rounded to `digits` decimals the way DuckDB rounds a double:
    round(x * 10^digits) / 10^digits, halves away from zero. PostgreSQL has no round(double,
    int) (its round(numeric) rounds the decimal value, and round(double) breaks ties to even),
    so it does the same arithmetic in double precision. -#}
{% macro round_double(x, digits) -%}{{ adapter.dispatch('round_double', 'flywheel')(x, digits) }}{%- endmacro %}
{% macro default__round_double(x, digits) -%}round({{ x }}, {{ digits }}){%- endmacro %}
{% macro postgres__round_double(x, digits) -%}
    (sign(({{ x }})::double precision) * floor(abs(({{ x }})::double precision) * 1e{{ digits }}::double precision + 0.5)
        / 1e{{ digits }}::double precision)
{%- endmacro %}

{#- Text as a double, NULL where it is not a number (PostgreSQL has no try_cast). -#}
{% macro try_cast_double(x) -%}{{ adapter.dispatch('try_cast_double', 'flywheel')(x) }}{%- endmacro %}
{% macro default__try_cast_double(x) -%}try_cast({{ x }} as double){%- endmacro %}
{% macro postgres__try_cast_double(x) -%}{{ target.schema }}.flywheel_try_float8({{ x }}){%- endmacro %}

{#- Text as a timestamp with time zone, NULL where it is not one. -#}
{% macro try_cast_timestamptz(x) -%}{{ adapter.dispatch('try_cast_timestamptz', 'flywheel')(x) }}{%- endmacro %}
{% macro default__try_cast_timestamptz(x) -%}try_cast({{ x }} as timestamptz){%- endmacro %}
{% macro postgres__try_cast_timestamptz(x) -%}{{ target.schema }}.flywheel_try_timestamptz({{ x }}){%- endmacro %}

{#- A stable bucket in [0, 10000) of a text: DuckDB's md5_number (the md5 digest read as a
    little-endian 128-bit integer) modulo 10000. PostgreSQL sums the digest's 16 bytes times
    256^i mod 10000 (the same remainder without 128-bit integers). Same value on every
    engine, machine and version (unlike hash()). -#}
{% macro md5_bucket(text) -%}{{ adapter.dispatch('md5_bucket', 'flywheel')(text) }}{%- endmacro %}
{% macro default__md5_bucket(text) -%}(md5_number({{ text }}) % 10000)::integer{%- endmacro %}
{% macro postgres__md5_bucket(text) -%}
    ((
    {%- for i in range(16) %}
        get_byte(decode(md5({{ text }}), 'hex'), {{ i }}) * {{ (256 ** i) % 10000 }}{{ ' +' if not loop.last }}
    {%- endfor %}
    ) % 10000)::integer
{%- endmacro %}


{#- ---- JSON -------------------------------------------------------------------------------- -#}

{#- The text of a JSON scalar at the top (`'"up"'` -> up, `5` -> 5); NULL for JSON null. -#}
{% macro json_scalar_text(json) -%}{{ adapter.dispatch('json_scalar_text', 'flywheel')(json) }}{%- endmacro %}
{% macro default__json_scalar_text(json) -%}json_extract_string({{ json }}, '$'){%- endmacro %}
{% macro postgres__json_scalar_text(json) -%}(({{ json }})::json #>> '{}'){%- endmacro %}

{#- The text of a member of a JSON object, by a path of keys (['function', 'name']). -#}
{% macro json_text_at(json, keys) -%}{{ adapter.dispatch('json_text_at', 'flywheel')(json, keys) }}{%- endmacro %}
{% macro default__json_text_at(json, keys) -%}json_extract_string({{ json }}, '$.{{ keys | join('.') }}'){%- endmacro %}
{% macro postgres__json_text_at(json, keys) -%}(({{ json }})::json #>> '{ {{- keys | join(',') -}} }'){%- endmacro %}

{#- Whether a JSON value (at a path of keys, or the top) is an object / an array. -#}
{% macro json_is(json, kind, keys=[]) -%}{{ adapter.dispatch('json_is', 'flywheel')(json, kind, keys) }}{%- endmacro %}
{% macro default__json_is(json, kind, keys) -%}
    (json_type({{ json }}{{ ", '$." ~ (keys | join('.')) ~ "'" if keys }}) = '{{ kind | upper }}')
{%- endmacro %}
{% macro postgres__json_is(json, kind, keys) -%}
    (json_typeof(({{ json }})::json{{ " #> '{" ~ (keys | join(',')) ~ "}'" if keys }}) = '{{ kind | lower }}')
{%- endmacro %}

{#- The names of the tools in an OpenAI-style tool list ([{function: {name}}]), as a list. -#}
{% macro json_tool_names(tools) -%}{{ adapter.dispatch('json_tool_names', 'flywheel')(tools) }}{%- endmacro %}
{% macro default__json_tool_names(tools) -%}
    coalesce(json_extract_string({{ tools }}, '$[*].function.name'), [])::varchar[]
{%- endmacro %}
{% macro postgres__json_tool_names(tools) -%}
    (case when json_typeof({{ tools }}) = 'array' then array(
        select tool.value #>> '{function,name}' from json_array_elements({{ tools }}) with ordinality as tool
        order by tool.ordinality
    ) else array[]::varchar[] end)::varchar[]
{%- endmacro %}

{#- A JSON object built from name/value pairs (`pairs`: a list of [name, SQL expression]),
    as compact JSON text: no whitespace, keys in the given order, nested JSON values
    re-serialised (DuckDB's json_object; PostgreSQL's json_build_object re-written compact
    by flywheel_json_compact). -#}
{% macro json_object(pairs) -%}{{ adapter.dispatch('json_object', 'flywheel')(pairs) }}{%- endmacro %}
{% macro default__json_object(pairs) -%}
    json_object({% for name, value in pairs %}'{{ name }}', {{ value }}{{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}
{% macro postgres__json_object(pairs) -%}
    {{ target.schema }}.flywheel_json_compact(json_build_object(
        {%- for name, value in pairs %}'{{ name }}', {{ value }}{{ ', ' if not loop.last }}{% endfor -%}
    ))::json
{%- endmacro %}

{#- Aggregate: JSON values as a list, in `order_by` order, over the rows `filter` keeps. Cast
    to JSON it is DuckDB's text of a list of JSON: `[a, b]` (", " between the items, each
    item's own text); PostgreSQL writes that text directly. NULL when no row is kept. -#}
{% macro json_list_agg(expression, order_by, filter=none) -%}
    {{ adapter.dispatch('json_list_agg', 'flywheel')(expression, order_by, filter) }}
{%- endmacro %}
{% macro default__json_list_agg(expression, order_by, filter) -%}
    list({{ expression }} order by {{ order_by }}){{ ' filter (where ' ~ filter ~ ')' if filter }}
{%- endmacro %}
{% macro postgres__json_list_agg(expression, order_by, filter) -%}
    ('[' || string_agg(({{ expression }})::text, ', ' order by {{ order_by }}){{ ' filter (where ' ~ filter ~ ')' if filter }} || ']')
{%- endmacro %}

{#- A list of one JSON value, with the same text as json_list_agg gives. -#}
{% macro json_list_of_one(expression) -%}{{ adapter.dispatch('json_list_of_one', 'flywheel')(expression) }}{%- endmacro %}
{% macro default__json_list_of_one(expression) -%}[{{ expression }}]{%- endmacro %}
{% macro postgres__json_list_of_one(expression) -%}('[' || ({{ expression }})::text || ']'){%- endmacro %}


{#- ---- on-run-start: the functions the PostgreSQL branches call ---------------------------- -#}

{% macro portable_functions() -%}{{ adapter.dispatch('portable_functions', 'flywheel')() }}{%- endmacro %}
{% macro default__portable_functions() -%}select 1{%- endmacro %}
{% macro postgres__portable_functions() -%}
create schema if not exists {{ target.schema }};

create or replace function {{ target.schema }}.flywheel_try_float8(value text) returns double precision
language plpgsql immutable as $$
begin
    return value::double precision;
exception when others then
    return null;
end $$;

create or replace function {{ target.schema }}.flywheel_try_timestamptz(value text) returns timestamptz
language plpgsql stable as $$
begin
    return value::timestamptz;
exception when others then
    return null;
end $$;

-- A JSON string as DuckDB (yyjson) writes it: " \ and control characters escaped, \b \t \n
-- \f \r by name, the others as \u00XX in upper-case hex (to_json writes lower case);
-- everything else, / and non-ASCII included, as is.
create or replace function {{ target.schema }}.flywheel_json_string(value text) returns text
language plpgsql immutable as $$
declare
    out text := to_json(value)::text;
    code int;
begin
    if value ~ '[\x01-\x1f]' then
        for code in 1..31 loop
            if code not in (8, 9, 10, 12, 13) then
                out := replace(out, '\u' || lpad(lower(to_hex(code)), 4, '0'), '\u' || lpad(upper(to_hex(code)), 4, '0'));
            end if;
        end loop;
    end if;
    return out;
end $$;

-- A JSON number as DuckDB (yyjson) re-writes it: an integer as written (-0 as 0); a real
-- number by its shortest round-trip digits, plain when its decimal exponent is in -6..20
-- (an integral value gets ".0"), else d.ddde[-]x; one a double cannot hold, as written.
create or replace function {{ target.schema }}.flywheel_json_number(value text) returns text
language plpgsql immutable set extra_float_digits = 1 as $$
declare
    shortest text;
    negative boolean;
    mantissa text;
    exponent int := 0;
    digits text;
    point int;
    sci int;
begin
    if value ~ '^-?[0-9]+$' then
        return case when value ~ '^-0+$' then '0' else value end;
    end if;
    begin
        shortest := value::double precision::text;
    exception when others then
        return value;
    end;
    if shortest in ('Infinity', '-Infinity', 'NaN') then
        return value;
    end if;
    negative := left(shortest, 1) = '-';
    shortest := ltrim(shortest, '-');
    mantissa := split_part(shortest, 'e', 1);
    if position('e' in shortest) > 0 then
        exponent := split_part(shortest, 'e', 2)::int;
    end if;
    digits := replace(mantissa, '.', '');
    point := coalesce(nullif(position('.' in mantissa), 0) - 1, length(mantissa)) + exponent;
    while left(digits, 1) = '0' and length(digits) > 0 loop
        digits := substr(digits, 2);
        point := point - 1;
    end loop;
    digits := rtrim(digits, '0');
    if digits = '' then
        return case when negative then '-0.0' else '0.0' end;
    end if;
    sci := point - 1;
    if sci > -7 and sci < 21 then
        if point <= 0 then
            digits := '0.' || repeat('0', -point) || digits;
        elsif point >= length(digits) then
            digits := digits || repeat('0', point - length(digits)) || '.0';
        else
            digits := left(digits, point) || '.' || substr(digits, point + 1);
        end if;
    else
        digits := left(digits, 1) || case when length(digits) > 1 then '.' || substr(digits, 2) else '' end
            || 'e' || sci::text;
    end if;
    return case when negative then '-' else '' end || digits;
end $$;

-- JSON re-written as DuckDB writes the JSON it builds: no whitespace, object keys in their
-- order (duplicates kept), strings and numbers as above.
create or replace function {{ target.schema }}.flywheel_json_compact(value json) returns text
language plpgsql immutable as $$
declare
    kind text := json_typeof(value);
    out text;
begin
    if value is null then
        return null;
    elsif kind = 'object' then
        select '{' || coalesce(string_agg({{ target.schema }}.flywheel_json_string(member.key) || ':'
                                          || {{ target.schema }}.flywheel_json_compact(member.value), ','
                                          order by member.position), '') || '}'
        into out
        from json_each(value) with ordinality as member(key, value, position);
        return out;
    elsif kind = 'array' then
        select '[' || coalesce(string_agg({{ target.schema }}.flywheel_json_compact(item.value), ','
                                          order by item.position), '') || ']'
        into out
        from json_array_elements(value) with ordinality as item(value, position);
        return out;
    elsif kind = 'string' then
        return {{ target.schema }}.flywheel_json_string(value #>> '{}');
    elsif kind = 'number' then
        return {{ target.schema }}.flywheel_json_number(value::text);
    else
        return value::text;  -- true, false, null
    end if;
end $$
{%- endmacro %}
