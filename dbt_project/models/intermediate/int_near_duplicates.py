"""Near-duplicate clusters among the exact-dedup representatives (MinHash + LSH).

The same conversation logged twice by two integrations differs only slightly (a reworded
greeting, new ids, shifted times): exact dedup misses it. Each conversation's normalised
text (system prompt left out: every trajectory shares it) becomes a set of word shingles;
MinHash LSH finds candidate pairs, whose estimated Jaccard similarity must reach
`near_dup_threshold`, within the same task type. Pairs are joined into clusters
(union-find) and each cluster keeps its most preferred record (lowest preference_rank,
the same order exact dedup uses). Deterministic: fixed MinHash seed, sorted inputs.
"""

from __future__ import annotations


def _shingles(text: str, width: int) -> set[str]:
    words = text.split()
    if len(words) <= width:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + width]) for i in range(len(words) - width + 1)}


def model(dbt, session):
    dbt.config(materialized="table", packages=["datasketch"])
    from datasketch import MinHash, MinHashLSH

    threshold = float(dbt.config.get("near_dup_threshold"))
    num_perm = int(dbt.config.get("near_dup_num_perm"))
    width = int(dbt.config.get("near_dup_shingle_words"))

    exact = dbt.ref("int_exact_duplicates").df()
    text = dbt.ref("int_trajectory_structure").df()[["record_key", "dedup_text"]]
    rows = (
        exact[exact["is_exact_representative"]]
        .merge(text, on="record_key")
        .sort_values("preference_rank")
        .reset_index(drop=True)
    )

    keys = rows["record_key"].tolist()
    task = rows["task_type"].fillna("").tolist()
    rank = rows["preference_rank"].tolist()
    sketches = []
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    first = MinHash(num_perm=num_perm, seed=1)
    permutations, scheme = first.permutations, first.scheme  # drawn once, shared
    for i, body in enumerate(rows["dedup_text"].fillna("").tolist()):
        m = MinHash(num_perm=num_perm, seed=1, permutations=permutations, scheme=scheme)
        m.update_batch([s.encode("utf-8") for s in sorted(_shingles(body, width))])
        sketches.append(m)
        lsh.insert(str(i), m)

    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, m in enumerate(sketches):
        for candidate in lsh.query(m):
            j = int(candidate)
            if j <= i or task[i] != task[j] or m.jaccard(sketches[j]) < threshold:
                continue
            a, b = find(i), find(j)
            if a != b:  # keep the better-ranked record as the root
                parent[max(a, b, key=lambda k: rank[k])] = min(a, b, key=lambda k: rank[k])

    roots = [find(i) for i in range(len(keys))]
    sizes: dict[int, int] = {}
    for r in roots:
        sizes[r] = sizes.get(r, 0) + 1

    import pandas as pd

    # explicit dtypes, so an empty corpus still gives a well-typed (empty) table
    return pd.DataFrame({
        "record_key": pd.Series(keys, dtype="object"),
        "near_dup_cluster_key": pd.Series([keys[r] for r in roots], dtype="object"),
        "near_dup_cluster_size": pd.Series([sizes[r] for r in roots], dtype="int64"),
        "is_near_representative": pd.Series([r == i for i, r in enumerate(roots)], dtype="bool"),
        "similarity_to_representative": pd.Series(
            [1.0 if r == i else round(float(sketches[i].jaccard(sketches[r])), 4) for i, r in enumerate(roots)],
            dtype="float64",
        ),
    })
