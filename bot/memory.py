"""Recent turns of recent conversations, in this process: read-your-writes and a database-outage fallback."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from bot.types import Session, Turn

RECENT_TURNS = 6


class SessionMemory:
    """A bounded, expiring map of session id -> last turns (redacted text only, like the database)."""

    def __init__(self, idle_minutes: int = 120, max_sessions: int = 5000) -> None:
        self.idle = idle_minutes * 60
        self.max_sessions = max_sessions
        self._data: OrderedDict[str, tuple[float, list[Turn]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> Session | None:
        """The session as this process last saw it, or None when unknown or idle too long."""
        with self._lock:
            entry = self._data.get(session_id)
            if entry is None or time.monotonic() - entry[0] > self.idle:
                self._data.pop(session_id, None)
                return None
            return Session(id=session_id, turns=list(entry[1]), is_new=False)

    def add(self, session_id: str, user_text: str, kind: str, bot_text: str) -> None:
        """Remember one exchange; the oldest sessions go first when full."""
        with self._lock:
            _, turns = self._data.pop(session_id, (0.0, []))
            turns = [*turns, Turn(role="user", text=user_text), Turn(role="bot", text=bot_text, kind=kind)]
            self._data[session_id] = (time.monotonic(), turns[-RECENT_TURNS:])
            while len(self._data) > self.max_sessions:
                self._data.popitem(last=False)

    def forget(self, session_id: str) -> None:
        """Drop a session ("Clear conversation")."""
        with self._lock:
            self._data.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._data)
