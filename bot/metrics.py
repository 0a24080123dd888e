"""Prometheus metrics: counts and latencies only, never message text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("bot_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram("bot_http_request_seconds", "HTTP request latency", ["route"],
                    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
REPLIES = Counter("bot_replies_total", "Replies by kind", ["kind", "channel"])
UNANSWERED = Counter("bot_unanswered_total", "Questions handed off because the articles do not cover them")
EMERGENCIES = Counter("bot_emergencies_total", "Emergency triage replies", ["level"])
RETRIEVAL = Histogram("bot_retrieval_seconds", "Retrieval latency (embedding excluded)",
                      buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1))
INDEX_PASSAGES = Gauge("bot_index_passages", "Passages in the published index", multiprocess_mode="max")
STORE_FAILURES = Counter("bot_store_failures_total", "Database operations that failed", ["op"])
INDEX_FAILURES = Counter("bot_index_failures_total", "Retrievals that failed because the index was unreachable")
LLM_FALLBACKS = Counter("bot_llm_fallbacks_total", "LLM answers replaced by the extractive one", ["reason"])
LLM_DROPPED = Counter("bot_llm_sentences_dropped_total", "LLM sentences dropped by the verifier")
MESSENGER_SEND_FAILURES = Counter("bot_messenger_send_failures_total", "Send API calls that failed", ["code"])
RATE_LIMIT_FAILURES = Counter("bot_ratelimit_failures_total",
                              "Rate-limit checks that failed open (limiter store timed out, errored or was skipped)",
                              ["reason"])
STAFF_AUTH_FAILURES = Counter("bot_staff_auth_failures_total", "Staff requests with a missing or wrong token")
DEPENDENCY_TIMEOUTS = Counter("bot_dependency_timeouts_total", "Calls to a dependency that ran out of time",
                              ["dependency"])

# -- Messenger delivery (issue 14) ------------------------------------------------------------------------------
MESSENGER_EVENTS = Counter("bot_messenger_events_total", "Messenger events by what became of them", ["outcome"])
MESSENGER_SEND_RETRIES = Counter("bot_messenger_send_retries_total", "Sends put back in the outbox to retry",
                                 ["reason"])
MESSENGER_TOKEN_EXPIRED = Gauge("bot_messenger_token_expired", "1 while Meta refuses the Page access token",
                                multiprocess_mode="max")
