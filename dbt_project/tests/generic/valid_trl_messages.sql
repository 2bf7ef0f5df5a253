{#- Rows whose JSON column `column_name` is not a valid TRL conversational message list: it
    must be a non-empty JSON array of objects with a known role, and every tool call must be
    {type: "function", function: {name, arguments}} with `arguments` a JSON OBJECT (a string
    there is the classic bug that breaks chat templates). With `allow_empty`, [] passes.
    DuckDB's JSON functions and PostgreSQL's json ones differ: one implementation each. -#}
{% test valid_trl_messages(model, column_name, allow_empty=false) %}
    {{ adapter.dispatch('test_valid_trl_messages', 'flywheel')(model, column_name, allow_empty) }}
{% endtest %}
