"""`flywheel bench dedup`: our near-duplicate pairs vs datasketch used as its documentation
recommends for batch work, on a simulated corpus with planted near duplicates, at N and 4N
documents.

Both arms use the same permutations, the same LSH threshold and the same verification of
candidates (same task type, estimated Jaccard at least the threshold); they differ only in
how they drive datasketch. Truth is every pair whose exact word-shingle Jaccard similarity
reaches the threshold (planted or not: simulated customers repeat themselves); planted
recall is reported beside it. A third row scores our clusters (what the pipeline drops:
every pair inside a cluster, chains included). The algorithm itself is
`pipeline.core.curation.near_duplicates`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import combinations
from random import Random
from typing import Any

from pipeline.core.curation.near_duplicates import (
    MINHASH_SEED,
    Document,
    near_duplicate_clusters,
    near_duplicate_pairs,
    shingles,
)
from pipeline.core.record import Trajectory

_SPACES = re.compile(r"\s+")


def conversation_text(trajectory: Trajectory) -> str:
    """The conversation without its (shared) system prompt, lower-cased with whitespace
    collapsed, tool calls as `name(arguments)`: the shape of what curation compares
    (pipeline.core.curation.near_duplicates.conversation_text, on the warehouse's rows)."""
    parts = []
    for step in trajectory.steps:
        if step.role == "system":
            continue
        text = (step.error or step.content) if step.role == "tool" else step.content
        calls = ";".join(f"{c.name}({c.arguments})" for c in step.tool_calls or [])
        parts.append(_SPACES.sub(" ", (text or "").strip()).lower() + " " + calls.lower())
    return " ".join(parts)


@dataclass(frozen=True)
class Corpus:
    documents: list[Document]
    planted: set[frozenset[str]]  # pairs of keys planted as near duplicates of each other


def planted_corpus(n: int, seed: int, rate: float = 0.1) -> Corpus:
    """`n` simulated conversations, and for a `rate` share of them a near duplicate (the
    simulator's own: reworded first message, new ids, shifted times), shuffled in."""
    from pipeline.simulator.agent import AgentProfile
    from pipeline.simulator.mess import near_duplicate
    from pipeline.simulator.tasks import TaskMix
    from pipeline.simulator.traffic import simulate_day

    records = simulate_day(seed, 1, date(2026, 11, 16), n, TaskMix(), AgentProfile())
    rng = Random(f"near-dup-corpus:{seed}")
    documents, planted = [], set()
    for record in records:
        documents.append(_document(record.trajectory))
        if rng.random() < rate:
            copy = near_duplicate(record, rng).trajectory
            documents.append(_document(copy))
            planted.add(frozenset((record.trajectory.trajectory_id, copy.trajectory_id)))
    rng.shuffle(documents)
    return Corpus(documents, planted)


def _document(t: Trajectory) -> Document:
    return Document(t.trajectory_id, t.task_type or "", conversation_text(t))


def pairs_from_clusters(rows: list[dict[str, Any]]) -> set[frozenset[str]]:
    members: dict[str, list[str]] = {}
    for row in rows:
        members.setdefault(row["near_dup_cluster_key"], []).append(row["record_key"])
    return {frozenset(pair) for keys in members.values() for pair in combinations(sorted(keys), 2)}


def datasketch_documented_batch(documents: Sequence[Document], threshold: float, num_perm: int,
                                width: int) -> set[frozenset[str]]:
    """The baseline: datasketch as its documentation recommends for batch work. `MinHash.bulk`
    (one MinHash initialised, then copied per document: shared permutations, `update_batch`)
    with our seed, so the same permutations as ours; a `MinHashLSH` with the same threshold
    and num_perm, filled in an insertion session; every sketch queried; each candidate
    verified as ours is (same group, estimated Jaccard at least the threshold), as the
    documentation of `query` advises."""
    from datasketch import MinHash, MinHashLSH

    sketches = MinHash.bulk([[s.encode("utf-8") for s in shingles(d.text, width)] for d in documents],
                            num_perm=num_perm, seed=MINHASH_SEED)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for i, sketch in enumerate(sketches):
            session.insert(i, sketch)
    return {frozenset((documents[i].key, documents[j].key)) for i, sketch in enumerate(sketches)
            for j in lsh.query(sketch)
            if j > i and documents[i].group == documents[j].group and sketch.jaccard(sketches[j]) >= threshold}


def similar_pairs(documents: Sequence[Document], threshold: float, width: int) -> set[frozenset[str]]:
    """Every pair whose exact shingle Jaccard similarity reaches `threshold`: what both arms
    estimate. All pairs, pruned by size (J >= t needs |small| >= t * |large|)."""
    sets = sorted(((shingles(d.text, width), d.key) for d in documents), key=lambda item: len(item[0]))
    found = set()
    for i, (a, key_a) in enumerate(sets):
        for b, key_b in sets[i + 1:]:
            if len(a) < threshold * len(b):
                break
            if len(a & b) >= threshold * len(a | b):
                found.add(frozenset((key_a, key_b)))
    return found


def time_shares(documents: Sequence[Document], width: int, seconds: float, repeats: int) -> dict[str, float]:
    """Where a run of ours taking `seconds` goes: building the shingle sets, hashing every
    shingle (datasketch's default SHA-1, what `update_batch` calls per value), and the rest
    (permutations, LSH, verification), as shares of `seconds`; each part the fastest of
    `repeats`, as `seconds` is."""
    from datasketch.hashfunc import sha1_hash32

    shingling, hashing = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        sets = [shingles(d.text, width) for d in documents]
        shingling.append(time.perf_counter() - started)
        started = time.perf_counter()
        for shingle_set in sets:
            for shingle in shingle_set:
                sha1_hash32(shingle.encode("utf-8"))
        hashing.append(time.perf_counter() - started)
    return {"shingling": round(min(shingling) / seconds, 2), "hashing": round(min(hashing) / seconds, 2),
            "rest": round(1 - (min(shingling) + min(hashing)) / seconds, 2)}


def score_pairs(found: set[frozenset[str]], truth: set[frozenset[str]], planted: set[frozenset[str]],
           seconds: float, n_docs: int) -> dict[str, Any]:
    return {
        "pairs_found": len(found),
        "precision": round(len(found & truth) / len(found), 4) if found else 1.0,
        "recall": round(len(found & truth) / len(truth), 4) if truth else 1.0,
        "planted_recall": round(len(found & planted) / len(planted), 4) if planted else 1.0,
        "seconds": round(seconds, 3),
        "docs_per_second": round(n_docs / seconds, 1) if seconds else None,
    }


ARMS = ("ours", "datasketch", "ours_clustered")


def run_dedup_bench(n: int, seed: int, threshold: float, num_perm: int, width: int, repeats: int = 3,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Ours vs the documented batch baseline on the same planted corpus, at n and at 4n
    documents, each arm timed as the fastest of `repeats` runs, the arms taking turns. Truth: the pairs whose exact
    Jaccard similarity reaches the threshold (planted or not: simulated customers do repeat
    themselves); planted recall is reported beside it."""
    arms: dict[str, Callable[[Sequence[Document]], set[frozenset[str]]]] = {
        "ours": lambda docs: {frozenset(p) for p in near_duplicate_pairs(docs, threshold, num_perm, width)},
        "datasketch": lambda docs: datasketch_documented_batch(docs, threshold, num_perm, width),
        "ours_clustered": lambda docs: pairs_from_clusters(near_duplicate_clusters(docs, threshold, num_perm, width)),
    }
    warm_up = planted_corpus(20, seed + 1).documents  # imports and first-call costs, untimed
    for arm in arms.values():
        arm(warm_up)
    result: dict[str, Any] = {"threshold": threshold, "num_perm": num_perm, "shingle_words": width}
    for size in (n, 4 * n):
        corpus = planted_corpus(size, seed)
        truth = similar_pairs(corpus.documents, threshold, width)
        row = result[f"n={size}"] = {"documents": len(corpus.documents), "planted_pairs": len(corpus.planted),
                                     "similar_pairs": len(truth)}
        found: dict[str, set[frozenset[str]]] = {}
        seconds: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(repeats):  # the arms take turns, each keeps its fastest: this machine's load varies
            for name, arm in arms.items():
                started = time.perf_counter()
                found[name] = arm(corpus.documents)
                seconds[name].append(time.perf_counter() - started)
        for name in arms:
            row[name] = score_pairs(found[name], truth, corpus.planted, min(seconds[name]), len(corpus.documents))
            log(f"  {name:14} {len(corpus.documents):6} documents: {row[name]}")
        # same permutations, threshold and verification: any pair one arm has alone is a bug
        row["pairs_only_ours"] = len(found["ours"] - found["datasketch"])
        row["pairs_only_datasketch"] = len(found["datasketch"] - found["ours"])
    small, large = result[f"n={n}"], result[f"n={4 * n}"]
    for name in ("ours", "datasketch"):
        # seconds per document at 4n over seconds per document at n: 1.0 is linear growth
        result[f"{name}_growth_4n_vs_n"] = round(
            (large[name]["seconds"] / large["documents"]) / (small[name]["seconds"] / small["documents"]), 2)
    result["ours_speed_vs_datasketch_at_4n"] = round(large["datasketch"]["seconds"] / large["ours"]["seconds"], 2)
    result["ours_time_shares_at_4n"] = time_shares(corpus.documents, width, large["ours"]["seconds"], repeats)
    return result


def format_dedup_bench(result: dict[str, Any]) -> str:
    lines = [f"near duplicates: threshold {result['threshold']}, {result['num_perm']} permutations, "
             f"{result['shingle_words']}-word shingles; truth = pairs with exact Jaccard >= threshold",
             f"{'documents':>9} {'planted':>7} {'similar':>7}  {'arm':14} {'pairs':>6} {'precision':>9} "
             f"{'recall':>6} {'planted recall':>14} {'docs/s':>8}"]
    for key, row in result.items():
        if key.startswith("n="):
            for arm in ARMS:
                m = row[arm]
                lines.append(f"{row['documents']:>9} {row['planted_pairs']:>7} {row['similar_pairs']:>7}  {arm:14} "
                             f"{m['pairs_found']:>6} {m['precision']:>9.3f} {m['recall']:>6.3f} "
                             f"{m['planted_recall']:>14.3f} {m['docs_per_second']:>8.0f}")
            lines.append(f"{'':>27}pairs found by one arm only: ours {row['pairs_only_ours']}, "
                         f"datasketch {row['pairs_only_datasketch']}")
    lines.append(f"seconds per document at 4N / at N (1.0 = linear): ours {result['ours_growth_4n_vs_n']}, "
                 f"datasketch {result['datasketch_growth_4n_vs_n']}; at 4N ours runs at "
                 f"{result['ours_speed_vs_datasketch_at_4n']}x datasketch's speed")
    shares = result["ours_time_shares_at_4n"]
    lines.append(f"ours' time at 4N: {shares['shingling']:.0%} building shingles, {shares['hashing']:.0%} SHA-1 "
                 f"of each shingle, {shares['rest']:.0%} the rest (permutations, LSH, verification)")
    return "\n".join(lines)
