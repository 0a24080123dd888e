"""Check an LLM's sentences one by one against the retrieved passages: meaning, facts and risky claims."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import Stemmer

from bot.sentences import split_sentences
from bot.types import Passage

# Calibrated by tests/test_llm.py::test_threshold_separates_the_calibration_table (all-MiniLM-L6-v2 against
# every passage of knowledge/*.md; a unit is a passage sentence or two adjacent ones). Measured:
#   26 faithful paraphrases (close and loose):  cosine 0.60-0.99 (lowest: "It is about 16 inches long on
#                                               average.")
#   25 on-topic inventions (18 written for the   cosine 0.25-0.89 (highest: "The psoas is a small muscle
#   table, 7 that gemma3-270m wrote):            located in the neck.")
# Cosine alone cannot separate them, so THRESHOLD sits just under the lowest paraphrase and the word checks
# reject the rest (MIN_COVERAGE, then LIGHT_WORDS / new_words): 18/26 paraphrases kept, 0/25 inventions.
# A kept invention reaches a patient; a dropped paraphrase only costs a fallback to the extractive answer.
THRESHOLD = 0.60
# Share of a sentence's content words (5-letter prefixes) that must appear in the passage holding it.
MIN_COVERAGE = 0.5
_CANDIDATES = 5
_STOPWORDS = frozenset("""the and are was were been being for with from into that this these those its it's you your
yours our ours they their them she his her can could may might will would should does did have has had than
then there here which who whom what when where how why also just very more most many much some any each other
such not about because both down even like made make makes only out over same too well while get gets got
become becomes became one all own off again once let lets way ways thing things yes""".split())

# Words that carry no fact of their own, so a sentence may use them though its passage does not ("mainly",
# "people", "located"). Every other content word must be in the passage that holds the sentence (by stem or
# 5-letter prefix): this is what stops "a common problem in the elderly" or "part of the pelvic floor", which
# mean the passage's topic but add a claim (measured on gemma3-270m: tests/test_llm_real.py).
LIGHT_WORDS = frozenset("""probably likely lot lots mainly mostly main say says said show shows shown end ends come
comes came goes went sit sits think thinks try tries trying people person persons located location find found
side sides part parts help helps helped called call known means mean meant begin begins began start starts
started form forms formed link links linked connect connects connected attach attaches attached notice noticed
different various even often usually may really kind sort type types able lead leads led result results
process body bodies area areas example instance""".split())
_STEM = Stemmer.Stemmer("english")

# -- what a sentence asserts ----------------------------------------------------------------------
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6, "dozen": 12}
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(_UNITS)} | {w: str(n) for w, n in _TENS.items()} | {
    "half": "0.5", "twice": "2x", "double": "2x", "triple": "3x"}
_ORDINAL_WORDS = {w: f"ord:{i + 1}" for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split())}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?\b|\b[a-z]+\b", re.I)
_NEGATIONS = {"not": re.compile(r"\bnot\b|n['’]t\b|\bcannot\b", re.I), "never": re.compile(r"\bnever\b", re.I),
              "no": re.compile(r"\b(?:no|none|nobody|nothing|neither|nor)\b", re.I),
              "without": re.compile(r"\bwithout\b", re.I)}
# Generic risky claims (promises, money, insurance, medicine), never clinic topics. Each family is one
# concept, so a passage that says "relief" does not license a sentence that says "cure".
CLAIMS = {name: re.compile(rx, re.I) for name, rx in {
    "cure": r"\bcur(?:e|es|ed|ing|ative)\b|\bmiracl\w*|\beliminat\w*|\bget rid of\b",
    "relief": r"\breliev\w*|\brelief\b",
    "guarantee": r"\bguarant\w*|\bpromis\w*",
    "proven": r"\bproven\b|\bclinically\b|\bscientifically\b",
    "permanent": r"\bpermanent\w*|\bforever\b",
    "always": r"\balways\b",
    "completely": r"\bcompletely\b|\bentirely\b|\btotally\b",
    "instant": r"\binstant\w*|\bimmediate\w*|\bovernight\b",
    "safe": r"\bsafe(?:ly|ty)?\b|\brisk-free\b|\bside[- ]effects?\b|\bpainless\b",
    "money": r"\$|\bcost\w*|\bpric(?:e|es|ed|ing)\b|\bfees?\b|\bcharge[sd]?\b|\bdollars?\b|\bpay(?:s|ment\w*)?\b"
             r"|\bafford\w*",
    "free": r"\bfree\b|\bcomplimentary\b",
    "discount": r"\bdiscount\w*|\bcoupons?\b|\bdeals?\b|\bspecial offers?\b|\brefund\w*",
    "insurance": r"\binsur\w*|\bcovered\b|\bcoverage\b|\bmedicare\b|\bmedicaid\b|\bco-?pay\w*|\breimburs\w*",
    "diagnosis": r"\bdiagnos\w*",
    "medication": r"\bprescri\w*|\bmedicat\w*|\bdrugs?\b|\bpills?\b|\bpainkillers?\b",
    "surgery": r"\bsurg(?:ery|eon|ical)\w*|\binject\w*",
    "dose": r"\bdos(?:e|es|age|ing)\b|\bmg\b|\d\s*mg\b|\bmilligrams?\b",
    "percent": r"%|\bpercent\w*",
    "credentials": r"\bcertif\w*|\blicen[sc]\w*|\baccredit\w*",
}.items()}
# Framing a reply may carry without content. Whole sentences first, then openers that are stripped before
# the similarity check (the numbers/names/claims checks still read the whole sentence).
_FRAMING = re.compile(
    r"^(?:(?:here(?:'|’)?s|here is|this is) what (?:our|the) (?:clinic(?:'|’)?s )?(?:articles?|sources?) "
    r"(?:says?|explains?|tells? us|covers?)(?: about (?:this|that|it))?|i hope (?:this|that) helps|"
    r"(?:great|good) question|thanks? (?:you )?for (?:asking|your question))\s*[:.!]?$", re.I)
_OPENER = re.compile(
    r"^(?:(?:according to|as explained in|as described in|based on) (?:our|the) (?:clinic(?:'|’)?s )?"
    r"articles?(?: on [^,:]{1,60})?\s*[,:]\s*|(?:our|the) (?:clinic(?:'|’)?s )?articles?(?: on [^,:]{1,60})? "
    r"(?:says|explains|notes|mentions|describes)(?: that)?\s*[,:]?\s*)", re.I)
_QUOTED = re.compile(r"[\"“]([^\"”]{1,60})[\"”]")


def numbers_in(text: str) -> set[str]:
    """Every number a text states, normalised: digits, number words and ordinals ('sixteen' == '16')."""
    found: set[str] = set()
    for m in _NUMBER.finditer(text):
        tok = m.group(0).lower()
        if tok[0].isdigit():
            digits = tok.replace(",", "")
            found.add(re.sub(r"^(\d+)(?:st|nd|rd|th)$", r"ord:\1", digits))
        elif tok in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[tok])
        elif tok in _ORDINAL_WORDS:
            found.add(_ORDINAL_WORDS[tok])
    return found


def names_in(sentence: str) -> set[str]:
    """Capitalised words that are not the sentence's first word (names, places, acronyms), lowercased."""
    words = re.findall(r"[A-Za-z][\w'’-]*", _OPENER.sub("", sentence))
    return {re.sub(r"['’]s?$", "", w).lower() for w in words[1:] if w[0].isupper() and w not in ("I", "I'm")}


