"""Understanding one patient message: language, the label the banks' model gives it, and its question type.

The engine is small on purpose; what it knows lives in the banks (`banks/*.yaml`). Emergencies are judged on
the message and on the message together with the patient's last turns, so a red flag that completes in a
follow-up ("...and now I can't feel my inner thighs") is caught.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.understanding import language
from bot.understanding.banks import BANKS_DIR, Banks, Example, load_banks
from bot.understanding.model import LabelModel

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]
MAIN_GROUPS = ("emergency", "crisis", "not_emergency", "guard", "intent", "fact", "question")
URGENT = {"emergency.cancer", "emergency.hot_joint"}  # see a doctor today, 911 if worse
# The decision thresholds, calibrated on the banks' out-of-fold predictions (`python -m tools.evaluate` prints them).
EMERGENCY_AT = 0.5  # the summed probability of every emergency and crisis label
# A long message is also read sentence by sentence: a red flag buried in a story about booking still counts.
# One sentence alone is weaker evidence than a whole message, so it must clear a higher bar.
PIECE_AT = 0.7
CONTEXT_MIN = 0.1  # after an emergency reply, a message needs this much danger of its own to reopen it
PIECE_MIN_WORDS = 14  # shorter messages are read whole only
_PIECES = re.compile(r"(?<=[.!?;…])\s+|\n+")
CRISIS_CHECK_AT = 0.25  # suicide signals below the emergency bar still get a kind check-in, never "can't find it"
LABEL_AT = {"guard": 0.35, "intent": 0.5, "fact": 0.45}
QTYPE_AT = 0.35
MODEL_VERSION = 2  # bump when the model's features change, so saved weights are not reused


@dataclass
class Understanding:
    """What the core needs to decide: the emergency (if any), then a guard, an intent or a fact, the language."""

    lang: language.Lang = "en"
    label: str = "question.article"
    score: float = 0.0
    emergency: str | None = None  # "emergency.chest", "crisis.suicide", ...
    emergency_score: float = 0.0
    crisis_check: bool = False  # uncertain crisis signals: a soft check-in with 988
    lookalike: float = 0.0  # how sure the model is that this is no emergency (a look-alike or a plain question)
    from_context: bool = False  # the red flag needed the earlier turns
    guard: str | None = None  # "contraindication", "diagnosis", "medication", "outcome", "seek_care"
    intent: str | None = None  # "booking", "human", "greeting", ...
    fact: str | None = None  # "price", "hours", "cancellation", ...
    qtype: str | None = None  # "definition", "yes_no_link", "treatment", ...
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def level(self) -> str:
        """How fast care is needed: 'crisis', 'urgent' or 'emergency' (only meaningful with an emergency)."""
        if self.emergency == "crisis.suicide":
            return "crisis"
        return "urgent" if self.emergency in URGENT else "emergency"


class Understander:
    """Trains the models from the banks once, then labels messages in well under a millisecond each."""

    def __init__(self, embed: Embed, *, model_name: str = "model", cache_dir: Path | None = None,
                 banks: Banks | None = None) -> None:
        started = time.perf_counter()
        self.banks = banks or load_banks(BANKS_DIR)
        main = self.banks.of(*MAIN_GROUPS)
        qtypes = self.banks.of("qtype")
        texts = [e.text for e in main] + [e.text for e in qtypes]
        self._key = f"{model_name}-{self.banks.fingerprint}"
        vecs = _cached_vectors(embed, texts, cache_dir, self._key)
        self._texts, self._vecs = texts, vecs
        self.main = _trained_model(cache_dir, f"{self._key}-main", vecs[: len(main)], main)
        self.qtype = _trained_model(cache_dir, f"{self._key}-qtype", vecs[len(main):], qtypes)
        self._groups = np.array([name.split(".", 1)[0] for name in self.main.labels])
        self._danger = np.isin(self._groups, ("emergency", "crisis"))
        self._routing = np.isin(self._groups, ("guard", "intent", "fact", "question"))
        language.warm()
        self.seconds = time.perf_counter() - started
        log.info("understanding ready", extra={"event": {"examples": len(texts), "labels": len(self.main.labels),
                                                         "seconds": round(self.seconds, 2)}})

    def understand(self, text: str, vec: np.ndarray, *, context_text: str | None = None,
                   context_vec: np.ndarray | None = None, previous_lang: language.Lang | None = None,
                   pieces: Sequence[tuple[str, np.ndarray]] = (), after_emergency: bool = False) -> Understanding:
        """Label one message; `context_*` is the patient's recent turns joined with it and `pieces` the
        sentences of a long message with their vectors (both for red flags only). After an emergency reply the
        earlier turns count only when this message itself carries some danger (more red flags, not "thanks")."""
        u = Understanding(lang=language.detect(text, previous_lang))
        pred = self.main.predict(vec, text)
        p = pred.proba
        u.scores = {name: round(float(x), 3) for name, x in zip(self.main.labels, p, strict=True) if x >= 0.05}
        top = int(np.argmax(p))
        u.label, u.score = self.main.labels[top], float(p[top])
        danger = float(p[self._danger].sum())
        emergency_p = p
        if context_text is not None and context_vec is not None and (danger >= CONTEXT_MIN or not after_emergency):
            ctx = self.main.predict(context_vec, context_text).proba
            if float(ctx[self._danger].sum()) > danger:
                danger, emergency_p, u.from_context = float(ctx[self._danger].sum()), ctx, True
        for piece, piece_vec in pieces:
            pp = self.main.predict(piece_vec, piece).proba
            # Scaled so that PIECE_AT on one sentence counts as EMERGENCY_AT on the whole message.
            scaled = float(pp[self._danger].sum()) * EMERGENCY_AT / PIECE_AT
            if scaled > danger:
                danger, emergency_p = scaled, pp
        u.lookalike = float(p[np.isin(self._groups, ("not_emergency", "question"))].sum())
        u.emergency_score = danger
        if danger >= EMERGENCY_AT:
            masked = np.where(self._danger, emergency_p, 0.0)
            u.emergency, u.emergency_score = self.main.labels[int(np.argmax(masked))], danger
            return u
        suicide = self._prob("crisis.suicide", p)
        if suicide >= CRISIS_CHECK_AT:
            u.crisis_check = True
        # A guard outranks whatever else the message asks ("can I book? I'm on blood thinners"): the one thing
        # never to answer from an article comes first. Intents and facts need to be the message's main label.
        # The look-alike and emergency labels only tell emergencies apart; what the patient wants comes from the
        # rest ("had cancer years ago, I just want to book" is a booking), renormalised among them.
        routing = np.where(self._routing, p, 0.0)
        routing = routing / max(float(routing.sum()), 1e-9)
        guard, guard_p = self._best("guard", p)  # a guard must stand on its own, not on what is left
        if guard is not None and guard_p >= LABEL_AT["guard"]:
            u.guard = guard
        main = int(np.argmax(routing))
        group = self._groups[main]
        if group in ("intent", "fact") and routing[main] >= LABEL_AT[group]:
            setattr(u, group, self.main.labels[main].split(".", 1)[1])
        q = self.qtype.predict(vec, text).proba
        best = int(np.argmax(q))
        if q[best] >= QTYPE_AT:
            u.qtype = self.qtype.labels[best].split(".", 1)[1]
        return u

    def save(self, cache_dir: Path) -> None:
        """Write the banks' vectors and the trained weights into a cache folder (another DATA_DIR's)."""
        row = {t: n for n, t in enumerate(self._texts)}
        _cached_vectors(lambda texts: np.stack([self._vecs[row[t]] for t in texts]), self._texts, cache_dir,
                        self._key)
        for name, model in (("main", self.main), ("qtype", self.qtype)):
            path = cache_dir / f"model-{self._key}-{name}-v{MODEL_VERSION}.npz"
            if not path.exists():
                model.save(path)

    def _best(self, group: str, p: np.ndarray) -> tuple[str | None, float]:
        """The most likely label of one group (without its group prefix) and its probability."""
        mask = self._groups == group
        if not mask.any():
            return None, 0.0
        n = int(np.argmax(np.where(mask, p, -1.0)))
        return self.main.labels[n].split(".", 1)[1], float(p[n])

    def _prob(self, label: str, p: np.ndarray) -> float:
        return float(p[self.main.labels.index(label)]) if label in self.main.labels else 0.0


def pieces_of(text: str) -> list[str]:
    """The sentences of a long message (none for a short one), each long enough to stand alone."""
    if len(text.split()) < PIECE_MIN_WORDS:
        return []
    out: list[str] = []
    for part in _PIECES.split(text):
        part = part.strip()
        if not part:
            continue
        if out and len(part.split()) < 4:
            out[-1] += " " + part  # "ok." or "lol" is not a sentence of its own
        else:
            out.append(part)
    return out[:12] if len(out) > 1 else []


def _trained_model(cache_dir: Path | None, key: str, vecs: np.ndarray, examples: list[Example]) -> LabelModel:
    """The model for these examples: loaded when these very banks were trained before, else trained and saved."""
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    path = cache_dir / f"model-{key}-v{MODEL_VERSION}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            return LabelModel.load(path, vecs, texts, labels)
        except (OSError, ValueError, KeyError):
            pass  # a torn, foreign or stale file: train again
    model = LabelModel().fit(vecs, texts, labels)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    return model


def _cached_vectors(embed: Embed, texts: list[str], cache_dir: Path | None, key: str) -> np.ndarray:
    """The banks' embeddings, kept on disk per text: a restart embeds nothing, a new example embeds only itself."""
    path = cache_dir / f"understanding-{key.rsplit('-', 1)[0]}.npz" if cache_dir is not None else None
    known: dict[str, np.ndarray] = {}
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as cached:
                known = dict(zip(cached["texts"].tolist(), cached["vecs"], strict=True))
        except (OSError, ValueError, KeyError):
            known = {}  # a torn or foreign file: embed again
    missing = [t for t in dict.fromkeys(texts) if t not in known]
    if missing:
        for start in range(0, len(missing), 256):
            chunk = missing[start:start + 256]
            known.update(zip(chunk, np.asarray(embed(chunk), dtype=np.float32), strict=True))
    vecs = np.stack([known[t] for t in texts]).astype(np.float32)
    if path is not None and missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = list(dict.fromkeys(texts))
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, texts=np.array(keep), vecs=np.stack([known[t] for t in keep]))
        tmp.replace(path)  # atomic: a second worker never reads half a file
    return vecs


_trained: dict[tuple[str, str], Understander] = {}


def make_understander(embedder: object, cache_dir: Path | None = None) -> Understander:
    """The understander for this embedder, trained once per process (every app in a test run shares it)."""
    name = str(getattr(embedder, "name", type(embedder).__name__))
    banks = load_banks(BANKS_DIR)
    key = (name, banks.fingerprint)
    if key not in _trained:
        _trained[key] = Understander(embedder.embed, model_name=name, cache_dir=cache_dir,  # type: ignore[attr-defined]
                                     banks=banks)
    elif cache_dir is not None:
        _trained[key].save(cache_dir)  # a second DATA_DIR in this process starts warm next time too
    return _trained[key]
