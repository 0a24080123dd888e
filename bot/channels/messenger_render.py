"""A core `Reply` rendered the Messenger way: text chunks, button templates, quick replies.

Pure functions from a Reply to Send API `message` objects. They translate; the core has already decided
what to say. Limits (Meta's Send API): text 2,000 characters, button-template text 640 with 1-3 buttons,
button and quick-reply titles 20, at most 13 quick replies.
"""

from __future__ import annotations

import re
from typing import Any

from bot.types import Action, Reply

TEXT_LIMIT = 2000
TEMPLATE_TEXT_LIMIT = 640
TITLE_LIMIT = 20
MAX_BUTTONS = 3
MAX_QUICK_REPLIES = 13
PAYLOAD_LIMIT = 1000
# Sent as `message.metadata` on everything the bot sends; Meta echoes it back, so an echo without it
# was written by someone else (a person in the Page Inbox).
METADATA = "clinic-bot"

# Postback payloads of the Get Started button and the persistent menu, and what the patient "said".
GET_STARTED, BOOK, CALL, ARTICLES = "GET_STARTED", "BOOK", "CALL", "ARTICLES"
POSTBACK_TEXT = {
    GET_STARTED: "hello",
    BOOK: "I'd like to book an appointment",
    CALL: "What is your phone number?",
    ARTICLES: "What can you help with?",
}

DISCLOSE_START = "I'm the clinic's automated assistant, not a person."
DISCLOSE_BACK = "You're chatting with the clinic's automated assistant again."
TEXT_ONLY_NOTE = "Sorry, I can only read text messages. Please type your question and I'll do my best to help."
HANDOVER_NOTE = ("Of course. I've let our staff know, and a member of our team will reply to you here as soon as "
                 "they can. If you'd like to talk sooner, please call the clinic at {phone}.")
# pass_thread_control failed: nobody was asked, so nobody is promised.
HANDOVER_FAILED_NOTE = ("Sorry, I couldn't reach our staff from here just now. Please call the clinic at {phone} "
                        "and a member of our team will help you.")
# The database is down: the event could not be queued, so the patient gets this rather than silence.
STORE_DOWN_NOTE = ("Sorry, I can't answer messages here right now. Please call the clinic at {phone} and "
                   "we'll be glad to help.")
STICKER_NOTE = "Thanks for the sticker! If you have a question, just type it and I'll do my best to help."
MEDIA_NOTE = ("Sorry, I can't open photos, voice messages or files here. Please type your question, or call the "
              "clinic at {phone} and we'll be glad to help.")
# Meta's "like" (the thumbs-up button) arrives as one of these stickers; after an answer it means thanks.
LIKE_STICKERS = {369239263222822, 369239343222814, 369239383222810}
LIKE_TEXT = "thanks"
# A phone_number button's payload must be "+", the country code and the number (Meta's Send API
# reference); short codes such as 911 and 988 cannot be call buttons, so they stay in the text.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")

# A sentence ends at . ! ? or … (optionally followed by a closing quote or bracket) before white space;
# a line break always ends a segment.
_BOUNDARY = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))[ \t]+|[ \t]*\n[ \t\n]*")


def units(text: str) -> int:
    """Length as Meta counts it (UTF-16 code units: an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


def segments(text: str) -> list[tuple[str, str]]:
    """Sentences and lines, each with the white space that followed it (so they join back exactly)."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _BOUNDARY.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], m.group(0)))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], ""))
    return out


