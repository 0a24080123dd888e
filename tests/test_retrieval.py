"""Hybrid retrieval: patient-style queries find the right article; off-topic ones are not grounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.index import IndexStore
from bot.retrieval import Retriever, edit_distance, tokenize
from tests.conftest import make_settings

# (patient query, the article that must come first)
QUERIES = [
    ("what is the psoas", "psoas-muscle.md"),
    ("psaos muscle", "psoas-muscle.md"),
    ("how do you pronounce psoas", "psoas-muscle.md"),
    ("so-az muscle what is it", "psoas-muscle.md"),
    ("is the hip flexor the same as the psoas", "psoas-muscle.md"),
    ("how long is the psoas", "psoas-muscle.md"),
    ("how big is that muscle", "psoas-muscle.md"),
    ("where does the psoas start", "psoas-muscle.md"),
    ("which vertebra does the psoas attach to", "psoas-muscle.md"),
    ("what is the iliopsoas", "psoas-muscle.md"),
    ("what's the iliacus", "psoas-muscle.md"),
    ("does the psoas connect to the thigh bone", "psoas-muscle.md"),
    ("is there one psoas or two", "psoas-muscle.md"),
    ("what does the psoas do", "psoas-muscle.md"),
    ("psoas and the fight or flight response", "psoas-muscle.md"),
    ("why does my back and hip hurt", "back-and-hip-pain.md"),
    ("what happens when the psoas gets short", "back-and-hip-pain.md"),
    ("what is pelvic instability", "back-and-hip-pain.md"),
    ("can a tight psoas cause headaches or dizziness", "back-and-hip-pain.md"),
    ("my hip started hurting after a hike", "back-and-hip-pain.md"),
    ("leg length difference and knee problems", "back-and-hip-pain.md"),
    ("can the psoas cause jaw pain tmj", "back-and-hip-pain.md"),
    ("symptoms of pelvic tilt", "back-and-hip-pain.md"),
    ("what is myofascial release", "myofascial-release.md"),
    ("myofacial releese therapy", "myofascial-release.md"),
    ("what is the john barnes approach", "myofascial-release.md"),
    ("how does the therapy work, is it gentle pressure", "myofascial-release.md"),
    ("does myofascial release hurt? is it rough like deep tissue", "myofascial-release.md"),
    ("can releasing the psoas help with trauma", "myofascial-release.md"),
    # Both articles speak of the pelvis's position; either one answers it.
    ("will my pelvis be more symmetrical after treatment", ("myofascial-release.md", "back-and-hip-pain.md")),
    ("how do I book an appointment", "booking.md"),
    ("what is your phone number to schedule", "booking.md"),
    ("where is the clinic, asheville?", "booking.md"),
]

OFF_TOPIC = [
    "what is the capital of france",
    "best pizza in town",
    "should i buy tesla stock",
    "write me a poem about the ocean",
    "how do i fix my car's brakes",
    "what's the weather tomorrow",
    "who won the super bowl",
    "recipe for banana bread",
]


@pytest.fixture(scope="module")
def retriever(built_index: Path) -> Retriever:
    store = IndexStore(make_settings(built_index))
    return Retriever(store.open_reader(store.current() or ""), make_settings(built_index).grounded_threshold)


@pytest.mark.parametrize(("query", "source"), QUERIES)
def test_patient_query_finds_its_article(retriever: Retriever, embedder, query: str, source) -> None:  # type: ignore[no-untyped-def]
    found = retriever.search(query, embedder.embed([query])[0], k=5)
    expected = (source,) if isinstance(source, str) else source
    assert found.passages[0].source in expected, [(p.source, p.section, p.score) for p in found.passages]
    assert found.grounded, (query, found.confidence)


def test_length_question_ranks_the_length_passage_first(retriever: Retriever, embedder) -> None:  # type: ignore[no-untyped-def]
    found = retriever.search("how long is the psoas", embedder.embed(["how long is the psoas"])[0])
    assert "16 inches" in found.passages[0].text


@pytest.mark.parametrize("query", OFF_TOPIC)
def test_off_topic_is_not_grounded(retriever: Retriever, embedder, query: str) -> None:  # type: ignore[no-untyped-def]
    found = retriever.search(query, embedder.embed([query])[0])
    assert not found.grounded, (query, found.confidence, found.passages[0].section)


@pytest.mark.parametrize("typo", ["psaos", "psoaz", "soas"])
def test_typos_are_corrected_against_the_vocabulary(retriever: Retriever, typo: str) -> None:
    assert retriever.lexical.search(f"{typo} muscle", 3), typo
    assert retriever.lexical.search(f"{typo} muscle", 3)[0][0] in {p.id for p in retriever.reader.passages
                                                                     if p.source == "psoas-muscle.md"}


@pytest.mark.parametrize(("word", "fixed"), [("psaos", "psoa"), ("myofacial", "myofasci"), ("releese", "releas"),
                                            ("iliopsaos", "iliopsoa")])
def test_one_slip_is_corrected(retriever: Retriever, word: str, fixed: str) -> None:
    assert retriever.lexical.correct(tokenize(word)) == [fixed]
    assert retriever.lexical.terms(word) == [fixed]


@pytest.mark.parametrize("word", ["tight", "longer", "toilet", "should", "night", "owner", "fever"])
def test_real_words_are_not_corrected_into_other_words(retriever: Retriever, word: str) -> None:
    # "a tight psoas" is not "a thigh psoas": two edits or a new first letter make a different word, not a typo.
    assert retriever.lexical.correct(tokenize(word)) == [], word
    assert retriever.lexical.terms(word) == [], word  # nor as a word, before stemming


@pytest.mark.parametrize("query", ["tell me about the psoas", "i just want to know, besides stretching, what helps"])
def test_chat_words_are_not_search_terms(query: str) -> None:
    # "about" would match "about 16 inches", "just" "something just doesn't feel right".
    assert not {"about", "just", "besides"} & set(tokenize(query))


def test_edit_distance_counts_a_swap_as_one_edit() -> None:
    assert [edit_distance(a, b) for a, b in [("psao", "psoa"), ("tight", "thigh"), ("long", "longer"), ("", "ab"),
                                             ("same", "same")]] == [1, 2, 2, 2, 0]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_modes_return_ranked_passages(retriever: Retriever, embedder, mode: str) -> None:  # type: ignore[no-untyped-def]
    q = "where does the psoas attach"
    found = retriever.search(q, embedder.embed([q])[0], k=3, mode=mode)
    assert 1 <= len(found.passages) <= 3
    scores = [p.score for p in found.passages]
    assert scores == sorted(scores, reverse=True)


def test_in_memory_exact_search_matches_chroma(built_index: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = IndexStore(make_settings(built_index))
    held = store.open_reader(store.current() or "")
    assert held._matrix is not None  # embedded and small: exact search in memory
    chroma = store.open_reader(store.current() or "")
    chroma._matrix = None  # force the Chroma query path
    for q in ["how long is the psoas", "what is myofascial release", "book an appointment"]:
        v = embedder.embed([q])[0]
        a, b = held.dense(v, 5), chroma.dense(v, 5)
        assert [i for i, _ in a] == [i for i, _ in b]
        assert all(abs(x - y) < 1e-4 for (_, x), (_, y) in zip(a, b, strict=True))


def _synthetic_lexical(n_words: int, extra: str = ""):  # type: ignore[no-untyped-def]
    import random
    import string

    from bot.retrieval import LexicalIndex
    from bot.types import Passage

    rng = random.Random(15)
    vocab = sorted({"".join(rng.choices(string.ascii_lowercase, k=rng.randint(5, 11))) for _ in range(n_words)})
    per = 200
    passages = [Passage(id=f"p{n}", text=" ".join(vocab[s:s + per]) + (f" {extra}" if n == 0 else ""), title="t",
                        section="s", source="x.md", url="") for n, s in enumerate(range(0, len(vocab), per))]
    return LexicalIndex(passages), vocab


def test_a_typo_is_corrected_as_a_word_before_stemming() -> None:
    lexical, _ = _synthetic_lexical(400, extra="muscle tightness and release")
    # "tightnes" stems to "tightn", which no passage holds; as a word it is one slip from "tightness".
    assert lexical.terms("tightnes") == ["tight"]
    assert lexical.terms("musle tightnes") == ["muscl", "tight"]
    assert lexical.search("tightnes", 3)[0][0] == "p0"


def test_spelling_correction_is_fast_at_20k_words_and_keeps_no_patient_words() -> None:
    import random
    import string
    import time

    lexical, vocab = _synthetic_lexical(20_000)
    assert len(lexical.vocab) > 15_000
    rng = random.Random(7)
    queries = ["".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(30)]
    queries += [w[:2] + w[3:] for w in rng.sample(vocab, 30)]  # one letter dropped: real typos
    started = time.perf_counter()
    for q in queries:
        lexical.terms(q)
    per_word_ms = (time.perf_counter() - started) * 1000 / len(queries)
    print(f"\nspelling correction at {len(lexical.vocab)} stems: {per_word_ms:.2f} ms per unknown word")
    assert per_word_ms < 5, per_word_ms  # difflib over every stem: 60-67 ms
    # Nothing keyed by what patients typed stays behind (the old cache grew by every unknown word).
    held: set[str] = set()
    for obj in (lexical, lexical._words, lexical._stems):
        for value in vars(obj).values():
            if isinstance(value, dict | set):
                held |= {k for k in value if isinstance(k, str)}
    random_words = set(queries[:30]) - set(vocab)
    assert not random_words & held and not hasattr(lexical, "_fix_cache")
