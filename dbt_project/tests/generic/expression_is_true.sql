{#- Rows of `model` for which a boolean SQL `expression` is not true (NULL counts as false). -#}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
