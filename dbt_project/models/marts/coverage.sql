-- Coverage of the curated data: task type x outcome label x split, with counts before and
-- after balancing (the train split is balanced; eval is kept whole), the weighted count,
-- and each task type's share of its split before and after, to see the balancing work.
with decisions as (
    select * from {{ ref('int_curation_balanced') }}
),

cells as (
    select
        task_type,
        label as outcome,
        split,
        count(*) as n_records,
        count(*) filter (where {{ list_len('pre_balance_rule_ids') }} = 0) as n_before_balancing,
        count(*) filter (where destination <> 'excluded') as n_after_balancing,
        coalesce(sum(weight) filter (where destination <> 'excluded'), 0) as weighted_after_balancing
    from decisions
    group by task_type, label, split
),

type_totals as (
    select
        task_type,
        split,
        sum(n_before_balancing) as type_before,
        sum(n_after_balancing) as type_after,
        sum(weighted_after_balancing) as type_weighted_after
    from cells
    group by task_type, split
),

split_totals as (
    select
        split,
        sum(type_before) as split_before,
        sum(type_after) as split_after,
        sum(type_weighted_after) as split_weighted_after
    from type_totals
    group by split
)

select
    c.task_type,
    c.outcome,
    c.split,
    c.n_records,
    c.n_before_balancing,
    c.n_after_balancing,
    -- shares are doubles on both engines (PostgreSQL would divide counts exactly, as numeric)
    {{ round_double('c.weighted_after_balancing', 4) }} as weighted_after_balancing,
    {{ round_double('cast(tt.type_before as double precision) / nullif(st.split_before, 0)', 4) }}
        as task_type_share_before,
    {{ round_double('cast(tt.type_after as double precision) / nullif(st.split_after, 0)', 4) }}
        as task_type_share_after,
    {{ round_double('tt.type_weighted_after / nullif(st.split_weighted_after, 0)', 4) }}
        as task_type_weighted_share_after
from cells as c
join type_totals as tt using (task_type, split)
join split_totals as st using (split)
