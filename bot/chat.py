"""The pipeline every channel calls: understand -> emergency? -> guard | intent | question -> answer or hand off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import threading
import unicodedata
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from bot import metrics, safety
from bot.answer import Composed, compose, holds_slot, plan_parts
from bot.config import ClinicProfile, Settings
from bot.embeddings import BatchingEmbedder
from bot.faq import FaqLive, citation, passage, plain_answer
from bot.faq_store import Published
from bot.glossary import Glossary
from bot.index import IndexUnavailable
from bot.memory import SessionMemory
from bot.phrases import Phrases
from bot.retrieval import LiveRetriever, Retrieval, tokenize
from bot.sentences import split_sentences
from bot.types import Action, Citation, IncomingMessage, Passage, Reply, ReplyTrace, Session
from bot.understanding import Understander, Understanding, language
from bot.understanding.engine import pieces_of

if TYPE_CHECKING:
    from bot.llm import LLMComposer

log = logging.getLogger(__name__)

OnSentence = Callable[[str], Awaitable[None]]
# The model reads the best three passages, the same ones the extractive composer picks from.
LLM_PASSAGES = 3
UNSAVED_LIMIT = 1000  # exchanges kept back during a database outage (bounded: memory, and retention)
SMALLTALK = ("greeting", "thanks", "goodbye", "identity", "capabilities", "ack")
# A short message that leans on the previous one ("how long is it?", "and what about the hips?").
_FOLLOW_UP = re.compile(r"\b(it|its|it's|that|this|they|them|their|those|these|there|he|she|one)\b|"
                        r"^(and|also|so|but|what about|how about|why|more|tell me more|explain)\b", re.I)
_MORE = re.compile(r"^\W*(tell me more|more|go on|and\??|what else|anything else( about (it|that))?|"
                   r"more (info|details|please)|cont[ia]nue|dime m[aá]s|m[aá]s)\W*$", re.I)

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


# What is stored in place of a reply that was not sent because a person held the conversation.
NOT_SENT = "[not sent: a person was handling this conversation]"


class Chatbot:
    """The core: decides every reply; channels only translate."""

    def __init__(self, settings: Settings, clinic: ClinicProfile, embedder: BatchingEmbedder,
                 retriever: LiveRetriever, store: Any | None, llm: LLMComposer | None = None,
                 understander: Understander | None = None, glossary: Glossary | None = None,
                 faq: FaqLive | None = None) -> None:
        self.settings = settings
        self.clinic = clinic
        self.embedder = embedder
        self.retriever = retriever
        self.store = store
        self.llm = llm
        self.understander = understander
        self.glossary = glossary or Glossary({}, None)
        # Staff-written answers and clinic details (issue 16); None: articles only.
        self.faq = faq
        # The last turns of recent sessions, written before a reply leaves: the next message of the same
        # session sees it even if it arrives 0 ms later, and a database outage does not lose the context.
        self.memory = SessionMemory(idle_minutes=settings.session_idle_minutes)
        # Exchanges the database refused, kept (redacted, bounded) and written once it answers again: an outage
        # delays the record instead of losing it. They get no reply_id: feedback needs a stored reply.
        self._unsaved: deque[tuple[Any, ...]] = deque(maxlen=UNSAVED_LIMIT)
        self._unsaved_lock = threading.Lock()
        self._phrases = {lang: Phrases(clinic, lang) for lang in ("en", "es")}

    # -- the entry point channels use ------------------------------------------------------------
    async def respond(self, message: IncomingMessage, on_sentence: OnSentence | None = None) -> Reply:
        """Open the session, reply, and remember the exchange (redacted) before handing the reply back.

        Remembering first is read-your-writes: a follow-up sent the instant this reply arrives (Messenger
        delivers bursts) sees this turn. A `reply_id` is given only to an exchange the database holds.
        """
        session = await self._open_session(message)
        reply = await self.reply(message, session, on_sentence=on_sentence)
        reply.session_id = session.id
        if message.held and reply.kind != "emergency":
            # Staff see the whole conversation, and the record says this reply never reached the patient.
            reply.reply, reply.kind, reply.citations = NOT_SENT, "smalltalk", []
            reply._record_unanswered = None
        reply.reply_id = secrets.token_urlsafe(16) if self.store is not None else None
        if not await self._remember(session, message, reply):
            reply.reply_id = None
        return reply

    def forget(self, session_id: str) -> None:
        """Drop what this process remembers of a conversation (the database side is the store's)."""
        self.memory.forget(session_id)

    async def respond_then_remember(self, message: IncomingMessage, on_sentence: OnSentence | None = None,
                                    ) -> tuple[Reply, Callable[[], Awaitable[None]]]:
        """`respond`, for callers written when storing came after the reply; the write is already done."""
        reply = await self.respond(message, on_sentence)

        async def remembered() -> None:
            return None

        return reply, remembered

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
    async def reply(self, message: IncomingMessage, session: Session, on_sentence: OnSentence | None = None,
                    ) -> Reply:
        """Decide the reply to one message in a session (pure of storage)."""
        text = normalise(message.text)
        trace = ReplyTrace()
        reply = await self._decide(text, session, trace, on_sentence)
        reply._trace = trace
        metrics.REPLIES.labels(reply.kind, message.channel).inc()
        return reply

    async def _vectors(self, texts: list[str]) -> list[np.ndarray]:
        """Embed several texts in one model call (the batcher shares it); duplicates embedded once."""
        unique = list(dict.fromkeys(texts))
        futures = {t: self.embedder.submit(t) for t in unique}
        done = {t: await f for t, f in futures.items()}
        return [done[t] for t in texts]

    async def _decide(self, text: str, session: Session, trace: ReplyTrace, on_sentence: OnSentence | None) -> Reply:
        if not text:
            return self._handoff(self._say("en", "not_found"), trace, "empty")
        # A leading greeting or instruction to the bot is not what the patient asks; the rules still see it all.
        question = safety.strip_instructions(text)
        if len(question.split()) < 3:  # "hello there!" is a greeting, not the question "there!"
            question = text
        search = self._expand(question)
        context = _recent_context(session, question)
        pieces = pieces_of(text)
        vecs = await self._vectors([question, search, *([context] if context else []), *pieces])
        vec, search_vec = vecs[0], vecs[1]
        piece_vecs = list(zip(pieces, vecs[len(vecs) - len(pieces):], strict=True))
        # The model and the red-flag rules are CPU work: one hop to a thread, never on the event loop.
        u, rule = await asyncio.to_thread(self._understand_and_triage, text, question, vec, session, context,
                                          vecs[2] if context else None, piece_vecs)
        trace.label, trace.lang = u.label, u.lang
        say = self._phrases[u.lang]
        # 1. Emergencies: the model or the red-flag rules (a high-recall backstop), message and recent turns.
        if rule is not None and safety.rule_vetoed(u):
            trace.rule_vetoed = rule.category
            rule = None
        if u.emergency is not None or rule is not None:
            category, level = safety.emergency_of(u, rule)
            trace.reason, trace.emergency_category = "emergency", category
            trace.emergency_source = "+".join(x for x, hit in (("model", u.emergency), ("rules", rule)) if hit)
            metrics.EMERGENCIES.labels(level).inc()
            body, actions = safety.emergency_reply(category, level, say, self.clinic)
            return Reply(kind="emergency", reply=body, actions=actions, lang=u.lang)
        if u.crisis_check:
            trace.reason, trace.emergency_category = "crisis_check", "suicide"
            metrics.EMERGENCIES.labels("crisis_check").inc()
            body, actions = safety.crisis_check_reply(say, self.clinic)
            reply = Reply(kind="emergency", reply=body, actions=actions, lang=u.lang)
            reply._record_unanswered = "[crisis check-in] " + text
            return reply
        if u.guard == "seek_care":
            return self._handoff(say.say("seek_care"), trace, "seek_care", lang=u.lang, call=False,
                                 actions=[Action(type="emergency", label=f"Call {self.clinic.emergency_number}",
                                                 value=f"tel:{self.clinic.emergency_number}")])
        # 2. Guards: what the bot must never answer from an article.
        if u.intent == "human":
            return self._handoff(say.say("human"), trace, "human", lang=u.lang)
        if u.guard == "medication":
            return self._handoff(f"{say.say('medication')} {say.say('call')}", trace, "medication", lang=u.lang,
                                 record=True)
        if u.guard == "contraindication":
            return self._handoff(safety.contraindication_reply(text, say), trace, "contraindication", lang=u.lang,
                                 record=True, hard_news=True)
        if u.guard == "outcome":
            # An article sentence after "will it cure me?" reads as a promise: the honest limit and a call instead.
            return self._handoff(f"{say.say('outcome')} {say.say('call_to_talk')}", trace, "outcome", lang=u.lang)
        # 3. Intents.
        if u.intent == "booking":
            return self._booking(say, session, trace, u)
        if u.intent in SMALLTALK:
            trace.reason = f"smalltalk:{u.intent}"
            return self._smalltalk(u.intent, say, u.lang)
        if u.intent == "injection" and question == text:
            return self._handoff(f"{say.say('off_topic')} {say.say('call')}", trace, "injection", lang=u.lang)
        if u.intent == "off_topic" and question == text:
            return self._handoff(say.say("off_topic"), trace, "off_topic", lang=u.lang, call=False)
        # 4. A question for the articles.
        return await self._answer(question, search, search_vec, u, session, trace, say, on_sentence)

    def _understand_and_triage(self, text: str, question: str, vec: np.ndarray, session: Session,
                               context: str | None, context_vec: np.ndarray | None,
                               pieces: list[tuple[str, np.ndarray]]) -> tuple[Understanding, safety.Triage | None]:
        u = self._understand_sync(question, vec, session, context, context_vec, pieces)
        rule = safety.triage(text) or (safety.triage(context) if context and _red_flag_context(session) else None)
        return u, rule

    def _understand_sync(self, text: str, vec: np.ndarray, session: Session, context: str | None,
                         context_vec: np.ndarray | None, pieces: list[tuple[str, np.ndarray]] | None = None,
                         ) -> Understanding:
        previous = _session_lang(session)
        if self.understander is None:
            return Understanding(lang=language.detect(text, previous))
        last = _last_bot(session)
        u = self.understander.understand(text, vec, context_text=context, context_vec=context_vec,
                                         previous_lang=previous, pieces=pieces or (),
                                         after_emergency=last is not None and last.kind == "emergency")
        if (context is not None and context_vec is not None and u.emergency is None and last_question(session)
                and _leans_on_before(text)):
            # "how long is it?" after "tell me about the psoas" asks about the psoas, not about a session:
            # a follow-up's guard, intent, fact and question type are read with the turns before it.
            whole = self.understander.understand(context, context_vec, previous_lang=previous)
            u.guard, u.intent, u.fact, u.qtype = whole.guard, whole.intent, whole.fact, whole.qtype or u.qtype
            u.label = whole.label
        return u

    async def _answer(self, question: str, search: str, search_vec: np.ndarray, u: Understanding,
                      session: Session, trace: ReplyTrace, say: Phrases, on_sentence: OnSentence | None) -> Reply:
        if _MORE.match(question) and last_question(session):
            return await self._more(session, trace, say, u)
        # A staff answer written for this question, then a clinic detail the clinic has given, before the articles:
        # both were written to answer exactly this. Triage and the guards above have already run.
        entry = self._staff_answer(search_vec, search, u.fact)
        if entry is not None:
            notes = [say.say("diagnosis")] if u.guard == "diagnosis" else []
            return self._answer_reply(self._entry_composed(entry, trace), notes, u, session, trace, say, question)
        parts = plan_parts(question)
        if len(parts) > 1 and not self._llm_on():
            return await self._multi(parts, u, session, trace, say)
        try:
            found, qvec, used = await self._retrieve(search, session, search_vec)
        except IndexUnavailable:
            return self._unavailable(trace, say)
        trace.top_score, trace.grounded, trace.retrieval_ms = found.confidence, found.grounded, found.ms
        metrics.RETRIEVAL.observe(found.ms / 1000)
        if u.fact is not None:
            fact = await self._fact(u.fact, found, qvec)
            if fact is None:
                return self._handoff(say.say("fact_unknown", what=say.say(f"facts.{u.fact}")), trace,
                                     f"clinic_fact:{u.fact}", lang=u.lang, record=True, question=question)
            return self._answer_reply(_fact_answer(*fact), [], u, session, trace, say, question)
        notes = []
        if u.guard == "diagnosis":
            notes.append(say.say("diagnosis"))
        condition = safety.unnamed_condition(question, found.passages[:3])
        if condition is not None and (not found.grounded or found.confidence < self.settings.grounded_threshold + 0.1):
            trace.reason = "condition_not_covered"
            return self._handoff(" ".join([*notes, say.say("condition_unknown", condition=condition)]), trace,
                                 "condition_not_covered", lang=u.lang, record=True, question=question)
        if not found.grounded:
            return self._handoff(" ".join([*notes, say.say("not_found")]), trace, "not_grounded", lang=u.lang,
                                 record=True, question=question)
        if condition is not None:
            notes.append(say.say("condition_related", condition=condition))
        try:
            composed = await self._compose(used, qvec, found, trace, question, u, session, notes, on_sentence)
        except IndexUnavailable:
            return self._unavailable(trace, say)
        if len(parts) > 1 and trace.llm_fallback is not None:
            # The model read the whole message and fell back: the patient gets exactly what extractive mode
            # gives (the split plan), so a model outage changes nothing they read.
            return await self._multi(parts, u, session, trace, say)
        if not composed.text:
            return self._handoff(say.say("not_found"), trace, "not_grounded", lang=u.lang, record=True,
                                 question=question)
        return self._answer_reply(composed, notes, u, session, trace, say, question)

    def _answer_reply(self, composed: Composed, notes: list[str], u: Understanding, session: Session,
                      trace: ReplyTrace, say: Phrases, question: str, extra: list[str] | None = None) -> Reply:
        trace.reason, trace.sentences = "answer", composed.sentences
        lead = [say.say("spanish_note")] if u.lang == "es" and say.say("spanish_note") else []
        body_parts = [*notes, *lead, composed.text, *(extra or [])]
        if self._wants_book_line(u, session, body_parts):
            body_parts.append(say.say("call_to_talk") if _hard_news(session, u) else say.say("book_line"))
        body = " ".join(p for p in body_parts if p)
        if _repeats(session, body):
            return self._handoff(say.say("repeat"), trace, "repeat", lang=u.lang)
        disclaimer = safety.disclaimer(self.clinic) if _needs_disclaimer(session, u) else None
        return Reply(kind="answer", reply=body, citations=composed.citations, actions=self._contact_actions(),
                     suggestions=self._suggestions(question), disclaimer=disclaimer, lang=u.lang)

    def _wants_book_line(self, u: Understanding, session: Session, parts: list[str]) -> bool:
        """The booking line only where it helps: treatment, a condition, the second answer; never twice in a row."""
        if any(self.clinic.phone in p for p in parts):
            return False
        last = _last_bot(session)
        if last is not None and self.clinic.phone in last.text:
            return False
        answers = sum(1 for t in session.turns if t.role == "bot" and t.kind == "answer")
        return u.qtype in ("treatment", "process") or u.guard in ("diagnosis", "outcome") or answers == 1

    def _staff_answer(self, vec: np.ndarray, text: str, fact: str | None) -> Published | None:
        """The published staff entry that answers this question, else the clinic detail for its fact slot."""
        if self.faq is None:
            return None
        hit = self.faq.match(vec, text, fact)
        if hit is not None:
            return hit.item
        return self.faq.detail(fact) if fact else None

    @staticmethod
    def _entry_composed(item: Published, trace: ReplyTrace) -> Composed:
        trace.faq_entry = item.entry_id
        text = plain_answer(item.content.answer)
        return Composed(text=text, sentences=[text], citations=[citation(item)], passages=[passage(item)])

    async def _fact(self, slot: str, found: Retrieval, qvec: np.ndarray) -> tuple[str, Passage] | None:
        """A sentence of the top passages that states the clinic fact asked for, found by meaning and checked."""
        retriever = await self.retriever.current_async(self.settings.index_timeout)
        if retriever is None or not found.passages:
            return None
        ids = [p.id for p in found.passages[:3]]
        vectors = await retriever.reader.sentence_vectors_async(ids, self.settings.index_timeout)
        return holds_slot(slot, found.passages[:3], vectors, qvec)

    async def _more(self, session: Session, trace: ReplyTrace, say: Phrases, u: Understanding) -> Reply:
        """'Tell me more': the next best sentences on the last topic, never the ones already shown."""
        topic = last_question(session) or ""
        vec = (await self._vectors([self._expand(topic)]))[0]
        try:
            found, qvec, used = await self._retrieve(self._expand(topic), Session(id=session.id), vec)
        except IndexUnavailable:
            return self._unavailable(trace, say)
        shown = {t.text for t in session.turns if t.role == "bot"}
        composed = await self._compose(used, qvec, found, trace, topic, u, session, [], None, shown=shown, llm=False)
        if not composed.text or not found.grounded:
            return self._handoff(say.say("repeat"), trace, "repeat", lang=u.lang)
        return self._answer_reply(composed, [], u, session, trace, say, topic)

    async def _multi(self, parts: list[str], u: Understanding, session: Session, trace: ReplyTrace,
                     say: Phrases) -> Reply:
        """Answer each part the articles hold; say in one short line which ones they don't."""
        # "how long is a session and will it hurt?": a part that leans on the one before is searched with it.
        expanded = [self._expand(f"{parts[n - 1]} {p}" if n and _leans_on_before(p) else p)
                    for n, p in enumerate(parts)]
        vecs = await self._vectors(expanded)
        answered: list[Composed] = []
        missing: list[str] = []
        for part, search, vec in zip(parts, expanded, vecs, strict=True):
            pu = await asyncio.to_thread(self._understand_sync, part, vec, session, None, None)
            entry = self._staff_answer(vec, search, pu.fact)
            if entry is not None:
                answered.append(self._entry_composed(entry, trace))
                continue
            try:
                found, qvec, used = await self._retrieve(search, Session(id=session.id), vec)
                if not found.grounded and not pu.fact and _leans_on_before(part):
                    # "will it hurt" means the session asked about in the same message: try it whole.
                    whole = self._expand(" ".join(parts))
                    wvec = (await self._vectors([whole]))[0]
                    found, qvec, used = await self._retrieve(whole, Session(id=session.id), wvec)
            except IndexUnavailable:
                return self._unavailable(trace, say)
            fact = await self._fact(pu.fact, found, qvec) if pu.fact else None
            if pu.fact and fact is None:
                missing.append(say.say(f"facts.{pu.fact}"))
                continue
            if fact is not None:
                answered.append(_fact_answer(*fact))
                continue
            if not found.grounded:
                missing.append(f"“{part.rstrip('?.! ')}”")
                continue
            composed = await self._compose(used, qvec, found, trace, part, pu, session, [], None,
                                           max_words=self.settings.answer_max_words // 2 + 10, llm=False)
            if composed.text:
                answered.append(composed)
            else:
                missing.append(f"“{part.rstrip('?.! ')}”")
        trace.parts = len(parts)
        if not answered:
            text = say.say("part_unknown", what=" or ".join(missing)) if missing else ""
            return self._handoff(text.strip() or say.say("not_found"), trace, "not_grounded", lang=u.lang,
                                 record=True, question=" / ".join(parts))
        merged = Composed(text=" ".join(c.text for c in answered),
                          sentences=[s for c in answered for s in c.sentences],
                          citations=_unique_citations([x for c in answered for x in c.citations]),
                          passages=[p for c in answered for p in c.passages])
        extra = [say.say("part_unknown", what=" or ".join(missing))] if missing else []
        return self._answer_reply(merged, [], u, session, trace, say, parts[0], extra=extra)

    async def _retrieve(self, question: str, session: Session, vec: np.ndarray) -> tuple[Retrieval, np.ndarray, str]:
        # Every index call is time-limited in its own thread: a paused Chroma server cannot hold the event loop.
        timeout = self.settings.index_timeout
        retriever = await self.retriever.current_async(timeout)
        if retriever is None:
            raise IndexUnavailable("no index has been built yet")
        lexical = await retriever.lexical_candidates_async(question)
        found = await retriever.search_async(question, vec, lexical=lexical, timeout=timeout)
        previous = last_question(session)
        if previous and (_is_follow_up(question, retriever) or not found.grounded):
            combined = f"{self._expand(previous)} {question}"
            cvec = await self.embedder.embed_one(combined)
            again = await retriever.search_async(combined, cvec, timeout=timeout)
            if again.grounded and (not found.grounded or again.confidence >= found.confidence - 0.02
                                   or _is_follow_up(question, retriever)):
                return again, cvec, combined
        return found, vec, question

    async def _compose(self, question: str, qvec: np.ndarray, found: Retrieval, trace: ReplyTrace,
                       original: str, u: Understanding, session: Session, notes: list[str],
                       on_sentence: OnSentence | None, shown: set[str] | None = None,
                       max_words: int | None = None, llm: bool = True) -> Composed:
        retriever = await self.retriever.current_async(self.settings.index_timeout)
        if retriever is None:
            raise IndexUnavailable("no index has been built yet")
        ids = [p.id for p in found.passages[:3]]
        reader = retriever.reader
        # Sentence vectors are cached per generation; only a first sight of a passage goes to Chroma.
        vectors = (reader.sentence_vectors(ids) if all(i in reader._sentence_cache for i in ids)
                   else await reader.sentence_vectors_async(ids, self.settings.index_timeout))
        focus = await self.embedder.embed_one(original) if original != question else None
        extractive = compose(question, qvec, found, vectors, retriever.lexical.rare_weight, focus=focus,
                             qtype=u.qtype, exclude=shown,
                             max_words=max_words or self.settings.answer_max_words,
                             word_weights=retriever.lexical.query_weights(original))
        if not (llm and self._llm_on()):
            return extractive
        return await self._compose_llm(question, found, extractive, trace, notes, on_sentence)

    def _expand(self, text: str) -> str:
        """The question with the articles' terms for patients' words the articles themselves never use."""
        current = self.retriever._retriever  # the loaded generation, no I/O: a glossary look-up needs no fresh read
        if current is None:
            return self.glossary.expand(text)
        vocab = current.lexical._vocab_set
        return self.glossary.expand(text, known=lambda alias: all(t in vocab for t in tokenize(alias)))

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
        return Composed(text=result.text, sentences=result.sentences, citations=citations, passages=result.passages)

    # -- fixed framing ---------------------------------------------------------------------------
    def _say(self, lang: str, key: str, **extra: str) -> str:
        return self._phrases.get(lang, self._phrases["en"]).say(key, **extra)

    def _unavailable(self, trace: ReplyTrace, say: Phrases) -> Reply:
        metrics.INDEX_FAILURES.inc()
        return self._handoff(say.say("unavailable"), trace, "index_unavailable", lang=say.lang)

    def _contact_actions(self) -> list[Action]:
        actions = [Action(type="call", label="Call the clinic", value=f"tel:{self.clinic.phone_e164}")]
        if self.clinic.booking_url:
            actions.append(Action(type="book", label="Book online", value=self.clinic.booking_url))
        return actions

    def _handoff(self, text: str, trace: ReplyTrace, reason: str, *, lang: str = "en", record: bool = False,
                 question: str | None = None, call: bool = True, hard_news: bool = False,
                 actions: list[Action] | None = None) -> Reply:
        trace.reason = reason
        reply = Reply(kind="handoff", reply=text, lang=lang,
                      actions=actions if actions is not None else (self._contact_actions() if call else []),
                      suggestions=[] if hard_news else self.clinic.suggested_questions[:3])
        # "" means: record the patient's own message; None: nothing to record.
        reply._record_unanswered = (question or "") if record else None
        return reply

    def _booking(self, say: Phrases, session: Session, trace: ReplyTrace, u: Understanding) -> Reply:
        trace.reason = "booking"
        text = say.say("booking")
        if not _hard_news(session, u):  # no upbeat line after talk of surgery, illness or a crisis
            text += " " + say.say("booking_welcome")
        return Reply(kind="booking", reply=text, actions=self._contact_actions(), lang=u.lang)

    def _smalltalk(self, intent: str, say: Phrases, lang: str) -> Reply:
        return Reply(kind="smalltalk", reply=say.say(intent), lang=lang,
                     suggestions=self.clinic.suggested_questions[:4] if intent in ("greeting", "capabilities")
                     else [])

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
                session = await asyncio.to_thread(self.store.open_session, message.session_id, message.channel)
                if session.is_new:  # unknown to the database: this worker may hold it from an outage
                    return self.memory.get(message.session_id) or session
                return session
            except Exception as exc:
                metrics.STORE_FAILURES.labels("open_session").inc()
                log.warning("store unavailable: %s", type(exc).__name__)
        return self.memory.get(message.session_id) or Session(id=_valid_or_new(message.session_id))

    async def _remember(self, session: Session, message: IncomingMessage, reply: Reply) -> bool:
        unanswered = getattr(reply, "_record_unanswered", None)

        record: list[tuple[Any, ...]] = []

        def redact_and_store() -> None:  # redaction is regex work on patient text: off the event loop too
            user_text = safety.redact(normalise(message.text))
            bot_text = safety.redact(reply.reply)
            self.memory.add(session.id, user_text, reply.kind, bot_text)
            if self.store is None or reply.reply_id is None:
                raise _NotStored
            question = None if unanswered is None else safety.redact(unanswered or normalise(message.text))
            record.append((session.id, message.channel, user_text, reply.kind, bot_text, question))
            self.store.record_exchange(session.id, message.channel, user_text, reply.kind, bot_text,
                                       reply_id=reply.reply_id, unanswered_question=question)
            record.clear()  # stored: nothing of this exchange to keep back
            with contextlib.suppress(Exception):  # the backlog waits for a later write if this one fails
                self._flush_unsaved()

        try:
            await asyncio.to_thread(redact_and_store)
        except _NotStored:
            return False
        except Exception as exc:
            metrics.STORE_FAILURES.labels("record").inc()
            log.warning("store unavailable: %s", type(exc).__name__)
            with self._unsaved_lock:
                if len(self._unsaved) == self._unsaved.maxlen:
                    metrics.STORE_FAILURES.labels("record_dropped").inc()
                self._unsaved.extend(record)
            return False
        if unanswered is not None:
            metrics.UNANSWERED.inc()
        return True


    def _flush_unsaved(self) -> None:
        """Write the exchanges an outage kept back, oldest first; stop at the first refusal."""
        assert self.store is not None
        while True:
            with self._unsaved_lock:
                if not self._unsaved:
                    return
                item = self._unsaved[0]
            sid, channel, user_text, kind, bot_text, question = item
            self.store.record_exchange(sid, channel, user_text, kind, bot_text, unanswered_question=question)
            with self._unsaved_lock:
                if self._unsaved and self._unsaved[0] is item:
                    self._unsaved.popleft()


# -- reading the conversation ------------------------------------------------------------------------
class _NotStored(Exception):
    """No database to store in: the exchange lives in this process's memory only."""


def last_question(session: Session) -> str | None:
    """The patient's most recent message that got an answer or a handoff: the topic of a follow-up."""
    turns = session.turns
    for n in range(len(turns) - 1, 0, -1):
        if turns[n].role == "bot" and turns[n].kind in ("answer", "handoff") and turns[n - 1].role == "user":
            return turns[n - 1].text
    return None


def _last_bot(session: Session) -> Any:
    return next((t for t in reversed(session.turns) if t.role == "bot"), None)


def _session_lang(session: Session) -> language.Lang | None:
    """The language of the patient's latest message that was clearly one language."""
    for turn in reversed(session.turns):
        if turn.role == "user":
            es = language.spanish_confidence(turn.text)
            if es >= language.CONFIDENT:
                return "es"
            if es <= 1 - language.CONFIDENT:
                return "en"
    return None


def _recent_context(session: Session, text: str) -> str | None:
    """The patient's last turns with this one: for red flags that complete over two messages, and follow-ups."""
    said = [t.text for t in session.turns[-4:] if t.role == "user"][-2:]
    return " ".join([*said, text]) if said else None


def _red_flag_context(session: Session) -> bool:
    """Whether earlier turns may complete a red flag: not after an emergency reply (the patient is answering it)."""
    last = _last_bot(session)
    return last is not None and last.kind != "emergency"


def _leans_on_before(text: str) -> bool:
    """A short message that needs the one before it ("how long is it?", "and where does it start")."""
    return len(text.split()) <= 10 and bool(_FOLLOW_UP.search(text))


def _repeats(session: Session, body: str) -> bool:
    """Would this be the very reply the patient just got?"""
    last = _last_bot(session)
    return last is not None and last.text == safety.redact(body)


def _hard_news(session: Session, u: Understanding | None) -> bool:
    """Talk of surgery, illness, a contraindication or a crisis in this conversation: no upbeat phrases."""
    # This message itself: a contraindication, or anything that leans towards illness (a cancer history...).
    if u is not None and (u.guard == "contraindication" or u.emergency_score >= 0.1
                          or u.scores.get("guard.contraindication", 0.0) >= 0.1):
        return True
    return any(t.role == "bot" and t.kind == "emergency" for t in session.turns) or any(
        t.role == "bot" and t.kind == "handoff" and "doctor" in t.text.lower() for t in session.turns)


def _needs_disclaimer(session: Session, u: Understanding) -> bool:
    """Once per conversation on the first clinical answer; again for symptom, diagnosis and safety answers."""
    first = not any(t.role == "bot" and t.kind == "answer" for t in session.turns)
    return first or u.guard in ("diagnosis", "contraindication", "outcome") or u.qtype == "cause"


def _fact_answer(sentence: str, passage: Passage) -> Composed:
    return Composed(text=sentence, sentences=[sentence], passages=[passage],
                    citations=[Citation(title=passage.title, source=passage.source, url=passage.href,
                                        snippet=sentence[:200])])


def _unique_citations(citations: list[Citation]) -> list[Citation]:
    seen: set[str] = set()
    out = []
    for c in citations:
        if c.source not in seen:
            seen.add(c.source)
            out.append(c)
    return out


def _valid_or_new(session_id: str) -> str:
    return session_id if re.fullmatch(r"[A-Za-z0-9_-]{8,64}", session_id) else secrets.token_urlsafe(24)


def _is_follow_up(question: str, retriever: Any) -> bool:
    words = question.split()
    if len(words) > 10:
        return False
    if _FOLLOW_UP.search(question):
        return True
    # No word of the question is in the articles' vocabulary: it cannot stand on its own.
    known = [t for t in tokenize(question) if t in retriever.lexical._vocab_set]
    return not known
