"""Synthetic patient questions and article prose for the benchmarks (no cache can serve a repeat)."""

from __future__ import annotations

import random
from pathlib import Path

STEMS = ["what is", "tell me about", "how does", "explain", "can you describe", "what do your articles say about",
         "i read about", "question about", "help me understand", "what should i know about"]
TOPICS = ["the psoas", "psoas length", "where the psoas attaches", "the iliopsoas", "the iliacus muscle",
          "pelvic instability", "a shortened psoas", "back pain and the psoas", "hip pain after hiking",
          "myofascial release", "the john barnes approach", "gentle sustained pressure", "the fear reflex",
          "leg length discrepancies", "tmj and jaw pain", "headaches and pelvic instability", "hip flexors",
          "pelvic tilts and torques", "releasing the psoas", "groin pain and the psoas"]


# Plausible article vocabulary for synthetic corpora.
WORDS = ("muscle fascia pelvis spine hip back gentle pressure release posture breathing tension walking standing "
         "stretch therapist session body balance movement stiffness comfort alignment tissue lumbar thigh knee "
         "ankle shoulder jaw headache rest recovery hydration sleep stress").split()


def distinct_questions(n: int, seed: int = 7) -> list[str]:
    """n different patient-style questions (a cache cannot help)."""
    rng = random.Random(seed)
    out: set[str] = set()
    tails = ["", "?", " please", " for my back", " for my hip", " in simple words", " briefly"]
    while len(out) < n:
        # A number makes every question distinct, so no cache can serve a repeat.
        out.add(f"{rng.choice(STEMS)} {rng.choice(TOPICS)}{rng.choice(tails)} ({len(out)})")
    return sorted(out, key=lambda _: rng.random())


def synthetic_corpus(folder: Path, passages: int, seed: int = 1) -> None:
    """Markdown files holding `passages` distinct passages of plausible clinic-article prose."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = 50
    for f in range(0, passages, per_file):
        sections = []
        for n in range(f, min(f + per_file, passages)):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                         for _ in range(3)]
            sections.append(f"## Note {n}\n\n" + " ".join(sentences) + f" Reference {n}.")
        (folder / f"synthetic-{f // per_file:05d}.md").write_text(
            f"---\ntitle: Synthetic {f // per_file}\n---\n\n" + "\n\n".join(sections) + "\n")


# -- Realistic but cheap corpora for the scaling benchmark (tools/bench_scale.py) -------------------------------
# Article prose has a Zipf-shaped vocabulary: a few hundred common words in nearly every passage and a long tail of
# rare ones (names, places, conditions). Passages here are three sentences drawn from a fixed pool of such
# sentences, so the sentence vectors a corpus needs are the pool's (embedded once) whatever its size, while every
# passage (three pool sentences in its own order, its own section) is still a distinct text with its own vector.
COMMON = (tuple(WORDS) + tuple(
    "pain therapy treatment patient release fascial myofascial muscles joints pelvic hips legs arms neck "
    "shoulders chest abdomen core strength flexibility range motion injury surgery scar healing chronic acute "
    "inflammation nerve sciatica sacrum tailbone ribs diaphragm posture sitting driving lifting running "
    "hiking cycling yoga pilates exercise stretches routine daily weeks months years minutes hours gentle "
    "slowly deeply sustained hold feel notice soften warm cold ice heat water massage hands therapist's "
    "clinic appointment visit first second treatment plan goals progress symptoms tightness soreness "
    "numbness tingling weakness fatigue energy relief ease freedom restriction restrictions layers "
    "connective structures system whole body mind awareness emotion emotions memory trauma stress calm "
    "nervous safety comfortable clothing table floor pillow support position positions".split()))
_SYLLABLES = "ba ce di fo gu ka le mi no pu ra se ti vo zu bre cla dro fli gra pli sto tra vel mor lin dan".split()


def _zipf_words(words: tuple[str, ...], rng: random.Random, k: int) -> list[str]:
    weights = [1 / (r + 1) for r in range(len(words))]
    return rng.choices(words, weights=weights, k=k)


def sentence_pool(size: int = 6000, seed: int = 11) -> list[str]:
    """`size` distinct article-like sentences: Zipf-drawn common words plus, in half of them, one rare term."""
    rng = random.Random(seed)
    common = tuple(dict.fromkeys(COMMON))
    rare = sorted({"".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(4000)})
    out: dict[str, None] = {}
    while len(out) < size:
        words = _zipf_words(common, rng, rng.randint(8, 16))
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words)), rng.choice(rare))
        out[" ".join(words).capitalize() + "."] = None
    return list(out)


def pooled_passage(i: int, pool: list[str], seed: int = 1) -> str:
    """Passage `i`'s text: three pool sentences; depends only on (i, seed), so a smaller corpus is a prefix of a
    larger one and shares its vectors."""
    rng = random.Random(seed * 1_000_003 + i)
    return " ".join(rng.sample(pool, 3))


def pooled_corpus(folder: Path, passages: int, pool: list[str], seed: int = 1, per_file: int = 50) -> None:
    """Markdown files holding `passages` distinct passages, each of three sentences from `pool`."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(0, passages, per_file):
        sections = [f"## Note {n}\n\n{pooled_passage(n, pool, seed)}" for n in range(f, min(f + per_file, passages))]
        (folder / f"synthetic-{f // per_file:05d}.md").write_text(
            f"---\ntitle: Synthetic {f // per_file}\n---\n\n" + "\n\n".join(sections) + "\n")
