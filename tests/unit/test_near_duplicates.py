"""Near-duplicate clustering (the method int_near_duplicates runs, half in Python before dbt,
half in SQL) and its benchmark (corpus, baseline, truth)."""

from random import Random

from pipeline.benchmarks.dedup import (
    datasketch_documented_batch,
    pairs_from_clusters,
    planted_corpus,
    run_dedup_bench,
    score_pairs,
    similar_pairs,
)
from pipeline.core.curation.near_duplicates import (
    Document,
    conversation_text,
    near_duplicate_clusters,
    near_duplicate_graph,
    near_duplicate_pairs,
    shingles,
)

PARAMS = {"threshold": 0.85, "num_perm": 128, "width": 3}
CONVERSATION = " ".join(f"step {i} the customer asks about order o-{i} and the agent looks it up" for i in range(30))


def test_shingles_are_word_ngrams_or_the_whole_short_text():
    assert shingles("a b c d", 3) == {"a b c", "b c d"}
    assert shingles("a b", 3) == {"a b"}
    assert shingles("   ", 3) == set()


def test_a_reworded_copy_joins_the_preferred_record_and_other_groups_stay_apart():
    docs = [
        Document("kept", "refund", CONVERSATION),
        Document("unrelated", "refund", "hello i want to cancel my subscription please " * 5),
        Document("copy", "refund", "hello again. " + CONVERSATION + " thanks!"),
        Document("other-task", "order_status", CONVERSATION),
    ]
    rows = {r["record_key"]: r for r in near_duplicate_clusters(docs, **PARAMS)}
    assert rows["copy"]["near_dup_cluster_key"] == "kept" and not rows["copy"]["is_near_representative"]
    assert rows["kept"]["is_near_representative"] and rows["kept"]["near_dup_cluster_size"] == 2
    assert 0.85 <= rows["copy"]["similarity_to_representative"] < 1.0
    for alone in ("unrelated", "other-task"):
        assert rows[alone]["near_dup_cluster_key"] == alone and rows[alone]["near_dup_cluster_size"] == 1
    assert pairs_from_clusters(list(rows.values())) == {frozenset(("kept", "copy"))}
    assert near_duplicate_pairs(docs, **PARAMS) == [("kept", "copy")]
    # the earliest document represents its cluster, whichever it is
    swapped = {r["record_key"]: r for r in near_duplicate_clusters([docs[2], docs[0]], **PARAMS)}
    assert swapped["kept"]["near_dup_cluster_key"] == "copy"


def test_clusters_are_deterministic_and_empty_input_gives_no_rows():
    corpus = planted_corpus(60, seed=3)
    assert near_duplicate_clusters(corpus.documents, **PARAMS) == near_duplicate_clusters(corpus.documents, **PARAMS)
    assert near_duplicate_clusters([], **PARAMS) == []


def test_planted_corpus_and_exact_truth():
    corpus = planted_corpus(80, seed=5, rate=0.25)
    keys = {d.key for d in corpus.documents}
    assert len(keys) == len(corpus.documents) == 80 + len(corpus.planted) and corpus.planted
    assert all(pair <= keys for pair in corpus.planted)
    assert planted_corpus(80, seed=5, rate=0.25) == corpus
    assert similar_pairs(corpus.documents, PARAMS["threshold"], PARAMS["width"]) & corpus.planted


def test_exact_truth_on_similarities_counted_by_hand():
    words = [f"w{i}" for i in range(22)]  # 22 distinct words: 20 word 3-grams
    docs = [
        Document("base", "t", " ".join(words)),
        Document("last-word", "t", " ".join(words[:-1] + ["x"])),  # 19 shared of 21: 0.905
        Document("last-three", "t", " ".join(words[:-3] + ["x", "y", "z"])),  # 17 of 23: 0.739
        Document("plus-three", "t", " ".join(words + ["p", "q", "r"])),  # 20 of 23: 0.870
        Document("plus-four", "t", " ".join(words + ["p", "q", "r", "s"])),  # 20 of 24: 0.833
    ]
    pairs = similar_pairs(docs, 0.85, 3)
    assert {frozenset(("base", "last-word")), frozenset(("base", "plus-three"))} <= pairs
    assert not pairs & {frozenset(("base", "last-three")), frozenset(("base", "plus-four"))}
    assert frozenset(("plus-three", "plus-four")) in pairs  # 23 of 24: 0.958


def test_the_documented_baseline_verifies_candidates_as_ours_does():
    docs = [
        Document("kept", "refund", CONVERSATION),
        Document("copy", "refund", "hello again. " + CONVERSATION + " thanks!"),
        Document("other-task", "order_status", CONVERSATION),  # identical text, another group
        Document("unrelated", "refund", "hello i want to cancel my subscription please " * 5),
    ]
    assert datasketch_documented_batch(docs, **PARAMS) == {frozenset(("kept", "copy"))}


