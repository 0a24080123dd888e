"""The small model trained from the banks: logistic regression over the query embedding and character n-grams.

The embedding is the one the pipeline computes for retrieval anyway (no second encoder pass); character
n-grams (accents folded) carry what a small English embedder misses: Spanish, typos, texting spellings.
A nearest-example check sits on top so that adding an example close to a missed phrasing fixes it. Seeded
and deterministic: the same banks give the same model.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# scikit-learn and scipy are imported only to train (a cache miss): loading a saved model needs neither, which
# keeps ~1.4 s of imports out of every start.

SEED = 7
# How much the 384 embedding dimensions weigh against the sparse n-gram features (tuned by cross-validation).
EMBEDDING_WEIGHT = 2.0
# An example this close (cosine) to a message lends it its label, whatever the regression says.
NEAREST_SURE = 0.9


CHAR_RANGE, WORD_RANGE = (2, 4), (1, 2)
_WORD = re.compile(r"(?u)\b\w+\b")
_SPACES = re.compile(r"\s\s+")


def char_grams(text: str) -> list[str]:
    """sklearn's char_wb analyzer, CHAR_RANGE: n-grams inside each space-padded word (a short word once)."""
    out: list[str] = []
    for w in _SPACES.sub(" ", text.lower()).split():
        w = f" {w} "
        for n in range(CHAR_RANGE[0], CHAR_RANGE[1] + 1):
            out.extend(w[i:i + n] for i in range(max(1, len(w) - n + 1)))
            if len(w) <= n:
                break
    return out


def word_grams(text: str) -> list[str]:
    """sklearn's word analyzer, WORD_RANGE, token pattern \\b\\w+\\b: the words, then the word pairs."""
    tokens = _WORD.findall(text.lower())
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


ANALYZERS = (char_grams, word_grams)


def fold(text: str) -> str:
    """Lower case, accents and punctuation folded: what the n-gram features see."""
    t = unicodedata.normalize("NFKD", text.lower())
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    t = re.sub(r"[’'`´]", "", t)
    return re.sub(r"[^\w?!]+", " ", t).strip()


@dataclass
class Prediction:
    """Per-label probabilities of one message, and its nearest example."""

    proba: np.ndarray
    nearest_label: str
    nearest_sim: float


