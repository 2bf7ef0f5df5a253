-- Near-duplicate clusters among the exact-dedup representatives: conversations whose word
-- shingles have an estimated Jaccard similarity of at least `near_dup_threshold` (MinHash +
-- LSH, within one task type), joined into clusters; each cluster keeps its most preferred
-- record (lowest preference_rank, the order exact dedup uses).
--
-- The MinHash work is Python (pipeline.core.curation.near_duplicates), run before dbt by the
-- `near_duplicate_candidates` asset over every record: derived.near_duplicate_documents
-- gives each record its document (records with the same task type and words share one),
-- derived.near_duplicate_pairs the verified LSH pairs between documents and the estimated
-- similarity of any two documents that may share a cluster. Which records are
-- representatives, and which is preferred, is decided here: the clusters are the connected
-- components of the verified pairs among the representatives' documents (a recursive CTE),
-- the same clusters near_duplicate_clusters makes.
with recursive representatives as (
    select e.record_key, e.preference_rank, d.document_key
    from {{ ref('int_exact_duplicates') }} as e
    join {{ source('derived', 'near_duplicate_documents') }} as d using (record_key)
    where e.is_exact_representative
),

documents as (
    select distinct document_key from representatives
),

-- both directions of every pair
pairs as (
    select document_key, other_document_key, is_verified_pair, similarity
    from {{ source('derived', 'near_duplicate_pairs') }}
    union all
    select other_document_key, document_key, is_verified_pair, similarity
    from {{ source('derived', 'near_duplicate_pairs') }}
),

-- verified pairs between two representatives' documents
edges as (
    select p.document_key, p.other_document_key
    from pairs as p
    join documents as a on a.document_key = p.document_key
    join documents as b on b.document_key = p.other_document_key
    where p.is_verified_pair
),

reachable (document_key, reached_key) as (
    select document_key, document_key from documents
    union
    select r.document_key, e.other_document_key
    from reachable as r
    join edges as e on e.document_key = r.reached_key
),

components as (
    select document_key, min(reached_key) as component_key
    from reachable
    group by document_key
),

members as (
    select
        r.record_key,
        r.document_key,
        first_value(r.record_key) over cluster as representative_key,
        first_value(r.document_key) over cluster as representative_document_key,
        count(*) over (partition by c.component_key) as cluster_size
    from representatives as r
    join components as c using (document_key)
    window cluster as (partition by c.component_key order by r.preference_rank)
)

select
    m.record_key,
    m.representative_key as near_dup_cluster_key,
    m.cluster_size as near_dup_cluster_size,
    m.record_key = m.representative_key as is_near_representative,
    -- one document: the same sketch, similarity 1 (the representative's own included)
    case when m.document_key = m.representative_document_key then 1.0 else p.similarity end
        as similarity_to_representative
from members as m
left join pairs as p
    on p.document_key = m.document_key and p.other_document_key = m.representative_document_key
