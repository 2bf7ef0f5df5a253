"""Near-duplicate clusters (MinHash + LSH, verified).

The same conversation logged twice by two integrations differs only slightly (a reworded
greeting, new ids, shifted times): exact dedup misses it. Each conversation's normalised
text becomes a set of word shingles; datasketch's MinHash LSH proposes candidate pairs;
a candidate counts only within the same group (task type) and when its estimated Jaccard
similarity reaches the threshold (LSH alone also returns pairs below it). Pairs join into
clusters (union-find); each cluster keeps its most preferred record. Deterministic: one
fixed set of MinHash permutations, drawn once and shared by every sketch.

This is datasketch used the way its documentation recommends for batch work, nothing
more: `flywheel bench dedup` (pipeline/benchmarks/dedup.py) runs it next to exactly that
baseline, and the two find the same pairs at about the same speed. The dbt model
`int_near_duplicates` calls `near_duplicate_clusters`.
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


MINHASH_SEED = 1  # the one set of permutations every sketch uses (datasketch draws them from it)


def _sketches(documents: Sequence[Document], num_perm: int, width: int) -> list[Any]:
    """One MinHash per document, all sharing the permutations drawn once from MINHASH_SEED."""
    from datasketch import MinHash

    first = MinHash(num_perm=num_perm, seed=MINHASH_SEED)
    permutations, scheme = first.permutations, first.scheme
    sketches = []
    for document in documents:
        sketch = MinHash(num_perm=num_perm, seed=MINHASH_SEED, permutations=permutations, scheme=scheme)
        sketch.update_batch([s.encode("utf-8") for s in shingles(document.text, width)])
        sketches.append(sketch)
    return sketches


def _verified_pairs(documents: Sequence[Document], sketches: Sequence[Any], threshold: float,
                    num_perm: int) -> list[tuple[int, int]]:
    """(i, j), i < j, for every LSH candidate pair of the same group whose estimated Jaccard
    similarity reaches `threshold` (LSH alone also proposes pairs below it)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    return [(i, j) for i, sketch in enumerate(sketches) for j in sorted(lsh.query(sketch))
            if j > i and documents[i].group == documents[j].group and sketch.jaccard(sketches[j]) >= threshold]


def near_duplicate_pairs(documents: Sequence[Document], threshold: float, num_perm: int,
                         width: int) -> list[tuple[str, str]]:
    """The verified pairs (keys, the earlier document first) that `near_duplicate_clusters`
    joins into clusters: what `flywheel bench dedup` scores against exact Jaccard."""
    pairs = _verified_pairs(documents, _sketches(documents, num_perm, width), threshold, num_perm)
    return [(documents[i].key, documents[j].key) for i, j in pairs]


def near_duplicate_clusters(documents: Sequence[Document], threshold: float, num_perm: int,
                            width: int) -> list[dict[str, Any]]:
    """One row per document: its cluster (the key of the cluster's representative), the
    cluster's size, whether it is the representative, and its estimated similarity to it.
    `documents` come in order of preference: the earliest of a cluster represents it."""
    sketches = _sketches(documents, num_perm, width)
    parent = list(range(len(documents)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in _verified_pairs(documents, sketches, threshold, num_perm):
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
