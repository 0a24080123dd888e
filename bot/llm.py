"""Optional LLM answers through LangChain, kept only where the verifier finds each sentence in the passages."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from langchain_core.prompts import ChatPromptTemplate
from pydantic import SecretStr

from bot.config import LLM_PROVIDERS
from bot.sentences import ends_sentence, split_sentences
from bot.types import Passage
from bot.verifier import Verdict, Verifier

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage, BaseMessageChunk

    from bot.config import Settings

log = logging.getLogger(__name__)

PROMPT_FILE = Path(__file__).parent / "prompts" / "answer.md"
MAX_TOKENS = 300
# Our own cap on what is read (~300 tokens of English): llama-cpp-python's server ignores the
# `max_completion_tokens` that ChatOpenAI sends, and a base model never stops by itself.
MAX_ANSWER_CHARS = 1400
# A model that starts writing our delimiters or a new chat turn has finished its answer (or is echoing an
# injected one): nothing after that point is read. Every match lies within one line and is at most ECHO_SPAN
# characters long, so each streamed chunk is scanned from just before it, not from the start (`\s*` after `^`
# used to run across every following blank line: 154 ms on 2,000 newlines, and again for every chunk).
_ECHO = re.compile(r"</?[ \t]{0,16}(?:question|sources?)\b|<(?:start|end)_of_turn>|</s>|<\|im_(?:start|end)\|>|"
                   r"^[ \t]{0,16}(?:question|patient|user|human|sources?)[ \t]{0,16}:|"
                   r"^[ \t]{0,16}#{1,4}[ \t]{0,16}(?:instruction|input|response)\b", re.I | re.M)
ECHO_SPAN = 64
# Small models often wrap their answer in the prompt's own tag: that opening tag is markup, not an echo.
_WRAPPER = re.compile(r"^\s*<\s*(?:source|answer)\b[^>\n]*>\s*", re.I)
_PENDING_TAG = re.compile(r"^\s*<[^>\n]{0,80}$")
_MARKER = re.compile(r"\[\s*(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\s*\]")
_MARKDOWN = re.compile(r"\*\*|__|`|^#+[ \t]*|^[ \t]*(?:answer|a)[ \t]*:[ \t]*", re.I | re.M)
FallbackReason = Literal["timeout", "error", "too_little_supported"]


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model named by LLM_PROVIDER (openai: any OpenAI-compatible server; ollama)."""
    match settings.llm_provider:
        case "openai":
            from langchain_openai import ChatOpenAI

            # max_completion_tokens is the constructor's name for the max_tokens field.
            return ChatOpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key or SecretStr("not-needed"),
                              model=settings.llm_model, timeout=settings.llm_timeout, max_retries=0,
                              temperature=0.2, max_completion_tokens=MAX_TOKENS)
        case "ollama":
            from langchain_ollama import ChatOllama

            return ChatOllama(base_url=settings.llm_base_url, model=settings.llm_model, temperature=0.2,
                              num_predict=MAX_TOKENS, client_kwargs={"timeout": settings.llm_timeout})
        case other:
            raise ValueError(f"Unknown LLM_PROVIDER {other!r}: use {' or '.join(LLM_PROVIDERS)}")


@lru_cache(maxsize=1)
def answer_prompt() -> ChatPromptTemplate:
    """The system + human template from bot/prompts/answer.md."""
    text = PROMPT_FILE.read_text(encoding="utf-8")
    parts = dict(re.findall(r"^## (system|human)\n(.*?)(?=^## (?:system|human)\n|\Z)", text, re.M | re.S))
    return ChatPromptTemplate.from_messages([("system", parts["system"].strip()), ("human", parts["human"].strip())])


def render_sources(passages: list[Passage]) -> str:
    """Passages as numbered, delimited blocks; their own text cannot open or close a block."""
    return "\n\n".join(
        f'<source id="{n}" title="{html.escape(p.title)}">\n{_escape(p.text.strip())}\n</source>'
        for n, p in enumerate(passages, 1))


