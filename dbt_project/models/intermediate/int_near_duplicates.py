"""Near-duplicate clusters among the exact-dedup representatives: MinHash LSH over word
shingles of each conversation's `dedup_text`, verified by estimated Jaccard similarity,
within the same task type. The method is `pipeline.core.curation.near_duplicates` (unit-tested, and
benchmarked by `flywheel bench dedup`); this model only feeds it, in order of preference
(lowest preference_rank first, the order exact dedup uses), so each cluster keeps its most
preferred record.
"""

from __future__ import annotations


def model(dbt, session):
    dbt.config(materialized="table", packages=["datasketch"])
    import pandas as pd

    from pipeline.core.curation.near_duplicates import Document, near_duplicate_clusters

    exact = dbt.ref("int_exact_duplicates").df()
    text = dbt.ref("int_trajectory_structure").df()[["record_key", "dedup_text"]]
    rows = (
        exact[exact["is_exact_representative"]]
        .merge(text, on="record_key")
        .sort_values(["preference_rank", "record_key"])
    )
    documents = [
        Document(key, task or "", body or "")
        for key, task, body in zip(rows["record_key"], rows["task_type"].fillna(""), rows["dedup_text"].fillna(""))
    ]
    clusters = near_duplicate_clusters(
        documents,
        threshold=float(dbt.config.get("near_dup_threshold")),
        num_perm=int(dbt.config.get("near_dup_num_perm")),
        width=int(dbt.config.get("near_dup_shingle_words")),
    )
    # explicit dtypes, so an empty corpus still gives a well-typed (empty) table
    columns = {
        "record_key": "object", "near_dup_cluster_key": "object", "near_dup_cluster_size": "int64",
        "is_near_representative": "bool", "similarity_to_representative": "float64",
    }
    return pd.DataFrame({name: pd.Series([row[name] for row in clusters], dtype=dtype)
                         for name, dtype in columns.items()})
