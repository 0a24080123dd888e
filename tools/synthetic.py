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
