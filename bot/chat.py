"""The pipeline every channel calls: triage -> intents -> retrieval -> compose or hand off."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from bot import intents, metrics, safety
from bot.answer import Composed, article_phrase, compose, holds_slot
from bot.config import ClinicProfile, Settings
from bot.embeddings import BatchingEmbedder
from bot.index import IndexUnavailable
from bot.retrieval import LiveRetriever, Retrieval, tokenize
from bot.sentences import split_sentences
from bot.types import Action, Citation, IncomingMessage, Reply, ReplyTrace, Session

if TYPE_CHECKING:
    from bot.llm import LLMComposer

log = logging.getLogger(__name__)

OnSentence = Callable[[str], Awaitable[None]]
# The model reads the best three passages, the same ones the extractive composer picks from.
LLM_PASSAGES = 3

SLOT_PHRASES = {
    "price": "prices or fees", "hours": "opening hours", "insurance": "insurance details",
    "parking": "parking details", "staff": "details about our staff", "duration": "how long sessions take",
    "location": "our address", "availability": "open appointment times", "discount": "discounts or offers",
    "cancellation": "a cancellation policy", "payment": "payment options",
}
# A short message that leans on the previous one ("how long is it?", "and what about the hips?").
_FOLLOW_UP = re.compile(r"\b(it|its|it's|that|this|they|them|their|those|these|there|he|she|one)\b|"
                        r"^(and|also|so|but|what about|how about|why|more|tell me more|explain)\b", re.I)


# Markup is never a question: a pasted <script> block or tag would otherwise steer retrieval ("script",
# "alert") and be stored. Only real tag shapes (a letter, / or ! after "<"), so "<3" and "a < b" stay.
_MARKUP_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)", re.I | re.S)
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")


def normalise(text: str) -> str:
    """NFKC, no markup or control characters, single spaces: what every rule and the retriever sees."""
    text = unicodedata.normalize("NFKC", text)
    text = _TAG.sub(" ", _MARKUP_BLOCK.sub(" ", text))
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
    return re.sub(r"\s+", " ", text).strip()


class Chatbot:
    """The core: decides every reply; channels only translate."""

    def __init__(self, settings: Settings, clinic: ClinicProfile, embedder: BatchingEmbedder,
                 retriever: LiveRetriever, store: Any | None, llm: LLMComposer | None = None) -> None:
        self.settings = settings
        self.clinic = clinic
        self.embedder = embedder
        self.retriever = retriever
        self.store = store
        self.llm = llm

    # -- the entry point channels use ------------------------------------------------------------
    async def respond(self, message: IncomingMessage, on_sentence: OnSentence | None = None) -> Reply:
        """Open the session, reply, remember the exchange (redacted); never fails because the database did."""
        reply, remember = await self.respond_then_remember(message, on_sentence)
        await remember()
        return reply

    async def respond_then_remember(self, message: IncomingMessage, on_sentence: OnSentence | None = None,
                                    ) -> tuple[Reply, Callable[[], Awaitable[None]]]:
        """The reply now, and the write that stores it (redacted) for the caller to run once it has answered.

        The web channel sends the reply first and runs the write as the request's background task, which
        still finishes before the request ends (a graceful restart waits for it): 1.3 ms off every reply.
        """
        text = normalise(message.text)
        vec_task = self.embedder.submit(text) if text else None
        session = await self._open_session(message)
        reply = await self.reply(message, session, first_vector=vec_task, on_sentence=on_sentence)
        reply.session_id = session.id
        reply.reply_id = secrets.token_urlsafe(16) if self.store is not None else None

        async def remember() -> None:
            if not await self._remember(session, message, reply):
                reply.reply_id = None

        return reply, remember

    async def stream(self, message: IncomingMessage) -> AsyncIterator[tuple[str, Any]]:
        """The reply as ("sentence", text) events, then ("reply", Reply).

        In LLM mode the sentences are the verified ones, sent as the verifier accepts them; the closing
        Reply is the one /chat gives (the extractive answer if the model's fell short), and channels show it
        in place of what was streamed. Otherwise the finished reply is split into sentences.
        """
        if not self._llm_on():
            reply = await self.respond(message)
            for sentence in split_sentences(reply.reply):
                yield "sentence", sentence
            yield "reply", reply
            return
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def emit(sentence: str) -> None:
            await queue.put(sentence)

        task = asyncio.create_task(self.respond(message, on_sentence=emit))
        try:
            streamed = False
            while not (task.done() and queue.empty()):
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    streamed = True
                    yield "sentence", getter.result()
                else:
                    getter.cancel()
            reply = task.result()
            if not streamed:  # not an LLM answer (triage, handoff...): stream it the plain way
                for sentence in split_sentences(reply.reply):
                    yield "sentence", sentence
            yield "reply", reply
        finally:
            if not task.done():  # the client went away: the reply is still finished and remembered
                await asyncio.shield(task)

    # -- the decision ----------------------------------------------------------------------------
    async def reply(self, message: IncomingMessage, session: Session,
                    first_vector: asyncio.Future[np.ndarray] | None = None,
                    on_sentence: OnSentence | None = None) -> Reply:
        """Decide the reply to one message in a session (pure of storage)."""
        text = normalise(message.text)
        trace = ReplyTrace()
        try:
            reply = await self._decide(text, session, trace, first_vector, on_sentence)
        finally:
            if first_vector is not None and not first_vector.done():
                first_vector.cancel()
        reply._trace = trace
        metrics.REPLIES.labels(reply.kind, message.channel).inc()
        return reply

    async def _decide(self, text: str, session: Session, trace: ReplyTrace,
                      first_vector: asyncio.Future[np.ndarray] | None, on_sentence: OnSentence | None) -> Reply:
        triaged = safety.triage(text)
        if triaged is not None:
            trace.reason, trace.emergency_category = "emergency", triaged.category
            metrics.EMERGENCIES.labels(triaged.level).inc()
            body, actions = safety.emergency_reply(triaged, self.clinic)
            return Reply(kind="emergency", reply=body, actions=actions)
        if safety.asks_when_to_seek_care(text):
            # "Which symptoms mean the ER?" is not for an article's symptom list to answer: 911 and a clinician.
            trace.reason = "seek_care"
            return self._handoff(safety.seek_care_reply(self.clinic))
        intent = intents.detect(text)
        if intent == "human":
            trace.reason = "human"
            return self._handoff(f"Of course. I'm an automated assistant, so the best way to reach a person "
                                 f"is to call the clinic at {self.clinic.phone}.")
        if safety.asks_medication(text):
            trace.reason = "medication"
            return self._handoff(f"{safety.MEDICATION_NOTE} If you have questions about treatment at the "
                                 f"clinic, please call us at {self.clinic.phone}.", record=True)
        slot = safety.asks_clinic_fact(text)
        if intent == "booking" and slot in (None, "availability", "location"):
            trace.reason = "booking"
            return self._booking()
        if intent in ("greeting", "thanks", "goodbye", "identity", "capabilities", "ack"):
            trace.reason = f"smalltalk:{intent}"
            return self._smalltalk(intent)
        if safety.is_task_request(text) and slot is None:
            trace.reason = "off_topic"
            return self._handoff(f"I'm the clinic's assistant, so I can only help with {self.clinic.scope}. "
                                 f"Is there something about that I can help you with?", call=False)
        question = intents.strip_greeting(text)
        try:
            # The vector started with the session read is for the whole text; a stripped greeting needs its own.
            found, qvec, used = await self._retrieve(question, session,
                                                     first_vector if question == text else None)
        except IndexUnavailable:
            return self._unavailable(trace)
        trace.top_score, trace.grounded, trace.retrieval_ms = found.confidence, found.grounded, found.ms
        metrics.RETRIEVAL.observe(found.ms / 1000)
        if slot is not None and not holds_slot(slot, found.passages[:3]):
            trace.reason = f"clinic_fact:{slot}"
            return self._handoff(f"Our articles don't include {SLOT_PHRASES.get(slot, 'that')}, so I can't "
                                 f"tell you that here. {self._call_line()}", record=True, question=question)
        if not found.grounded:
            trace.reason = "not_grounded"
            note = f"{safety.DIAGNOSIS_NOTE} " if safety.asks_diagnosis(text) else ""
            return self._handoff(f"{note}I'm sorry, I couldn't find that in our clinic's articles, so I can't "
                                 f"answer it here. {self._call_line()}", record=True, question=question)
        notes = []
        if safety.asks_diagnosis(text):
            notes.append(safety.DIAGNOSIS_NOTE)
        if safety.asks_outcome_promise(text):
            notes.append(safety.OUTCOME_NOTE)
        try:
            composed = await self._compose(used, qvec, found, trace, question, notes, on_sentence)
        except IndexUnavailable:
            return self._unavailable(trace)
        if not composed.text:
            trace.reason = "not_grounded"
            return self._handoff("I'm sorry, I couldn't find that in our clinic's articles, so I can't answer "
                                 f"it here. {self._call_line()}", record=True, question=question)
        trace.reason, trace.sentences = "answer", composed.sentences
        # The note comes first: a patient asking "do I have X?" reads the honest limit before the article.
        body = " ".join([*notes, composed.text,
                         f"If you'd like to book a session, you can call us at {self.clinic.phone}."])
        return Reply(kind="answer", reply=body, citations=composed.citations, actions=self._contact_actions(),
                     suggestions=self._suggestions(question), disclaimer=safety.disclaimer(self.clinic))

    async def _retrieve(self, question: str, session: Session, first_vector: asyncio.Future[np.ndarray] | None,
                        ) -> tuple[Retrieval, np.ndarray, str]:
        retriever = self.retriever.current()  # a stat() of the pointer embedded; a look every 2 s on a server
        if retriever is None:
            raise IndexUnavailable("no index has been built yet")
        pending = first_vector if first_vector is not None else self.embedder.submit(question)
        lexical = retriever.lexical_candidates(question)  # runs while the model embeds the question
        vec = await pending
        found = retriever.search(question, vec, lexical=lexical)
        previous = last_question(session)
        if previous and (_is_follow_up(question, retriever) or not found.grounded):
            combined = f"{previous} {question}"
            cvec = await self.embedder.embed_one(combined)
            again = retriever.search(combined, cvec)
            if again.grounded and (not found.grounded or again.confidence >= found.confidence - 0.02
                                   or _is_follow_up(question, retriever)):
                return again, cvec, combined
        return found, vec, question

    async def _compose(self, question: str, qvec: np.ndarray, found: Retrieval, trace: ReplyTrace,
                       original: str, notes: list[str], on_sentence: OnSentence | None) -> Composed:
        retriever = self.retriever.current()
        assert retriever is not None
        ids = [p.id for p in found.passages[:3]]
        reader = retriever.reader
        # Sentence vectors are cached per generation; only a first sight of a passage goes to Chroma.
        vectors = (reader.sentence_vectors(ids) if all(i in reader._sentence_cache for i in ids)
                   else await asyncio.to_thread(reader.sentence_vectors, ids))
        focus = await self.embedder.embed_one(original) if original != question else None
        extractive = compose(question, qvec, found, vectors, retriever.lexical.rare_weight, focus=focus)
        if not self._llm_on():
            return extractive
        return await self._compose_llm(question, found, extractive, trace, notes, on_sentence)

    def _llm_on(self) -> bool:
        return self.llm is not None and self.settings.answer_mode == "llm"

    async def _compose_llm(self, question: str, found: Retrieval, extractive: Composed, trace: ReplyTrace,
                           notes: list[str], on_sentence: OnSentence | None) -> Composed:
        """The model's answer, verified sentence by sentence; the extractive one when too little survives."""
        assert self.llm is not None
        passages = found.passages[:LLM_PASSAGES]
        stream = self.llm.stream(question, passages)
        lead_sent = False
        async for sentence in stream:
            if on_sentence is not None:
                if not lead_sent:  # the notes open the reply, as they do in the finished one
                    for note in notes:
                        await on_sentence(note)
                    lead_sent = True
                await on_sentence(sentence)
        result = stream.result
        if result is None:
            return extractive
        trace.llm_dropped = result.dropped
        if result.dropped:
            metrics.LLM_DROPPED.inc(result.dropped)
        if result.fallback_reason is not None or not result.sentences:
            reason = result.fallback_reason or "too_little_supported"
            trace.llm_fallback = reason
            metrics.LLM_FALLBACKS.labels(reason).inc()
            return extractive
        citations = [Citation(title=p.title, source=p.source, url=p.href, snippet=p.text[:200])
                     for p in result.passages]
        lead = article_phrase(result.passages[0].title) if result.passages else "our articles"
        text = f"From {lead}: {result.text}"
        return Composed(text=text, sentences=result.sentences, citations=citations, passages=result.passages)

    # -- fixed framing ---------------------------------------------------------------------------
    def _unavailable(self, trace: ReplyTrace) -> Reply:
        metrics.INDEX_FAILURES.inc()
        trace.reason = "index_unavailable"
        return self._handoff(f"Sorry, our assistant can't look that up right now. Please call the clinic "
                             f"at {self.clinic.phone} and we'll be glad to help.")

    def _call_line(self) -> str:
        line = f"Please call the clinic at {self.clinic.phone}"
        if self.clinic.booking_url:
            line += f" or book online at {self.clinic.booking_url}"
        return line + " and we'll be glad to help."

    def _contact_actions(self) -> list[Action]:
        actions = [Action(type="call", label="Call the clinic", value=f"tel:{self.clinic.phone_e164}")]
        if self.clinic.booking_url:
            actions.append(Action(type="book", label="Book online", value=self.clinic.booking_url))
        return actions

    def _handoff(self, text: str, *, record: bool = False, question: str | None = None,
                 call: bool = True) -> Reply:
        reply = Reply(kind="handoff", reply=text, actions=self._contact_actions() if call else [],
                      suggestions=self.clinic.suggested_questions[:3])
        # "" means: record the patient's own message; None: nothing to record.
        reply._record_unanswered = (question or "") if record else None
        return reply

    def _booking(self) -> Reply:
        text = f"You can book an appointment by calling the clinic at {self.clinic.phone}"
        text += f", or online at {self.clinic.booking_url}." if self.clinic.booking_url else "."
        text += " We look forward to seeing you."
        return Reply(kind="booking", reply=text, actions=self._contact_actions())

    def _smalltalk(self, intent: str) -> Reply:
        c = self.clinic
        text = {
            "greeting": f"{c.greeting} What would you like to know?",
            "thanks": "You're welcome! Is there anything else I can help you with?",
            "goodbye": "Take care, and thanks for stopping by.",
            "identity": (f"I'm the clinic's automated assistant, not a person. I answer questions from our "
                         f"articles and can help you book. To talk to a person, call {c.phone}."),
            "capabilities": f"I can help with {c.scope}.",
            "ack": "Glad to help. Is there anything else you'd like to know?",
        }[intent]
        return Reply(kind="smalltalk", reply=text,
                     suggestions=c.suggested_questions[:4] if intent != "goodbye" else [])

    def _suggestions(self, question: str) -> list[str]:
        asked = set(tokenize(question))
        rest = [q for q in self.clinic.suggested_questions if set(tokenize(q)) != asked]
        return rest[:3]

    # -- storage, never in the way of a reply ----------------------------------------------------
    async def _open_session(self, message: IncomingMessage) -> Session:
        if message.session_id is None:
            # A first message needs nothing from the database: the session row is written with the exchange.
            return Session(id=secrets.token_urlsafe(24))
        if self.store is not None:
            try:
                return await asyncio.to_thread(self.store.open_session, message.session_id, message.channel)
            except Exception as exc:
                metrics.STORE_FAILURES.labels("open_session").inc()
                log.warning("store unavailable: %s", type(exc).__name__)
        return Session(id=secrets.token_urlsafe(24))

    async def _remember(self, session: Session, message: IncomingMessage, reply: Reply) -> bool:
        if self.store is None or reply.reply_id is None:
            return False
        user_text = safety.redact(normalise(message.text))
        unanswered = getattr(reply, "_record_unanswered", None)
        try:
            await asyncio.to_thread(self._write, session.id, message.channel, user_text, reply,
                                    None if unanswered is None else safety.redact(unanswered or
                                                                               normalise(message.text)))
        except Exception as exc:
            metrics.STORE_FAILURES.labels("record").inc()
            log.warning("store unavailable: %s", type(exc).__name__)
            return False
        if unanswered is not None:
            metrics.UNANSWERED.inc()
        return True

    def _write(self, session_id: str, channel: str, user_text: str, reply: Reply, unanswered: str | None) -> None:
        assert self.store is not None
        self.store.record_exchange(session_id, channel, user_text, reply.kind, safety.redact(reply.reply),
                                   reply_id=reply.reply_id, unanswered_question=unanswered)


def last_question(session: Session) -> str | None:
    """The patient's most recent message that got an answer or a handoff: the topic of a follow-up."""
    turns = session.turns
    for n in range(len(turns) - 1, 0, -1):
        if turns[n].role == "bot" and turns[n].kind in ("answer", "handoff") and turns[n - 1].role == "user":
            return turns[n - 1].text
    return None


def _is_follow_up(question: str, retriever: Any) -> bool:
    words = question.split()
    if len(words) > 10:
        return False
    if _FOLLOW_UP.search(question):
        return True
    # No word of the question is in the articles' vocabulary: it cannot stand on its own.
    known = [t for t in tokenize(question) if t in retriever.lexical._vocab_set]
    return not known
