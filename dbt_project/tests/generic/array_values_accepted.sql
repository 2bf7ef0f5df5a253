{#- Rows whose list column `column_name` holds a value outside `values`. -#}
{% test array_values_accepted(model, column_name, values) %}
    {{ adapter.dispatch('test_array_values_accepted', 'flywheel')(model, column_name, values) }}
{% endtest %}
