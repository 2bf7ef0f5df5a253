{#- Consent: training needs `consent_may_train` and a scope other than evaluation_only;
    evaluation is allowed with training consent or an explicit evaluation_only scope. -#}
{% macro training_consent(alias) -%}
    ({{ alias }}.consent_may_train and coalesce({{ alias }}.consent_scope, 'training') <> 'evaluation_only')
{%- endmacro %}

{% macro evaluation_consent(alias) -%}
    ({{ training_consent(alias) }} or coalesce({{ alias }}.consent_scope, '') = 'evaluation_only')
{%- endmacro %}

{#- The split group key of a trajectory row aliased `alias`, per var `split_group_key`.
    Missing values fall back to a finer key, never to one shared group. -#}
{% macro split_group_key(alias) -%}
    {%- set key = var('split_group_key') -%}
    {%- if key == 'template' -%}
        coalesce('template:' || {{ alias }}.template_id,
                 'task:' || coalesce({{ alias }}.task_type, '?') || ':' || lower(coalesce({{ alias }}.goal, {{ alias }}.trajectory_id)))
    {%- elif key == 'user' -%}
        coalesce('user:' || {{ alias }}.user_id, 'trajectory:' || {{ alias }}.trajectory_id)
    {%- elif key == 'session' -%}
        coalesce('session:' || {{ alias }}.session_id, 'trajectory:' || {{ alias }}.trajectory_id)
    {%- elif key == 'trajectory' -%}
        'trajectory:' || {{ alias }}.trajectory_id
    {%- else -%}
        {{ exceptions.raise_compiler_error("var split_group_key must be template, user, session or trajectory, not " ~ key) }}
    {%- endif -%}
{%- endmacro %}

{#- A stable bucket in [0, 10000) from a text: md5, so it is the same on every machine,
    DuckDB version and warehouse (unlike hash(); see md5_bucket), and no random() anywhere. -#}
{% macro stable_bucket(expression, salt) -%}
    {{ md5_bucket("'" ~ salt ~ "' || '|' || " ~ expression) }}
{%- endmacro %}

{#- A source table written by an optional asset, which may not exist yet in a warehouse made
    before it (labels.judge_labels): the table, or an empty relation with `columns` (name:
    type) when it is missing. The source() call keeps the lineage either way. -#}
{% macro optional_source(source_name, table_name, columns) -%}
    {%- set src = source(source_name, table_name) -%}
    {%- set found = adapter.get_relation(database=src.database, schema=src.schema, identifier=src.identifier)
        if execute else src -%}
    {%- if found is none -%}
        (select {% for name, type in columns.items() %}null::{{ type }} as {{ name }}{{ ", " if not loop.last }}{% endfor %} where false)
    {%- else -%}
        {{ src }}
    {%- endif -%}
{%- endmacro %}

{% macro judge_labels_source() -%}
    {{ optional_source('labels', 'judge_labels', {'partition_date': 'varchar', 'record_key': 'varchar',
        'judge_model': 'varchar', 'rubric_version': 'varchar', 'passed': 'boolean'}) }}
{%- endmacro %}
