{#- Use the configured schema name as is (staging, marts, ...) instead of dbt's default
    `<target_schema>_<custom>`, so Dagster, GX and analysts see stable table names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name is not none else target.schema }}
{%- endmacro %}
