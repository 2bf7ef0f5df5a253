-- Balancing of the train split, then every record's final destination.
--
-- The train pool (train-split records no rule R01-R11 excluded) is balanced by task type:
-- the commonest types are capped so that no type exceeds `balance_max_share` of the pool
-- after balancing (R12 drops the excess, in a stable hash order), and types below
-- `balance_min_share` get a weight of min_share / share, capped at `balance_max_weight`.
-- The cap is solved exactly: for k = 0, 1, ... capped types (commonest first) the cap is
-- C_k = floor(s * R_k / (1 - k * s)), R_k being the records of the uncapped types; the
-- first k whose capped counts all stay within share s wins. When no k can satisfy s (fewer
-- than 1/s task types) every type is cut to the rarest type's count: the flattest possible.
{% set max_share = var('balance_max_share') | float %}

with candidates as (
    select * from {{ ref('int_curation_candidates') }}
),

train_pool as (
    select * from candidates
    where split = 'train' and {{ list_len('pre_balance_rule_ids') }} = 0
),

type_counts as (
    select
        task_type,
        count(*) as n_before,
        row_number() over (order by count(*) desc, task_type) as size_rank
    from train_pool
    group by task_type
),

-- candidate solutions: k = number of capped (commonest) types. The two decimal factors
-- divide as doubles (DuckDB's decimal division; PostgreSQL's would stay exact)
cap_candidates as (
    select
        k.k,
        case when k.k = 0 then null
            else floor(cast({{ max_share }} * sum(tc.n_before) filter (where tc.size_rank > k.k) as double precision)
                       / cast(1 - k.k * {{ max_share }} as double precision))
        end as cap
    from {{ integers_below('(select count(*) from type_counts)') }} as k
    cross join type_counts as tc
    where k.k * {{ max_share }} < 1
    group by k.k
),

capped_counts as (
    select
        c.k,
        c.cap,
        tc.task_type,
        case when tc.size_rank <= c.k then least(tc.n_before, c.cap) else tc.n_before end as n_after
    from cap_candidates as c
    cross join type_counts as tc
),

valid_solutions as (
    select k, cap
    from capped_counts
    group by k, cap
    having (k = 0 or cap >= 1)
        and max(n_after) <= {{ max_share }} * sum(n_after) + 1e-9
),

chosen_caps as (
    -- the fewest capped types that satisfy the share; else flatten to the rarest type
    select
        tc.task_type,
        tc.n_before,
        case
            when (select count(*) from valid_solutions) = 0 then (select min(n_before) from type_counts)
            when tc.size_rank <= (select min(k) from valid_solutions)
                then least(tc.n_before, (select cap from valid_solutions order by k limit 1))
            else tc.n_before
        end::bigint as n_after
    from type_counts as tc
),

type_weights as (
    select
        task_type,
        n_before,
        n_after,
        -- shares are doubles on both engines (PostgreSQL divides integers to an integer)
        cast(n_after as double precision) / nullif(sum(n_after) over (), 0) as share_after,
        least(
            {{ var('balance_max_weight') }},
            greatest(1.0, {{ var('balance_min_share') }}
                / nullif(cast(n_after as double precision) / nullif(sum(n_after) over (), 0), 0))
        ) as balance_weight
    from chosen_caps
),

train_kept as (
    select
        p.record_key,
        row_number() over (
            partition by p.task_type
            order by {{ stable_bucket('p.record_key', var('balance_salt')) }}, p.record_key
        ) <= w.n_after as kept_by_balancing,
        w.balance_weight
    from train_pool as p
    join type_weights as w using (task_type)
)

select
    c.*,
    c.split = 'train' and {{ list_len('c.pre_balance_rule_ids') }} = 0 as in_train_pool,
    coalesce(k.kept_by_balancing, c.split = 'eval' and {{ list_len('c.pre_balance_rule_ids') }} = 0)
        as kept_after_balancing,
    c.pre_balance_rule_ids
        || case when k.kept_by_balancing = false then {{ list_of(["'R12_balance_cap'"]) }} else {{ list_of([]) }} end
        as rule_ids,
    case
        when {{ list_len('c.pre_balance_rule_ids') }} > 0 or k.kept_by_balancing = false then 'excluded'
        else c.split
    end as destination,
    case
        when k.kept_by_balancing then {{ round_double('k.balance_weight', 4) }}
        when c.split = 'eval' and {{ list_len('c.pre_balance_rule_ids') }} = 0 then 1.0
    end as weight
from candidates as c
left join train_kept as k using (record_key)