def negations_in(text: str) -> set[str]:
    """Which kinds of negation a text uses (not/n't, never, no/none/nor, without)."""
    return {name for name, rx in _NEGATIONS.items() if rx.search(text)}


def claims_in(text: str) -> set[str]:
    """Which risky-claim families (cure, money, insurance, dose...) a text mentions."""
    return {name for name, rx in CLAIMS.items() if rx.search(text)}


def is_framing(sentence: str) -> bool:
    """A fixed phrase of framing with no content ("Here's what our article says:")."""
    return bool(_FRAMING.match(sentence.strip()))


@dataclass(frozen=True)
class Verdict:
    """Whether one sentence is backed by the passages, by which one, and why not when it is not."""

    sentence: str
    supported: bool
    best_passage_id: str | None
    similarity: float
    reason: str


@dataclass
class _Units:
    texts: list[str]
    owner: list[int]  # index into the passage list for each unit
    vectors: np.ndarray


class Verifier:
    """Sentence-level grounding check: similar to a passage sentence, and no new numbers, names, negations
    or risky claims."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], threshold: float = THRESHOLD) -> None:
        self.embed = embed
        self.threshold = threshold
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}

    def verify(self, sentences: list[str], passages: list[Passage]) -> list[Verdict]:
        """One Verdict per sentence, in order."""
        if not sentences:
            return []
        units = self._units(passages)
        content = [_OPENER.sub("", s) or s for s in sentences]
        vecs = np.asarray(self.embed(content), dtype=np.float32)
        verdicts = []
        for sentence, text, vec in zip(sentences, content, vecs, strict=True):
            if is_framing(sentence):
                verdicts.append(Verdict(sentence, True, None, 0.0, "framing"))
            elif not units.texts:
                verdicts.append(Verdict(sentence, False, None, 0.0, "no passages"))
            else:
                verdicts.append(self._judge(sentence, text, passages, units, units.vectors @ vec))
        return verdicts

    def _judge(self, sentence: str, text: str, passages: list[Passage], units: _Units, sims: np.ndarray) -> Verdict:
        # The best unit decides unless its passage lacks a fact the sentence states while another unit that
        # also clears the threshold has it (the sentence may paraphrase a passage that is not the closest).
        order = [int(i) for i in np.argsort(-sims)[:_CANDIDATES]]
        first: Verdict | None = None
        for i in order:
            passage, similarity = passages[units.owner[i]], float(sims[i])
            problems = [] if similarity >= self.threshold else [f"similarity {similarity:.2f} < {self.threshold}"]
            problems += _unsupported_facts(sentence, text, passage)
            verdict = Verdict(sentence, not problems, passage.id, round(similarity, 4), "; ".join(problems) or "ok")
            if verdict.supported:
                return verdict
            first = first or verdict
            if similarity < self.threshold:
                break
        assert first is not None
        return first

    def _units(self, passages: list[Passage]) -> _Units:
        texts: list[str] = []
        owner: list[int] = []
        vectors: list[np.ndarray] = []
        for i, p in enumerate(passages):
            unit_texts, unit_vecs = self._passage_units(p)
            texts += unit_texts
            owner += [i] * len(unit_texts)
            vectors.append(unit_vecs)
        stacked = np.vstack(vectors) if vectors else np.zeros((0, 1), dtype=np.float32)
        return _Units(texts, owner, stacked)

    def _passage_units(self, p: Passage) -> tuple[list[str], np.ndarray]:
        # Units are each sentence and each pair of adjacent sentences (a model often fuses two into one).
        key = hashlib.sha256(f"{p.id}\x1f{p.text}".encode()).hexdigest()
        cached = self._cache.get(key)  # read once: another thread may clear the cache meanwhile
        if cached is None:
            sents = split_sentences(_plain(p.text)) or [p.text]
            units = sents + [f"{a} {b}" for a, b in itertools.pairwise(sents)]
            cached = (units, np.asarray(self.embed(units), dtype=np.float32))
            if len(self._cache) > 2048:  # bounded: passages change with each ingest
                self._cache.clear()
            self._cache[key] = cached
        return cached


def _unsupported_facts(sentence: str, text: str, passage: Passage) -> list[str]:
    """What the sentence states that this passage (with its title and section) does not."""
    source = " ".join((passage.title, passage.section, passage.text))
    words = set(re.findall(r"[a-z][\w'’-]*", source.lower()))
    words |= {re.sub(r"['’]s?$", "", w) for w in words}
    problems = [f"number {n}" for n in sorted(numbers_in(sentence) - numbers_in(source))]
    problems += [f"name {n}" for n in sorted(names_in(sentence) - words)]
    problems += [f"negation {n}" for n in sorted(negations_in(sentence) - negations_in(source))]
    problems += [f"claim {c}" for c in sorted(claims_in(sentence) - claims_in(source))]
    # A quoted term ("also called the 'back-hip flexor'") is a claim about wording: it must be the source's.
    problems += [f"quote {q}" for q in _QUOTED.findall(sentence) if q.lower() not in source.lower()]
    # "I have been hiking..." from an article's "you have been hiking": a change of person is a new claim.
    person = _persons(sentence) - _persons(passage.text)
    problems += [f"person {p}" for p in sorted(person)]
    # An article's title or heading is not an answer, however close it is in meaning.
    if _plain(sentence).rstrip(".!?:").lower() in {_plain(passage.title).lower(), _plain(passage.section).lower()}:
        problems.append("a title or heading")
    cover = coverage(text, source)
    if cover < MIN_COVERAGE:
        problems.append(f"coverage {cover:.2f} < {MIN_COVERAGE}")
    if new := new_words(text, source):
        problems.append(f"new words {', '.join(new[:4])}")
    return problems


_PERSON = {"first": re.compile(r"\b(i|i'm|i’m|im|i've|i’ve|ive|i'd|i’d|me|my|mine|myself)\b", re.I),
           "we": re.compile(r"\b(we|we're|we’re|us|ourselves)\b", re.I)}


def _persons(text: str) -> set[str]:
    """Which grammatical persons a text speaks in (first singular, first plural)."""
    return {name for name, rx in _PERSON.items() if rx.search(text)}


def new_words(sentence: str, source: str) -> list[str]:
    """The sentence's content words that its source lacks (by Snowball stem or 5-letter prefix), light words aside."""
    source_words = re.findall(r"[a-z]+", source.lower())
    stems = set(_STEM.stemWords(source_words))
    keys = {w[:5] for w in source_words}
    out: list[str] = []
    for w in re.findall(r"[a-z]+", sentence.lower()):
        if len(w) <= 2 or w in _STOPWORDS or w in LIGHT_WORDS or w in _NUMBER_WORDS or w in _ORDINAL_WORDS or w in out:
            # (numbers are checked as numbers: "sixteen" matches "16")
            continue
        if w[:5] not in keys and _STEM.stemWord(w) not in stems:
            out.append(w)
    return out


def coverage(sentence: str, source: str) -> float:
    """Share of the sentence's content words found in the source (5-letter prefixes: 'shortens' ~ 'short')."""
    keys = {w[:5] for w in re.findall(r"[a-z]+", source.lower())}
    words = [w[:5] for w in re.findall(r"[a-z]+", sentence.lower()) if len(w) > 2 and w not in _STOPWORDS]
    return sum(w in keys for w in words) / len(words) if words else 0.0


def _plain(text: str) -> str:
    return re.sub(r"(\*\*|__|`|^#+\s*)", "", text, flags=re.M)
