{{ config(severity='error', meta={'dagster': {'ref': {'name': 'curation_decisions'}}}) }}
{#- Attached to curation_decisions in Dagster (a singular test with several parents needs the ref). -#}
-- Every trajectory record of the source has exactly one curation decision (read from the
-- source, not stg_trajectories, so selecting staging alone does not pull this test in).
with records as (
    select record_key from {{ source('redacted', 'trajectories') }}
),

decisions as (
    select record_key, count(*) as n_decisions from {{ ref('curation_decisions') }} group by record_key
)

select records.record_key, coalesce(decisions.n_decisions, 0) as n_decisions
from records
full outer join decisions using (record_key)
where coalesce(decisions.n_decisions, 0) <> 1 or records.record_key is null
