"""Every regular expression in the `bot` package runs in (near) linear time on crafted input.

The patterns are found by walking the package (so modules added later, e.g. bot/understanding/*, are timed
too), and each one is run over adversarial messages as long as MAX_MESSAGE_CHARS allows: repetitions of the
pattern's own alphabet, pairs of its characters ("1." x 1000 took the old URL redaction 100-170 ms), and
near-misses made of its own words. A backtracking pattern shows up here as tens or hundreds of milliseconds.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

import bot
from bot.config import Settings

# Per pattern per message on this 2-core machine; a linear pattern takes well under 1 ms at 2,000 chars.
BUDGET_MS = float(os.environ.get("REGEX_BUDGET_MS", "20"))
FUNCTION_BUDGET_MS = float(os.environ.get("REGEX_FUNCTION_BUDGET_MS", "40"))
N = Settings.model_fields["max_message_chars"].default
# Modules that cannot be imported outside their tool (Alembic's env.py needs a migration context).
SKIP = ("bot.__main__", "bot.migrations")


def _is_pattern(obj: Any) -> bool:
    # The standard library's, and those of the `regex` and google-re2 modules should a module use them.
    return isinstance(obj, re.Pattern) or (type(obj).__module__.split(".")[0] in ("regex", "_regex", "re2")
                                           and hasattr(obj, "finditer") and hasattr(obj, "pattern"))


def _walk(obj: Any, name: str, seen: set[int], depth: int = 0) -> Iterator[tuple[str, Any]]:
    if id(obj) in seen or depth > 4:
        return
    seen.add(id(obj))
    if _is_pattern(obj):
        yield name, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{name}[{k!r}]", seen, depth + 1)
    elif isinstance(obj, list | tuple | set | frozenset):
        for n, v in enumerate(obj):
            yield from _walk(v, f"{name}[{n}]", seen, depth + 1)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _walk(getattr(obj, f.name, None), f"{name}.{f.name}", seen, depth + 1)


def bot_patterns() -> list[tuple[str, Any]]:
    """(where, compiled pattern) for every pattern object held by a module, class or table in `bot`."""
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for info in pkgutil.walk_packages(bot.__path__, "bot."):
        if info.name.startswith(SKIP):
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__:
                for cattr, cvalue in vars(value).items():
                    found.extend(_walk(cvalue, f"{info.name}.{attr}.{cattr}", seen))
            elif not isinstance(value, type):
                found.extend(_walk(value, f"{info.name}.{attr}", seen))
    return found


_GENERIC = ["1.", "a.", "a-", "1-", "a@", "a.a@", "1 ", "a ", ". ", "- ", "/ ", "1/", "(1", "+1 ", "www.", "http://a",
            "<a", "< ", "\n", " \n", "#", "[1", "**", "_a", "'a", "no ", "not ", "a, ", "aa ", "1a"]


def adversarial_inputs(source: str) -> list[str]:
    """Messages of N characters built from the pattern's own alphabet and words, plus generic troublemakers."""
    chars = sorted({c for c in source if c.isprintable() and not c.isalpha()} | {"a", "1", " ", ".", "\n"})
    letters = sorted({c for c in source.lower() if c.isalpha()})[:8]
    alphabet = chars + letters
    words = list(dict.fromkeys(re.findall(r"[a-z]{2,}", source.lower())))
    units = list(alphabet) + _GENERIC
    units += [a + b for a in ("a", "1", " ") for b in chars if a != b]
    units += [w + " " for w in words[:12]] + [w + "." for w in words[:4]]
    if words:
        units.append(" ".join(words) + " ")  # a near-miss: every word the pattern knows, in its own order
        units.append(" ".join(reversed(words)) + " ")
    inputs = []
    for unit in dict.fromkeys(units):
        if unit:
            inputs.append((unit * (N // len(unit) + 1))[:N])
    return inputs


def _time(pattern: Any, text: str) -> float:
    started = time.perf_counter()
    for _ in pattern.finditer(text):
        pass
    return (time.perf_counter() - started) * 1000


def test_patterns_are_found() -> None:
    names = [n for n, _ in bot_patterns()]
    # The redaction table and the LLM echo guard are among them (a walker that found nothing would pass anything).
    assert any(n.startswith("bot.safety._REDACTIONS") for n in names)
    assert "bot.llm._ECHO" in names
    assert len(names) > 100


def test_every_pattern_is_fast_on_adversarial_input() -> None:
    worst: list[tuple[float, str, str]] = []
    for name, pattern in bot_patterns():
        slowest, sample = 0.0, ""
        for text in adversarial_inputs(str(pattern.pattern)):
            ms = _time(pattern, text)
            if ms > BUDGET_MS:  # a busy neighbour on the shared cores: confirm before blaming the pattern
                ms = min(ms, _time(pattern, text), _time(pattern, text))
            if ms > slowest:
                slowest, sample = ms, text[:12]
        worst.append((slowest, name, sample))
    worst.sort(reverse=True)
    print(f"\nslowest of {len(worst)} patterns over {N}-character adversarial messages:")
    for ms, name, sample in worst[:10]:
        print(f"  {ms:8.2f} ms  {name}  on {sample!r}...")
    over = [(round(ms, 1), name, sample) for ms, name, sample in worst if ms > BUDGET_MS]
    assert not over, f"patterns over {BUDGET_MS} ms per {N}-character message: {over}"


def _function_inputs() -> list[str]:
    units = ["1.", "a.", "a.a@", "www.", "1 ", "fell ", "no pain ", "cant pee ", "numb groin ", "chest pain ",
             "i fell and cant walk. ", "back pain and fever ", "no fever, no chest pain, no numbness ", "a, ", "\n",
             "pain at night that is not there ", "had cancer years ago and ", "http://a.b/", "(828) 458-7218 "]
    return [(u * (N // len(u) + 1))[:N] for u in units]


@pytest.mark.parametrize("func", ["bot.safety.triage", "bot.safety.redact"])
def test_safety_functions_are_fast_on_adversarial_input(func: str) -> None:
    module, name = func.rsplit(".", 1)
    fn = getattr(importlib.import_module(module), name)
    timings = []
    for text in _function_inputs():
        started = time.perf_counter()
        fn(text)
        ms = (time.perf_counter() - started) * 1000
        if ms > FUNCTION_BUDGET_MS:
            started = time.perf_counter()
            fn(text)
            ms = min(ms, (time.perf_counter() - started) * 1000)
        timings.append((ms, text[:16]))
    timings.sort(reverse=True)
    print(f"\n{func}: slowest {[(round(ms, 2), t) for ms, t in timings[:3]]}")
    assert timings[0][0] <= FUNCTION_BUDGET_MS, f"{func} took {timings[0][0]:.1f} ms on {timings[0][1]!r}..."


def test_llm_stream_scan_is_linear() -> None:
    """The echo guard runs on every streamed chunk: over a whole answer it must cost about one scan, not n."""
    from bot.llm import ECHO_SPAN, _answer_span

    for unit in ("\n", " \n", "question ", "a. ", "#"):
        raw, scanned, started = "", 0, time.perf_counter()
        for _ in range(N // len(unit)):
            raw += unit
            _answer_span(raw, scanned)
            scanned = max(0, len(raw) - ECHO_SPAN)
        ms = (time.perf_counter() - started) * 1000
        assert ms <= 5 * BUDGET_MS, f"streaming {N} chars of {unit!r} one chunk at a time took {ms:.0f} ms"


@pytest.mark.parametrize("text", [
    "The psoas is deep.\n\nQuestion: what else?", "Fine. <question>again</question>", "ok\n  ### Response\nmore",
    "a" * 300 + "\nuser: hi", "x <end_of_turn> y", "no echo here at all. " * 20, "<source id=1>wrapped</source> tail"])
def test_llm_incremental_echo_scan_finds_what_a_full_scan_finds(text: str) -> None:
    from bot.llm import ECHO_SPAN, _answer_span

    for size in (1, 3, 7):
        scanned, cut = 0, None
        for end in range(size, len(text) + size, size):
            raw = text[:end]
            start, cut = _answer_span(raw, scanned)
            if cut < len(raw):
                break
            scanned = max(0, len(raw) - ECHO_SPAN)
        full = _answer_span(text[: len(raw)])
        assert (start, cut) == full, (size, text)
