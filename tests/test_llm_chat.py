"""ANSWER_MODE=llm through the whole service: the model only for grounded answers, verified, with fallbacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from bot.llm import LLMComposer
from tests.test_llm import GOOD, SlowModel

QUESTION = "What is the psoas and how big is it?"  # its top three passages hold every sentence of GOOD


def fake(*answers: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=a) for a in answers]))


@pytest.fixture
def llm_client(make_client, data_dir: Path) -> httpx.Client:  # type: ignore[no-untyped-def]
    # LLM_BASE_URL points at a closed port: the real ChatOpenAI client is built, and it is down.
    return make_client(data_dir, answer_mode="llm", llm_provider="openai", llm_base_url="http://127.0.0.1:9/v1",
                       llm_timeout=5.0)


def use_model(client: httpx.Client, model: GenericFakeChatModel, timeout: float = 10.0) -> None:
    """Swap the composer's model (the verifier, embedder and index stay the real ones)."""
    chatbot = client.app.state.runtime.chatbot  # type: ignore[attr-defined]
    chatbot.llm = LLMComposer(model, chatbot.llm.verifier, timeout=timeout)


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}(?:{{{re.escape(want)}}})? (\S+)$" if want else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def ask(client: httpx.Client, text: str) -> dict:
    r = client.post("/chat", json={"message": text})
    assert r.status_code == 200, r.text
    return r.json()


def test_model_down_gives_the_extractive_answer_and_counts_it(llm_client: httpx.Client, client: httpx.Client) -> None:
    before = metric(llm_client, "bot_llm_fallbacks_total", reason="error")
    reply = ask(llm_client, QUESTION)
    extractive = ask(client, QUESTION)  # the session app runs ANSWER_MODE=extractive on the same articles
    assert reply["kind"] == "answer" and reply["reply"] == extractive["reply"]
    assert metric(llm_client, "bot_llm_fallbacks_total", reason="error") == before + 1


def test_supported_answer_reaches_the_patient_with_citations(llm_client: httpx.Client) -> None:
    use_model(llm_client, fake(GOOD))
    reply = ask(llm_client, QUESTION)
    assert reply["kind"] == "answer"
    assert "On average it is about 16 inches long." in reply["reply"]
    assert "[1]" not in reply["reply"] and "[2]" not in reply["reply"]
    assert {c["title"] for c in reply["citations"]} == {"The psoas muscle"}
    assert reply["disclaimer"] and any(a["type"] == "call" for a in reply["actions"])


@pytest.mark.parametrize("invention", ["A session costs $100.", "It cures sciatica."])
def test_invented_sentence_never_reaches_the_reply(llm_client: httpx.Client, invention: str) -> None:
    first, rest = GOOD.split(" [2]. ")
    use_model(llm_client, fake(f"{first} [2]. {invention} {rest}"))
    before = metric(llm_client, "bot_llm_sentences_dropped_total")
    reply = ask(llm_client, QUESTION)
    assert reply["kind"] == "answer" and "16 inches" in reply["reply"]
    assert invention not in reply["reply"] and "$" not in reply["reply"] and "cure" not in reply["reply"]
    assert metric(llm_client, "bot_llm_sentences_dropped_total") == before + 1


def test_model_ignoring_the_sources_falls_back_to_extractive(llm_client: httpx.Client, client: httpx.Client) -> None:
    use_model(llm_client, fake("Back pain is caused by poor posture. A session costs $100 and insurance covers it."))
    before = metric(llm_client, "bot_llm_fallbacks_total", reason="too_little_supported")
    reply = ask(llm_client, QUESTION)
    assert reply["reply"] == ask(client, QUESTION)["reply"]
    assert metric(llm_client, "bot_llm_fallbacks_total", reason="too_little_supported") == before + 1


def test_slow_model_falls_back_in_time(llm_client: httpx.Client, client: httpx.Client) -> None:
    use_model(llm_client, SlowModel(messages=iter([]), stall=30.0), timeout=1.0)
    r = llm_client.post("/chat", json={"message": QUESTION})
    assert r.status_code == 200 and r.elapsed.total_seconds() < 5
    assert r.json()["reply"] == ask(client, QUESTION)["reply"]


@pytest.mark.parametrize(("message", "kind"), [
    ("I have crushing chest pain and my left arm is numb", "emergency"),
    ("I'd like to book an appointment", "booking"),
    ("How much does a session cost?", "handoff"),
    ("hello", "smalltalk"),
    ("What's the capital of France?", "handoff"),
])
def test_triage_intents_and_handoffs_never_call_the_model(llm_client: httpx.Client, message: str, kind: str) -> None:
    model = fake("A session costs $100. It cures sciatica.")
    use_model(llm_client, model)
    reply = ask(llm_client, message)
    assert reply["kind"] == kind
    assert next(model.messages, None) is not None, "the model was called"
    assert "$100" not in reply["reply"]


def test_stream_sends_verified_sentences_then_the_reply(llm_client: httpx.Client) -> None:
    first, rest = GOOD.split(" [2]. ")
    use_model(llm_client, fake(f"{first} [2]. It cures sciatica. {rest}"))
    sentences, final = [], None
    with llm_client.stream("POST", "/chat/stream", json={"message": QUESTION}) as r:
        assert r.status_code == 200
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if event == "sentence":
                    sentences.append(data["text"])
                elif event == "reply":
                    final = data
    assert final is not None and final["kind"] == "answer"
    assert sentences[:3] == ["The psoas is a bilateral muscle, so there is one on each side of the body.",
                             "On average it is about 16 inches long.",
                             "It is one of the largest and thickest muscles in the body."]
    assert all("cure" not in s for s in sentences) and "cure" not in final["reply"]
    assert all(s in final["reply"] for s in sentences)
