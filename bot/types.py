"""Plain data shared by every layer: what comes in, what is retrieved, what goes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

Kind = Literal["answer", "handoff", "emergency", "booking", "smalltalk"]
ActionType = Literal["call", "book", "link", "emergency"]
Channel = Literal["web", "messenger", "staff", "cli", "eval"]


@dataclass(frozen=True)
class IncomingMessage:
    """One patient message as a channel hands it to the core."""

    text: str
    session_id: str | None = None
    channel: Channel = "web"
    # A channel's own postback/quick-reply payload, when the message came from a button.
    payload: str | None = None
    # A person holds this conversation (Messenger handover): only an emergency reply will be sent.
    held: bool = False


@dataclass(frozen=True)
class Passage:
    """A retrievable piece of an article, with where it came from."""

    id: str
    text: str
    title: str
    section: str
    source: str
    url: str = ""
    score: float = 0.0
    dense_score: float = 0.0
    bm25_score: float = 0.0

    @property
    def href(self) -> str:
        """The article's published URL, else its page on this service (/articles/<file name>)."""
        if self.url:
            return self.url
        if self.source.startswith("faq/"):  # a staff entry's public page
            return "/articles/" + self.source
        return "/articles/" + self.source.rsplit("/", 1)[-1].removesuffix(".md")


@dataclass
class Turn:
    """One stored message of a conversation (text already redacted)."""

    role: Literal["user", "bot"]
    text: str
    kind: str | None = None
    created_at: datetime | None = None


@dataclass
class Session:
    """A conversation as the core sees it: its id and its recent turns, oldest first."""

    id: str
    turns: list[Turn] = field(default_factory=list)
    is_new: bool = True


class Citation(BaseModel):
    """Where an answer came from."""

    title: str
    source: str
    url: str = ""
    snippet: str = ""


class Action(BaseModel):
    """A button a channel can render: call, book, link or emergency."""

    type: ActionType
    label: str
    value: str


class Reply(BaseModel):
    """The whole answer to one message; the `POST /chat` contract."""

    session_id: str = ""
    kind: Kind
    reply: str
    citations: list[Citation] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    disclaimer: str | None = None
    # Additive field: lets a client attach feedback to this exact reply.
    reply_id: str | None = None
    # Additive field: the language the reply is written in ("en" or "es"); clients may follow it.
    lang: str = "en"
    # Core-side notes for channels, logs and storage; never serialised.
    _trace: Any = PrivateAttr(default=None)
    _record_unanswered: str | None = PrivateAttr(default=None)


@dataclass
class ReplyTrace:
    """What the core measured while replying; for logs and metrics, never message text."""

    reason: str = ""
    top_score: float = 0.0
    grounded: bool = False
    retrieval_ms: float = 0.0
    emergency_category: str | None = None
    emergency_source: str = ""  # "model", "rules" or "model+rules": which caught it
    rule_vetoed: str | None = None  # a red-flag rule the model overruled as a look-alike
    sentences: list[str] = field(default_factory=list)
    llm_dropped: int = 0
    llm_fallback: str | None = None
    label: str = ""
    lang: str = "en"
    parts: int = 1
    faq_entry: int | None = None  # the staff entry that answered, if one did
