"""Near-duplicate clusters (MinHash + LSH, verified).

The same conversation logged twice by two integrations differs only slightly (a reworded
greeting, new ids, shifted times): exact dedup misses it. Each conversation's normalised
text becomes a set of word shingles; datasketch's MinHash LSH proposes candidate pairs;
a candidate counts only within the same group (task type) and when its estimated Jaccard
similarity reaches the threshold (LSH alone also returns pairs below it). Pairs join into
clusters (union-find); each cluster keeps its most preferred record. Deterministic: one
fixed set of MinHash permutations, computed once and shared (also what makes it fast).

The dbt model `int_near_duplicates` calls `near_duplicate_clusters`; `flywheel bench
dedup` (pipeline/benchmarks/dedup.py) runs it next to datasketch's MinHashLSH used as
documented, on a corpus with planted near duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Document:
    key: str
    group: str  # only documents of the same group can be near duplicates (task type)
    text: str


def shingles(text: str, width: int) -> set[str]:
    """Word `width`-grams of `text` (the whole text when it is shorter)."""
    words = text.split()
    if len(words) <= width:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + width]) for i in range(len(words) - width + 1)}


def near_duplicate_clusters(documents: Sequence[Document], threshold: float, num_perm: int,
                            width: int) -> list[dict[str, Any]]:
    """One row per document: its cluster (the key of the cluster's representative), the
    cluster's size, whether it is the representative, and its estimated similarity to it.
    `documents` come in order of preference: the earliest of a cluster represents it."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    first = MinHash(num_perm=num_perm, seed=1)
    permutations, scheme = first.permutations, first.scheme  # drawn once, shared
    sketches = []
    for i, document in enumerate(documents):
        sketch = MinHash(num_perm=num_perm, seed=1, permutations=permutations, scheme=scheme)
        sketch.update_batch([s.encode("utf-8") for s in sorted(shingles(document.text, width))])
        sketches.append(sketch)
        lsh.insert(str(i), sketch)

    parent = list(range(len(documents)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, sketch in enumerate(sketches):
        for candidate in lsh.query(sketch):
            j = int(candidate)
            if j <= i or documents[i].group != documents[j].group or sketch.jaccard(sketches[j]) < threshold:
                continue
            a, b = find(i), find(j)
            if a != b:  # the more preferred (earlier) record stays the root
                parent[max(a, b)] = min(a, b)

    roots = [find(i) for i in range(len(documents))]
    sizes: dict[int, int] = {}
    for root in roots:
        sizes[root] = sizes.get(root, 0) + 1
    return [
        {
            "record_key": document.key,
            "near_dup_cluster_key": documents[root].key,
            "near_dup_cluster_size": sizes[root],
            "is_near_representative": root == i,
            "similarity_to_representative": 1.0 if root == i else round(float(sketches[i].jaccard(sketches[root])), 4),
        }
        for i, (document, root) in enumerate(zip(documents, roots))
    ]
