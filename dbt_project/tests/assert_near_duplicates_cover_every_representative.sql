{{ config(severity='error', meta={'dagster': {'ref': {'name': 'int_near_duplicates'}}}) }}
{#- Attached to int_near_duplicates in Dagster (a singular test with several parents needs the ref). -#}
-- Every exact-dedup representative has a near-duplicate document: derived.near_duplicate_*
-- are written before dbt from the same redacted tables, and a record missing there (tables
-- left over from an earlier run) would silently count as a near duplicate (R02).
select e.record_key
from {{ ref('int_exact_duplicates') }} as e
left join {{ ref('int_near_duplicates') }} as n using (record_key)
where e.is_exact_representative and n.record_key is null
