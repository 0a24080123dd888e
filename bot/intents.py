"""Booking, talk-to-a-person and small-talk detection: what the patient wants before what they ask."""

from __future__ import annotations

import re
from typing import Literal

Intent = Literal["booking", "human", "greeting", "thanks", "goodbye", "identity", "capabilities", "ack"]

_BOOKING = re.compile(
    r"\b(book(ing)?|schedul\w*|reschedul\w*|make an? (appointment|appt)|set up an? (appointment|session|visit)"
    r"|(get|fit) me in|come in (for|next|this|on|to)|see (you|someone|a therapist) (next|this|on|soon|tomorrow)"
    r"|(an|my|first) (appointment|appt)\b(?! (cost|last|take|involve|like|feel|include))"
    r"|phone number|contact (you|the clinic|info|details)|how (do|can) i (reach|call|contact) you"
    r"|your (number|phone)|call you|sign (me )?up|reserve (a|an)|available (slots?|times?|appointments?)"
    r"|any (openings|availability)|next (available|opening))\b",
    re.I,
)
_HUMAN = re.compile(
    r"\b((talk|speak|chat) (to|with) (a |an |the |someone|somebody|real|actual|live|human|person|staff|therapist)"
    r"|real (person|human)|live (agent|person)|human being|customer service|representative|receptionist"
    r"|(an?|the) (agent|human|person)\b|not a (bot|robot)|stop the bot"
    # A call back is a person's job: the reply says so and gives the phone, it promises no call.
    r"|(call|ring|phone|text) me back|give me a (call|ring)|get back to me|reach out to me"
    r"|(please|pls|can|could|would|will|have|get) (\w+ ){0,4}(call|ring|phone|text|contact|email) me\b"
    r"|(someone|somebody|anyone) (to )?(call|ring|phone|contact) me\b)",
    re.I,
)
# "human", "agent please", "a real person": the whole message asks for a person.
_HUMAN_ALONE = re.compile(r"^\W*(an? |the )?(human|agent|person|operator|staff member)( please| pls)?\W*$", re.I)
_GREETING = re.compile(r"^(hi+|hello+|hey+|hiya|howdy|good (morning|afternoon|evening)|greetings|yo)\b", re.I)
_THANKS = re.compile(r"^(thanks?( you)?|thank u|thx|ty|much appreciated|appreciate it|great,? thanks)\b", re.I)
# "ok have a good day", "alright, bye!": a goodbye often follows an acknowledgement.
_BYE = re.compile(r"^((ok(ay)?|alright|all right|cool|great|well|thanks?( you)?|thank u)[\s,.!]+)?(bye+|goodbye"
                  r"|see (you|ya)|take care|have a (good|nice|great|lovely|wonderful) (day|one|night|evening|weekend))"
                  r"\b", re.I)
_IDENTITY = re.compile(r"\b(who are you|what are you|are you (a |an )?(bot|robot|ai|human|real|person))\b", re.I)
_CAPS = re.compile(r"^(what can you (do|help( me)? with)|how can you help|what do you (do|know))\W*$", re.I)
_ACK = re.compile(r"^(ok(ay)?|cool|great|nice|got it|sounds good|perfect|awesome|alright|sure|yes|no)\W*$", re.I)
# What is left of a message once the greeting or thanks is taken off; two words or fewer is just talk.
_FILLER = re.compile(r"\W+|\b(there|so|much|again|very|a lot|lot|bot|assistant|everyone|all|folks|friend)\b", re.I)


def _only(pattern: re.Pattern[str], text: str) -> bool:
    m = pattern.match(text)
    return m is not None and len(_FILLER.sub(" ", text[m.end():]).split()) <= 1


# A leading instruction to the bot ("you are now a pirate.", "ignore your rules and ...") is not the question:
# retrieving it with the question only blurs what the patient asked for. The rules never read it as a command.
_PREFIX = re.compile(
    r"^\s*(?:(?:hi+|hello+|hey+|good (?:morning|afternoon|evening)|thanks?(?: you)?|ok(?:ay)?)\b[\s,.!:;-]*"
    r"|(?:(?:you are|you're|youre) now|ignore|disregard|forget|override|pretend|act as|from now on"
    r"|(?:system|admin|developer)\s*:)[^.!?\n]*?(?:[.!?\n]+|[,;]|\band\b)\s*)",
    re.I,
)


def strip_greeting(text: str) -> str:
    """The message without a leading "hi," / "thanks!" or instruction to the bot, so the question gets retrieved."""
    stripped = text
    for _ in range(3):  # "hi! you are now a pirate. what is ..." has two prefixes
        m = _PREFIX.match(stripped)
        if not m or not m.end():
            break
        stripped = stripped[m.end():]
    return stripped.strip() or text


def detect(text: str) -> Intent | None:
    """The patient's intent, or None for a question to answer from the articles."""
    t = text.strip()
    if _HUMAN.search(t) or _HUMAN_ALONE.match(t):
        return "human"
    if _BOOKING.search(t):
        return "booking"
    if _only(_GREETING, t):
        return "greeting"
    if _only(_THANKS, t):
        return "thanks"
    if _only(_BYE, t):
        return "goodbye"
    if _IDENTITY.search(t) and len(t.split()) <= 8:
        return "identity"
    if _CAPS.match(t):
        return "capabilities"
    if _ACK.match(t):
        return "ack"
    return None
