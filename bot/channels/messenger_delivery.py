"""Messenger delivery: a worker loop over the durable event queue, and an outbox that sends each reply once.

Every accepted event is a row in the database before Meta hears 200 (bot/store.py). Each worker process
runs one loop that leases the oldest open event of any sender (only a sender's oldest, so one sender's
events run in order across workers), plans it once (the core's reply becomes outbox steps, each with an
idempotency key) and then runs the steps in order, marking each done only after it succeeded:

- `send`: a Send API call. Tried once per claim (no blind retry): 5xx, 429 and unreachable put the event
  back with backoff for as long as the messaging window lasts; a call that may have reached Meta (timeout,
  dropped connection after writing) stays "sending" until Meta's echo, which carries the key in
  `metadata`, confirms it, or `MESSENGER_ECHO_WAIT_S` passes; an expired token (190/102) keeps the reply
  queued and sets the `token_expired` state; any other 4xx fails that reply for good.
- `graph`: a handover call (pass/take thread control) with follow-up steps for success and failure.
- `local`: a database change (thread state, hold, staff flag) that belongs after the sends before it.

A worker that dies leaves its lease to expire and the next one resumes from the outbox; one that is told
to stop hands its unfinished events back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import metrics
from bot.channels.messenger_graph import GraphClient, GraphError
from bot.config import Settings

log = logging.getLogger(__name__)
METADATA_PREFIX = "clinic-bot"
MAX_ERROR_ATTEMPTS = 5  # an event whose handling raises this often is dropped (never a crash loop)
STATUS_TOKEN = "page_token"  # noqa: S105 - the key of the shared status row, not a secret


@dataclass
class Job:
    """One leased event."""

    id: int
    key: str
    psid_hash: str
    payload: dict[str, Any]
    standby: bool
    event_time: datetime | None
    received_at: datetime
    attempts: int
    lost: bool = False
    # Runs once the planned steps are committed (the core's write of the exchange, redacted).
    after_plan: Callable[[], Awaitable[None]] | None = None

    @property
    def age_from(self) -> datetime:
        """When the patient wrote (Meta's timestamp), else when we received it."""
        return self.event_time or self.received_at


class Retry(Exception):
    """Put the event back in the queue for `delay` seconds."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay, self.reason = delay, reason


def idem_key(event_key: str, index: int) -> str:
    """The idempotency key of an event's n-th step: stable across restarts and workers."""
    return f"{hashlib.sha256(event_key.encode()).hexdigest()[:24]}.{index}"


def send_metadata(key: str) -> str:
    """`message.metadata` for a send: Meta echoes it back, so an echo names the outbox row it confirms."""
    return f"{METADATA_PREFIX}:{key}"


def echoed_key(metadata: Any) -> str | None:
    """The outbox key in the metadata of one of our own echoes, '' for ours without a key, None for others'."""
    if not isinstance(metadata, str) or not metadata.startswith(METADATA_PREFIX):
        return None
    return metadata[len(METADATA_PREFIX) + 1:] if metadata.startswith(METADATA_PREFIX + ":") else ""


class Delivery:
    """The worker loop and the outbox; subclasses say how an event becomes steps (`plan`) and run `local` ones."""

    def __init__(self, settings: Settings, runtime: Any, graph: GraphClient) -> None:
        self.settings = settings
        self.runtime = runtime
        self.graph = graph
        self.worker = f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False
        self.token_state: str = "unchecked"  # noqa: S105 - ok | expired:<code> | unchecked | not_configured
        self.fallback_active = False  # the database refused an intake: answering from memory

    # -- overridden by the channel ------------------------------------------------------------------
    async def plan(self, job: Job) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        """The steps that answer this event (may be none)."""
        raise NotImplementedError

    async def local(self, job: Job, step: dict[str, Any]) -> None:  # pragma: no cover - abstract
        """Run one `local` step."""
        raise NotImplementedError

    # -- the loop -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start this worker's loop (idempotent; needs a running event loop)."""
        if self._pump is None:
            self._pump = asyncio.create_task(self._loop())

    def wake(self) -> None:
        """New work was queued by this process."""
        self._wake.set()

    @property
    def store(self) -> Any:
        return self.runtime.store

    async def _loop(self) -> None:
        while not self.runtime.ready.is_set() or self.store is None:  # polled: a blocked thread would stall shutdown
            await asyncio.sleep(0.2)
        await self.check_token()
        idle_rounds = 0
        while not self._stopping:
            if len(self._inflight) >= max(1, self.settings.messenger_concurrency):
                await asyncio.wait(list(self._inflight.values()), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                if idle_rounds % 20 == 0:
                    await self._housekeeping()
                row = await asyncio.to_thread(self.store.claim_event, self.worker, self.settings.messenger_lease_s)
            except Exception as exc:  # the database is away: events stay queued; try again shortly
                metrics.STORE_FAILURES.labels("claim_event").inc()
                log.warning("messenger queue unavailable", extra={"event": {"messenger": "queue_unavailable",
                                                                            "error": type(exc).__name__}})
                await self._idle(2.0)
                continue
            if row is None:
                idle_rounds += 1
                await self._idle(self.settings.messenger_poll_s)
                continue
            idle_rounds = 0
            job = _job(row)
            if job is None:  # unreadable payload: nothing can be done with it
                await asyncio.to_thread(self.store.finish_event, row["id"], self.worker, "unreadable", dropped=True)
                metrics.MESSENGER_EVENTS.labels("unreadable").inc()
                continue
            self._inflight[job.id] = asyncio.create_task(self._run(job))

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _housekeeping(self) -> None:
        dropped = await asyncio.to_thread(self.store.drop_stale_events, self.settings.messenger_max_event_age_s)
        if dropped:
            metrics.MESSENGER_EVENTS.labels("too_old").inc(dropped)
            log.warning("messenger events dropped", extra={"event": {"messenger": "too_old", "count": dropped}})
        status = await asyncio.to_thread(self.store.get_status)
        self.fallback_active = False  # the database answers again: intake is durable from the next webhook on
        shared = status.get(STATUS_TOKEN)
        if shared and shared.startswith("expired"):
            self._token(shared)
        elif self.token_state.startswith("expired") and shared is None:
            self._token("ok")

    async def _run(self, job: Job) -> None:
        beat = asyncio.create_task(self._heartbeat(job))
        try:
            await self._process(job)
        except Retry as retry:
            metrics.MESSENGER_SEND_RETRIES.labels(retry.reason).inc()
            await self._release(job, retry.delay)
        except asyncio.CancelledError:  # shutting down: hand the event back for the next worker
            await asyncio.shield(self._release(job, 0.0))
            raise
        except Exception as exc:  # a bug or an event of a shape nobody foresaw: a few tries, then dropped
            gave_up = job.attempts >= MAX_ERROR_ATTEMPTS
            log.error("messenger event failed", extra={"event": {"messenger": "event_failed",
                                                                 "error": type(exc).__name__, "gave_up": gave_up,
                                                                 "psid": job.psid_hash}})
            if gave_up:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.finish_event, job.id, self.worker, "error", dropped=True)
                metrics.MESSENGER_EVENTS.labels("error").inc()
            else:
                metrics.MESSENGER_SEND_RETRIES.labels("error").inc()
                await self._release(job, self._backoff(job))
        finally:
            beat.cancel()
            self._inflight.pop(job.id, None)
            self._wake.set()

    async def _heartbeat(self, job: Job) -> None:
        lease = self.settings.messenger_lease_s
        while True:
            await asyncio.sleep(max(0.2, lease / 3))
            try:
                if not await asyncio.to_thread(self.store.renew_lease, job.id, self.worker, lease):
                    job.lost = True  # another worker took it over: stop before the next step
                    return
            except Exception:
                metrics.STORE_FAILURES.labels("renew_lease").inc()

    async def _release(self, job: Job, delay: float) -> None:
        try:
            await asyncio.to_thread(self.store.release_event, job.id, self.worker, delay)
        except Exception:  # the lease runs out instead
            metrics.STORE_FAILURES.labels("release_event").inc()

    def _backoff(self, job: Job) -> float:
        s = self.settings
        return float(min(s.messenger_retry_max_s, s.messenger_retry_initial_s * 2 ** max(0, job.attempts - 1)))

    async def _process(self, job: Job) -> None:
        rows = await asyncio.to_thread(self.store.outbox_rows, job.id)
        if not rows:
            steps = await self.plan(job)
            if steps:
                await self.append(job, steps, start=0)
                rows = await asyncio.to_thread(self.store.outbox_rows, job.id)
            if job.after_plan is not None:  # after the commit: a crash before it re-plans, never records twice
                await job.after_plan()
        outcome = await self._flush(job, rows)
        if not job.lost:
            await asyncio.to_thread(self.store.finish_event, job.id, self.worker, outcome,
                                    dropped=outcome == "window_closed")
            metrics.MESSENGER_EVENTS.labels(outcome).inc()

    async def append(self, job: Job, steps: list[dict[str, Any]], *, start: int) -> None:
        """Add steps to an event's outbox, keyed by their position."""
        rows = [(idem_key(job.key, start + n), json.dumps(step)) for n, step in enumerate(steps)]
        await asyncio.to_thread(self.store.add_outbox, job.id, rows)

    # -- the outbox ---------------------------------------------------------------------------------
    async def _flush(self, job: Job, rows: list[dict[str, Any]]) -> str:
        sent = failed = 0
        stop_sends = False
        n = 0
        while n < len(rows):
            row = rows[n]
            n += 1
            if row["status"] == "sent":
                sent += _is_send(row)
                continue
            if row["status"] in ("failed", "expired"):
                failed += 1
                continue
            if job.lost:
                return "lease_lost"
            step = json.loads(row["body"] or "{}")
            kind = step.get("kind")
            if kind == "send":
                if stop_sends:
                    await self._mark(row, "failed")
                    continue
                result = await self._send(job, row, step)
                sent += result == "sent"
                if result == "failed":
                    failed += 1
                    stop_sends = True  # the rest of this reply would fail the same way (blocked, gone...)
                elif result == "expired":
                    for rest in rows[n - 1:]:
                        if rest["status"] not in ("sent", "failed", "expired"):
                            await self._mark(rest, "expired")
                    metrics.MESSENGER_EVENTS.labels("window_closed").inc()
                    return "window_closed"
            elif kind == "graph":
                more = await self._graph_step(job, step)
                await self._mark(row, "sent")
                if more:
                    await self.append(job, more, start=len(rows))
                    rows = await asyncio.to_thread(self.store.outbox_rows, job.id)
            else:
                step["sent_any"] = sent > 0
                await self.local(job, step)
                await self._mark(row, "sent")
        return "sent" if sent else ("failed" if failed else "nothing_to_send")

    async def _mark(self, row: dict[str, Any], status: str, message_id: str | None = None) -> None:
        await asyncio.to_thread(self.store.outbox_mark, row["idem_key"], status, message_id)
        row["status"] = status

    async def _send(self, job: Job, row: dict[str, Any], step: dict[str, Any]) -> str:
        now = datetime.now(UTC)
        window = timedelta(hours=self.settings.messenger_send_window_hours)
        if now - job.age_from > window:
            return "expired"
        if row["status"] == "sending" and row["attempted_at"] is not None:
            # The last try may have reached Meta: its echo decides, unless it has been silent too long.
            waited = (now - row["attempted_at"]).total_seconds()
            if waited < self.settings.messenger_echo_wait_s:
                raise Retry(self.settings.messenger_echo_wait_s - waited, "awaiting_echo")
        await self._mark(row, "sending")
        body = step["body"]
        body.setdefault("message", {})["metadata"] = send_metadata(row["idem_key"])
        try:
            answer = await self.graph.post("me/messages", body, op="messages", attempts=1)
        except GraphError as exc:
            self.graph_failed(exc, job.psid_hash)
            if exc.token_expired:
                await self._mark(row, "pending")
                await self.set_token(f"expired:{exc.code}")
                raise Retry(self.settings.messenger_retry_max_s, "token_expired") from None
            if exc.uncertain:  # stays "sending": the echo or the wait decides
                raise Retry(self.settings.messenger_echo_wait_s, "uncertain") from None
            if exc.retryable:
                await self._mark(row, "pending")
                raise Retry(self._backoff(job), exc.code) from None
            await self._mark(row, "failed")
            return "failed"
        await self._mark(row, "sent", str(answer.get("message_id") or "sent"))
        if self.token_state != "ok":  # noqa: S105 - a state, not a secret
            await self.set_token("ok")
        return "sent"

    async def _graph_step(self, job: Job, step: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            await self.graph.post(step["path"], step["body"], op=step["op"])
        except GraphError as exc:
            self.graph_failed(exc, job.psid_hash)
            if exc.token_expired:
                await self.set_token(f"expired:{exc.code}")
            return list(step.get("on_fail") or [])
        return list(step.get("on_ok") or [])

    # -- token health -------------------------------------------------------------------------------
    async def check_token(self) -> None:
        """Start-up check: `GET /me` with the Page token; sets `token_expired` on Graph 190/102."""
        if not self.graph.token:
            self._token("not_configured")
            return
        try:
            await self.graph.get("me", op="token_check", attempts=1)
        except GraphError as exc:
            if exc.token_expired:
                log.error("messenger page token refused", extra={"event": {"messenger": "token_expired",
                                                                           "code": exc.code}})
                await self.set_token(f"expired:{exc.code}")
            else:
                log.warning("messenger token check failed", extra={"event": {"messenger": "token_check_failed",
                                                                             "code": exc.code}})
            return
        await self.set_token("ok")

    async def set_token(self, state: str) -> None:
        """Record the token's state for every worker (`/health`, the staff console, a metric)."""
        changed = state != self.token_state
        self._token(state)
        if changed:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.set_status, STATUS_TOKEN,
                                        state if state.startswith("expired") else None)

    def _token(self, state: str) -> None:
        self.token_state = state
        metrics.MESSENGER_TOKEN_EXPIRED.set(1 if state.startswith("expired") else 0)

    def graph_failed(self, exc: GraphError, h: str) -> None:
        """Count and log a failed Graph call by code (never text, never a raw PSID)."""
        metrics.MESSENGER_SEND_FAILURES.labels(exc.code).inc()
        log.warning("messenger graph call failed", extra={"event": {"messenger": "graph_failed", "op": exc.op,
                                                                    "status": exc.status, "code": exc.code,
                                                                    "uncertain": exc.uncertain, "psid": h}})

    # -- shutdown -----------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop claiming; give in-flight events the grace period, then hand the rest back to the queue."""
        self._stopping = True
        self._wake.set()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        tasks = list(self._inflight.values())
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=self.settings.messenger_shutdown_grace_s)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(BaseException):
                    await task
            if late:
                log.info("messenger shutdown", extra={"event": {"messenger": "handed_back", "count": len(late)}})

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the channel is healthy, and what /health shows of it."""
        expired = self.token_state.startswith("expired")
        body: dict[str, Any] = {"token": "token_expired" if expired else self.token_state,
                                "intake": "memory_fallback" if self.fallback_active else "durable",
                                "in_flight": len(self._inflight)}
        try:  # called in a worker thread by /health
            stats = self.store.queue_stats()
            body["open"] = int(stats.get("queued", 0)) + int(stats.get("running", 0))
            body["unsent"] = int(stats.get("outbox_unsent", 0))
        except Exception:
            body["open"] = None
        return not (expired or self.fallback_active), body


def _is_send(row: dict[str, Any]) -> int:
    # Bodies are erased once sent; a delivered message keeps Meta's message id, other steps have none.
    return 1 if row.get("message_id") else 0


def _job(row: dict[str, Any]) -> Job | None:
    try:
        payload = json.loads(row["payload"] or "")
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    return Job(id=row["id"], key=row["key"], psid_hash=row["psid_hash"], payload=payload,
               standby=bool(row["standby"]), event_time=row["event_time"], received_at=row["received_at"],
               attempts=int(row["attempts"]))