def test_both_arms_find_the_same_pairs_with_the_same_permutations_threshold_and_verification():
    corpus = planted_corpus(60, seed=11, rate=0.3)
    ours = {frozenset(pair) for pair in near_duplicate_pairs(corpus.documents, **PARAMS)}
    baseline = datasketch_documented_batch(corpus.documents, **PARAMS)
    truth = similar_pairs(corpus.documents, PARAMS["threshold"], PARAMS["width"])
    assert ours == baseline
    assert len(ours & truth) >= 0.8 * len(truth)
    # clusters add the pairs joined through a chain, never drop a verified one
    assert ours <= pairs_from_clusters(near_duplicate_clusters(corpus.documents, **PARAMS))


def test_scores_are_against_exact_truth_and_planted_pairs():
    a, b, c, d, e = (frozenset((f"{x}1", f"{x}2")) for x in "abcde")
    score = score_pairs(found={a, b, c}, truth={a, b, d, e}, planted={a, d}, seconds=0.5, n_docs=100)
    assert (score["pairs_found"], score["precision"], score["recall"], score["planted_recall"]) == (3, 0.6667, 0.5, 0.5)
    assert score["docs_per_second"] == 200.0


def test_the_bench_reports_every_arm_at_n_and_4n():
    result = run_dedup_bench(20, seed=2, repeats=1, log=lambda _: None, **PARAMS)
    assert result["n=20"]["documents"] >= 20 and result["n=80"]["documents"] >= 80
    for size in ("n=20", "n=80"):
        row = result[size]
        assert (row["pairs_only_ours"], row["pairs_only_datasketch"]) == (0, 0)
        # both arms verify candidates against the exact similarity: nothing they report is false
        assert row["ours"]["precision"] == row["datasketch"]["precision"] == 1.0
        assert row["ours"]["recall"] == row["datasketch"]["recall"] >= 0.8
    shares = result["ours_time_shares_at_4n"]
    assert abs(sum(shares.values()) - 1) <= 0.02


def _clusters_from_graph(graph, documents):
    """What int_near_duplicates does with the graph, in Python: components of the verified
    pairs among `documents`' nodes (in preference order), the earliest record representing
    each; similarity from the pairs, 1 within one node."""
    node = {d.key: graph.documents[d.key] for d in documents}
    present = set(node.values())
    similarity = {}
    neighbours = {n: set() for n in present}
    for a, b, verified, value in graph.pairs:
        similarity[a, b] = similarity[b, a] = value
        if verified and a in present and b in present:
            neighbours[a].add(b)
            neighbours[b].add(a)
    component = {}
    for start in sorted(present):
        if start in component:
            continue
        stack = [start]
        while stack:
            n = stack.pop()
            if n not in component:
                component[n] = start
                stack.extend(neighbours[n])
    representative, size = {}, {}
    for d in documents:
        representative.setdefault(component[node[d.key]], d)
        size[component[node[d.key]]] = size.get(component[node[d.key]], 0) + 1
    rows = []
    for d in documents:
        mine = node[d.key]
        rep = representative[component[mine]]
        rows.append({
            "record_key": d.key, "near_dup_cluster_key": rep.key, "near_dup_cluster_size": size[component[mine]],
            "is_near_representative": rep.key == d.key,
            "similarity_to_representative": 1.0 if mine == node[rep.key] else similarity[mine, node[rep.key]],
        })
    return rows


def test_the_graph_made_once_over_every_record_clusters_any_subset_as_near_duplicate_clusters_does():
    """The graph is computed before dbt over every record; dbt clusters only the exact-dedup
    representatives, in preference order. Same clusters as clustering those directly."""
    corpus = planted_corpus(300, seed=5).documents
    # exact copies (another key, the same words) and a task type differing only by case
    corpus += [Document(d.key + "#copy", d.group, d.text.upper().lower() + "  ") for d in corpus[:40]]
    graph = near_duplicate_graph(corpus, **PARAMS)
    assert any(verified for _a, _b, verified, _s in graph.pairs)
    rng = Random(11)
    for _ in range(3):
        subset = [d for d in corpus if rng.random() < 0.8]
        rng.shuffle(subset)  # a preference order
        assert _clusters_from_graph(graph, subset) == near_duplicate_clusters(subset, **PARAMS)


def test_conversation_text_is_the_words_the_sql_compared():
    """int_trajectory_structure's former dedup_text: no system prompt; a tool step's error
    (trimmed, else its content); calls as name(arguments JSON as written) joined by ';'
    (none with a NULL name); lower-cased; only the words count."""
    steps = [(2, "tool", "{}", "  "), (0, " System ", "you help", None), (1, "assistant", "", None),
             (3, "TOOL", "ignored", " 404 Not Found "), (4, "user", "Thanks ", None)]
    calls = {1: [(1, "b", '{"x":2}'), (0, " lookup ", '{"id": "A-1"}'), (2, None, "{}")]}
    assert conversation_text(steps, calls).split() == [
        'lookup({"id":', '"a-1"});b({"x":2})', "{}", "404", "not", "found", "thanks"]