class LabelModel:
    """One classifier over a set of labels."""

    def __init__(self, c: float = 10.0) -> None:
        self.c = c
        self.labels: list[str] = []
        self._lr: Any = None
        self._bank_vecs: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        self._bank_labels: np.ndarray = np.zeros(0, dtype=np.int64)
        self._exact: dict[str, int] = {}

    def fit(self, vecs: np.ndarray, texts: list[str], labels: list[str]) -> LabelModel:
        """Train on the bank: vectors (normalised embeddings), the texts and their labels."""
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.labels = sorted(set(labels))
        index = {name: n for n, name in enumerate(self.labels)}
        y = np.array([index[name] for name in labels])
        # Character n-grams carry spelling and Spanish; word pairs carry "no fever", "years ago", "lol". The
        # analyzers are ours (the same n-grams sklearn makes) so inference runs without sklearn.
        vectorizers = [TfidfVectorizer(analyzer=a, min_df=2, sublinear_tf=True, dtype=np.float32) for a in ANALYZERS]
        folded = [fold(t) for t in texts]
        features = sparse.hstack([sparse.csr_matrix(vecs * EMBEDDING_WEIGHT),
                                  *[v.fit_transform(folded) for v in vectorizers]], format="csr")
        # newton-cg converges in a handful of passes here: ~4x faster than lbfgs with the same accuracy.
        self._lr = LogisticRegression(C=self.c, max_iter=300, tol=1e-3, solver="newton-cg", class_weight="balanced",
                                      random_state=SEED)
        self._lr.fit(features, y)
        # Inference by hand from the fitted weights: sklearn's per-call input checks cost ~1 ms a message.
        coef = self._lr.coef_.astype(np.float32)
        dims = vecs.shape[1]
        self._w_vec = coef[:, :dims] * EMBEDDING_WEIGHT
        self._w_gram = np.ascontiguousarray(coef[:, dims:])
        self._bias = self._lr.intercept_.astype(np.float32)
        self._set_vocab([v.vocabulary_ for v in vectorizers], [v.idf_ for v in vectorizers])
        self._bank_vecs = vecs.astype(np.float32)
        self._bank_labels = y
        self._exact = {fold(t): int(k) for t, k in zip(texts, y, strict=True)}
        return self

    def _set_vocab(self, vocabs: list[dict[str, int]], idfs: list[np.ndarray]) -> None:
        """One index over every vectorizer's features (in the order they follow the embedding)."""
        self._vocabs, self._offsets = vocabs, list(np.cumsum([0] + [len(v) for v in vocabs[:-1]]))
        self._idf = np.concatenate(idfs).astype(np.float32)

    def save(self, path: Path) -> None:
        """The fitted weights, so a restart with the same banks trains nothing (written atomically)."""
        tmp = path.with_name(path.name + ".tmp.npz")
        grams = {f"grams{n}": np.array([g for g, _ in sorted(v.items(), key=lambda kv: kv[1])])
                 for n, v in enumerate(self._vocabs)}
        arrays: dict[str, np.ndarray] = {"labels": np.array(self.labels), "w_vec": self._w_vec,
                                         "w_gram": self._w_gram, "bias": self._bias, "idf": self._idf, **grams}
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, vecs: np.ndarray, texts: list[str], labels: list[str]) -> LabelModel:
        """A model saved by `save` for these very banks."""
        model = cls()
        with np.load(path, allow_pickle=False) as data:
            model.labels = data["labels"].tolist()
            model._w_vec, model._w_gram, model._bias = data["w_vec"], data["w_gram"], data["bias"]
            vocabs = [{g: n for n, g in enumerate(data[f"grams{k}"].tolist())}
                      for k in range(len(ANALYZERS))]
            idf = data["idf"]
        if sorted(set(labels)) != model.labels:
            raise ValueError("saved model does not match the banks")
        model._set_vocab(vocabs, [idf])
        index = {name: n for n, name in enumerate(model.labels)}
        model._bank_vecs = vecs.astype(np.float32)
        model._bank_labels = np.array([index[name] for name in labels])
        model._exact = {fold(t): index[name] for t, name in zip(texts, labels, strict=True)}
        model._lr = None
        return model

    def predict(self, vec: np.ndarray, text: str) -> Prediction:
        """Probabilities for one message; an example written exactly so, or nearly so, decides."""
        proba = self._proba(vec, text)
        sims = self._bank_vecs @ vec
        best = int(np.argmax(sims))
        label, sim = int(self._bank_labels[best]), float(sims[best])
        exact = self._exact.get(fold(text))
        if exact is not None:
            label, sim = exact, 1.0
        if sim >= NEAREST_SURE:
            # The clinic's own example outranks the regression: that is how a new phrasing gets fixed.
            proba = proba * (1 - sim)
            proba[label] += sim
        return Prediction(proba, self.labels[label], sim)


    def _proba(self, vec: np.ndarray, text: str) -> np.ndarray:
        """The regression's probabilities (the same numbers as predict_proba, without its overhead)."""
        folded = fold(text)
        logits = self._w_vec @ vec.astype(np.float32) + self._bias
        for analyze, vocab, offset in zip(ANALYZERS, self._vocabs, self._offsets, strict=True):
            counts: dict[int, int] = {}
            for gram in analyze(folded):
                j = vocab.get(gram)
                if j is not None:
                    counts[j + offset] = counts.get(j + offset, 0) + 1
            if counts:  # each vectorizer's row is L2-normalised on its own, as sklearn does
                idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
                tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
                vals = tf * self._idf[idx]
                vals /= np.linalg.norm(vals)
                logits += self._w_gram[:, idx] @ vals
        if logits.shape[0] == 1:  # two labels: sklearn's binary form
            p1 = 1.0 / (1.0 + np.exp(-logits[0]))
            return np.array([1.0 - p1, p1], dtype=np.float32)
        logits -= logits.max()
        e = np.exp(logits)
        return e / e.sum()


def cross_validate(vecs: np.ndarray, texts: list[str], labels: list[str], folds: int = 5,
                   c: float = 10.0) -> tuple[list[str], np.ndarray]:
    """Out-of-fold probabilities for every example (the labels' order is returned): for figures and thresholds."""
    from sklearn.model_selection import StratifiedKFold

    names = sorted(set(labels))
    y = np.array([names.index(x) for x in labels])
    out = np.zeros((len(texts), len(names)), dtype=np.float32)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for train, test in splitter.split(np.zeros(len(y)), y):
        model = LabelModel(c).fit(vecs[train], [texts[i] for i in train], [labels[i] for i in train])
        for i in test:
            p = model.predict(vecs[i], texts[i]).proba
            out[i, [names.index(n) for n in model.labels]] = p
    return names, out
