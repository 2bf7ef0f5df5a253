{#- Rows whose list column `column_name` holds a value outside `values`. -#}
{% test array_values_accepted(model, column_name, values) %}
select {{ column_name }}
from {{ model }}
where len(list_filter({{ column_name }}, lambda x: x not in ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %}))) > 0
{% endtest %}