def render_messages(question: str, passages: list[Passage]) -> list[BaseMessage]:
    """The chat messages for one question: the question only ever sits inside <question> delimiters."""
    return answer_prompt().format_messages(sources=render_sources(passages), question=_escape(question.strip()))


def _escape(text: str) -> str:
    # Only the angle brackets: enough that no text can close its delimiter, and readable for the model.
    return text.replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class LLMResult:
    """A verified LLM answer: the kept sentences in order, what was dropped, and why to fall back if so.

    `sentences` have the model's [n] markers stripped: patients see citations as the reply's citation list,
    which `passages` fills from the verifier's best passage per kept sentence (the passage that was proved
    to hold it), not from the model's numbering, which small models get wrong. `verdicts` hold every
    sentence, kept or not, with the reason: patient-facing text, so never log them.
    """

    sentences: list[str]
    dropped: int
    total: int
    fallback_reason: FallbackReason | None
    passages: list[Passage] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    miscited: int = 0  # kept sentences whose [n] named another passage than the one that holds them
    elapsed_ms: float = 0.0

    @property
    def text(self) -> str:
        """The kept sentences as one paragraph."""
        return " ".join(self.sentences)


@dataclass
class _Checked:
    verdict: Verdict
    markers: set[int]


class LLMStream:
    """Verified sentences as they are accepted (`async for`); `.result` once the iteration has ended."""

    def __init__(self, composer: LLMComposer, question: str, passages: list[Passage]) -> None:
        self._composer, self._question, self._passages = composer, question, passages
        self.result: LLMResult | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._composer._run(self._question, self._passages, self)


class LLMComposer:
    """Asks the model for an answer from the passages and keeps only the sentences the verifier accepts."""

    def __init__(self, model: BaseChatModel, verifier: Verifier, timeout: float) -> None:
        self.model = model
        self.verifier = verifier
        self.timeout = timeout

    async def compose(self, question: str, passages: list[Passage]) -> LLMResult | None:
        """The whole verified answer; None when there are no passages to answer from (no model call)."""
        stream = self.stream(question, passages)
        async for _ in stream:
            pass
        return stream.result

    def stream(self, question: str, passages: list[Passage]) -> LLMStream:
        """Iterate for verified sentences as they are accepted; read `.result` afterwards."""
        return LLMStream(self, question, passages)

    async def _run(self, question: str, passages: list[Passage], out: LLMStream) -> AsyncIterator[str]:
        if not passages:
            return
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        # The model runs in its own task so the deadline covers it alone, never the consumer's awaits.
        queue: asyncio.Queue[_Checked | Exception | None] = asyncio.Queue()
        producer = asyncio.create_task(self._produce(question, passages, queue))
        verdicts: list[tuple[Verdict, set[int]]] = []
        reason: FallbackReason | None = None
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(deadline - loop.time(), 0.0))
                except TimeoutError:
                    reason = "timeout"
                    break
                if item is None:
                    break
                if isinstance(item, Exception):
                    reason = "error"
                    # The type only: a provider's message may quote the request, which holds health text.
                    log.warning("LLM answer failed: %s", type(item).__name__)
                    break
                verdicts.append((item.verdict, item.markers))
                if item.verdict.supported:
                    yield item.verdict.sentence
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            out.result = _result(verdicts, passages, reason, (time.perf_counter() - started) * 1000)

    async def _produce(self, question: str, passages: list[Passage],
                       queue: asyncio.Queue[_Checked | Exception | None]) -> None:
        try:
            raw, done, scanned = "", 0, 0
            messages = render_messages(question, passages)
            stream = cast("AsyncGenerator[BaseMessageChunk, None]", self.model.astream(messages))
            # aclosing: leaving early closes the HTTP stream, and llama.cpp's server stops generating.
            async with aclosing(stream) as chunks:
                async for chunk in chunks:
                    raw += chunk.text
                    if _PENDING_TAG.match(raw):
                        continue  # a tag is opening the answer: wrapper or echo, known once it is complete
                    start, cut = _answer_span(raw, scanned)
                    scanned = max(0, len(raw) - ECHO_SPAN)  # no echo starts before this: only new text is read
                    pieces = _pieces(raw[start:cut])
                    # The last piece may still be growing: it is verified once it visibly ends.
                    ended = cut < len(raw) or ends_sentence(raw[start:cut])
                    complete = len(pieces) if ended else max(len(pieces) - 1, done)
                    for text, markers in pieces[done:complete]:
                        await self._check(text, markers, passages, queue)
                    done = complete
                    if cut < len(raw):
                        break
            start, cut = _answer_span(raw)
            for text, markers in _pieces(raw[start:cut])[done:]:
                await self._check(text, markers, passages, queue)
            await queue.put(None)
        except Exception as exc:  # any provider failure means: use the extractive answer
            await queue.put(exc)

    async def _check(self, text: str, markers: set[int], passages: list[Passage],
                     queue: asyncio.Queue[_Checked | Exception | None]) -> None:
        # The embedder is CPU-bound: off the event loop, like every other embedding call.
        [verdict] = await asyncio.to_thread(self.verifier.verify, [text], passages)
        await queue.put(_Checked(verdict, markers))