def _hard_split(piece: str, limit: int) -> list[str]:
    """One over-long sentence cut at spaces (inside a word only when a single word is too long)."""
    parts: list[str] = []
    current = ""
    for word in piece.split(" "):
        candidate = f"{current} {word}" if current else word
        if units(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        while units(word) > limit:
            cut = limit
            while units(word[:cut]) > limit:
                cut -= 1
            parts.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        parts.append(current)
    return parts


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Messages of at most `limit` units, broken at sentence or line boundaries."""
    chunks: list[str] = []
    current, pending = "", ""
    for sentence, sep in segments(text.strip()):
        pieces = [sentence] if units(sentence) <= limit else _hard_split(sentence, limit)
        for n, piece in enumerate(pieces):
            if current and units(current + pending + piece) > limit:
                chunks.append(current)
                current = ""
            current = current + pending + piece if current else piece
            pending = sep if n == len(pieces) - 1 else " "
    if current:
        chunks.append(current)
    return chunks


def _prefix(text: str, limit: int) -> str:
    """The longest prefix of at most `limit` UTF-16 units that does not split a surrogate pair."""
    out, used = [], 0
    for ch in text:
        size = units(ch)
        if used + size > limit:
            break
        out.append(ch)
        used += size
    return "".join(out)


def short_title(text: str, limit: int = TITLE_LIMIT) -> str:
    """A button or quick-reply title of at most `limit` UTF-16 units (Meta's count), cut at a word with "…"."""
    text = " ".join(text.split())
    if units(text) <= limit:
        return text
    cut = _prefix(text, limit - 1)
    if " " in cut.strip():
        cut = cut[: cut.rstrip().rfind(" ")]
    return cut.rstrip(" ,;:-") + "…"


def _number(value: str) -> str:
    return value.removeprefix("tel:").strip()


def callable_number(value: str) -> str | None:
    """The number of a `tel:` action when Meta accepts it as a call button (E.164), else None."""
    number = re.sub(r"[\s().-]", "", _number(value))
    return number if E164.fullmatch(number) else None


def contact_buttons(actions: list[Action]) -> list[dict[str, Any]]:
    """Call / book / link actions as template buttons (phone_number or web_url), at most three."""
    buttons: list[dict[str, Any]] = []
    for a in actions:
        if a.type == "call" and (number := callable_number(a.value)):
            buttons.append({"type": "phone_number", "title": short_title(a.label), "payload": number})
        elif a.type in ("book", "link") and a.value.startswith(("https://", "http://")):
            buttons.append({"type": "web_url", "title": short_title(a.label), "url": a.value})
    return buttons[:MAX_BUTTONS]


def emergency_buttons(actions: list[Action]) -> list[dict[str, Any]]:
    """The emergency reply's call buttons: only numbers Meta accepts (E.164). 911 and 988 are short codes,
    which a phone_number button refuses (and "+911" would dial India), so they stay in the text, which
    Messenger shows as a tappable number; the reply then never needs a fallback round trip."""
    buttons = []
    for a in actions:
        if a.type in ("emergency", "call") and (number := callable_number(a.value)):
            title = a.label if units(a.label) <= TITLE_LIMIT else short_title(f"Call {number}")
            buttons.append({"type": "phone_number", "title": title, "payload": number})
    return buttons[:MAX_BUTTONS]


def button_template(text: str, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    """A button template message (text at most 640 units, 1-3 buttons)."""
    return {"attachment": {"type": "template", "payload": {"template_type": "button", "text": text,
                                                            "buttons": buttons[:MAX_BUTTONS]}}}


def quick_replies(suggestions: list[str]) -> list[dict[str, Any]]:
    """Suggested questions as quick replies; the payload is the whole question so the core can answer it."""
    seen: set[str] = set()
    out = []
    for q in suggestions:
        q = " ".join(q.split())
        if not q or q in seen:
            continue
        seen.add(q)
        out.append({"content_type": "text", "title": short_title(q), "payload": q[:PAYLOAD_LIMIT]})
    return out[:MAX_QUICK_REPLIES]


def source_lines(reply: Reply, public_url: str | None = None) -> list[str]:
    """One "Source: <title> <url>" line per distinct article cited (a page of ours needs PUBLIC_URL)."""
    lines: list[str] = []
    for c in reply.citations:
        url = c.url
        if url.startswith("/"):  # an /articles/<slug> page of this service: absolute only when we know our address
            url = public_url.rstrip("/") + url if public_url else ""
        line = f"Source: {c.title} {url}".strip()
        if line not in lines:
            lines.append(line)
    return lines[:3]


def render_emergency(reply: Reply) -> dict[str, Any]:
    """The emergency instruction with its call buttons, alone; plain text when there is no button."""
    buttons = emergency_buttons(reply.actions)
    text = reply.reply.strip()
    if buttons and units(text) <= TEMPLATE_TEXT_LIMIT:
        return button_template(text, buttons)
    return {"text": split_text(text)[0] if text else ""}


def render(reply: Reply, *, disclosure: str | None = None, public_url: str | None = None) -> list[dict[str, Any]]:
    """Send API `message` objects for one reply, in the order they are sent."""
    if reply.kind == "emergency":
        return [render_emergency(reply)]
    body = reply.reply.strip()
    if disclosure and "automated assistant" not in body.lower():
        body = f"{disclosure} {body}"
    sources = "\n".join(source_lines(reply, public_url))
    disclaimer = (reply.disclaimer or "").strip()
    buttons = contact_buttons(reply.actions)
    head, tail = body, ""
    if buttons:
        if not sources and units(body) <= TEMPLATE_TEXT_LIMIT:
            head, tail = "", body
        else:
            parts = segments(body)
            last = parts[-1][0] if parts else ""
            if last and units(last) <= TEMPLATE_TEXT_LIMIT:
                # The closing sentence (usually "call us at ...") carries the buttons; the article, its
                # sources and the disclaimer come before it.
                head, tail = body[: body.rfind(last)].rstrip(), last
    text = "\n\n".join(p for p in (head, sources, disclaimer) if p)
    messages: list[dict[str, Any]] = [{"text": chunk} for chunk in split_text(text)]
    if tail:
        messages.append(button_template(tail, buttons))
    if messages and reply.suggestions:
        messages[-1]["quick_replies"] = quick_replies(reply.suggestions)
    return messages
