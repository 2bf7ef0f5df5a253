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
baseline, and the two find the same pairs at about the same speed.

Curation runs it in two halves, so that no dbt model needs an adapter that runs Python:
`near_duplicate_graph` (the `near_duplicate_candidates` asset, before dbt) sketches every
record's conversation and keeps the verified pairs with their similarities; the SQL model
`int_near_duplicates` joins the pairs among the exact-dedup representatives into clusters
and picks each cluster's most preferred record, as `near_duplicate_clusters` does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
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


# --- the half that runs before dbt ---------------------------------------------------------


def conversation_text(steps: Iterable[tuple[int, str | None, str | None, str | None]],
                      calls: Mapping[int, Sequence[tuple[int, str | None, str | None]]]) -> str:
    """What near-duplicate detection compares of one record, from its redacted rows: every
    step but the system prompt, in order, as its text (a tool step's error standing in for
    its content) and its tool calls as `name(arguments)`, lower-cased. `steps`: (step_index,
    role, content, error); `calls`: step_index -> (call_index, name, arguments JSON text).
    Only the words count (shingles split on whitespace), so whitespace is not normalised."""
    parts = []
    for step_index, role, content, error in sorted(steps, key=lambda s: s[0]):
        role = role.strip(" ").lower() if role is not None else None
        if role is None or role == "system":
            continue
        content = content or None
        error = (error.strip(" ") or None) if error is not None else None
        text = (error if error is not None else content) if role == "tool" else content
        rendered = [f"{name.strip(' ')}({arguments})" for _, name, arguments in sorted(calls.get(step_index, ()))
                    if name is not None and arguments is not None]
        parts.append((text or "").lower() + " " + ";".join(rendered).lower())
    return " ".join(parts)


def document_key(document: Document) -> str:
    """Documents with the same group and the same words are one node of the graph: their
    sketches are equal, so they always pair, at similarity 1."""
    return hashlib.md5(f"{document.group}\x1f{' '.join(document.text.split())}".encode()).hexdigest()


@dataclass(frozen=True)
class NearDuplicateGraph:
    documents: dict[str, str]  # document key (record key) -> node (document_key)
    # (node, other node, verified pair?, estimated Jaccard rounded to 4 places), node < other,
    # for every two nodes of one connected component: clusters are components of the
    # verified pairs among the nodes that are still candidates, and each member's similarity
    # to its representative is looked up here.
    pairs: list[tuple[str, str, bool, float]]


def near_duplicate_graph(documents: Sequence[Document], threshold: float, num_perm: int,
                         width: int) -> NearDuplicateGraph:
    """The order-free half of `near_duplicate_clusters`, over every document: LSH candidates,
    verified as there (same group, estimated Jaccard at least `threshold`). A pair is a
    property of its two sketches alone, so the pairs among any subset of the documents (the
    exact-dedup representatives) are those of this graph between its members."""
    keys = [document_key(d) for d in documents]
    nodes: dict[str, Document] = {}
    for key, document in zip(keys, documents):
        nodes.setdefault(key, document)
    node_keys = sorted(nodes)
    node_documents = [nodes[k] for k in node_keys]
    sketches = _sketches(node_documents, num_perm, width)
    verified = _verified_pairs(node_documents, sketches, threshold, num_perm)
    parent = list(range(len(node_keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in verified:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    components: dict[int, list[int]] = {}
    for i in range(len(node_keys)):
        components.setdefault(find(i), []).append(i)
    edges = set(verified)
    pairs = [
        (node_keys[i], node_keys[j], (i, j) in edges, round(float(sketches[i].jaccard(sketches[j])), 4))
        for members in components.values() if len(members) > 1
        for i, j in combinations(members, 2)
    ]
    return NearDuplicateGraph({d.key: k for d, k in zip(documents, keys)}, pairs)