def _answer_span(raw: str, scanned: int = 0) -> tuple[int, int]:
    """Where the answer starts (after a wrapping tag) and stops (an echoed delimiter or turn, or the cap).

    `scanned`: the caller already knows no echo starts before this offset (the previous chunk's scan).
    """
    wrapper = _WRAPPER.match(raw)
    start = wrapper.end() if wrapper else 0
    m = _ECHO.search(raw, max(start, scanned))
    return start, min(m.start() if m else len(raw), start + MAX_ANSWER_CHARS)


def _pieces(text: str) -> list[tuple[str, set[int]]]:
    """The model's text as clean sentences with the [n] markers each carried (a marker opening a sentence
    belongs to the one before: "...pain. [1] The psoas...")."""
    out: list[tuple[str, set[int]]] = []
    for sentence in split_sentences(_MARKDOWN.sub("", text)):
        lead = re.match(r"^(?:\s*\[[\d,; ]+\])+", sentence)
        if lead and out:
            out[-1][1].update(_numbers(lead.group(0)))
            sentence = sentence[lead.end():]
        markers = _numbers(sentence)
        clean = re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub("", sentence))
        clean = re.sub(r"\s{2,}", " ", clean).strip()
        if re.search(r"[A-Za-z]{2}", clean):  # skip stray markers, numbering and punctuation
            out.append((clean, markers))
    return out


def _numbers(text: str) -> set[int]:
    return {int(n) for group in _MARKER.findall(text) for n in re.findall(r"\d+", group)}


def _result(verdicts: list[tuple[Verdict, set[int]]], passages: list[Passage], reason: FallbackReason | None,
            elapsed_ms: float) -> LLMResult:
    """Tally the verdicts and decide whether the caller must fall back to the extractive answer."""
    kept = [v for v, _ in verdicts if v.supported]
    content = [v for v in kept if v.best_passage_id is not None]
    dropped = len(verdicts) - len(kept)
    # A model that invents more than it grounds has not picked its content from the sources either.
    if reason is None and (not content or dropped > len(content)):
        reason = "too_little_supported"
    by_id = {p.id: p for p in passages}
    used: list[Passage] = []
    for v in content:
        if v.best_passage_id in by_id and by_id[v.best_passage_id] not in used:
            used.append(by_id[v.best_passage_id])
    index = {p.id: n for n, p in enumerate(passages, 1)}
    miscited = sum(1 for v, m in verdicts if v.supported and v.best_passage_id and m
                   and index.get(v.best_passage_id) not in m)
    return LLMResult(sentences=[v.sentence for v in kept], dropped=dropped, total=len(verdicts),
                     fallback_reason=reason, passages=used, verdicts=[v for v, _ in verdicts],
                     miscited=miscited, elapsed_ms=round(elapsed_ms, 1))


__all__ = ["LLMComposer", "LLMResult", "LLMStream", "make_chat_model", "render_messages"]
