"""One typed `Settings` read from the environment (or `.env`), and the clinic profile from clinic.toml."""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDERS = {"", "changeme", "change-me", "secret", "token", "placeholder", "xxx", "test", "dev"}


class Settings(BaseSettings):
    """Every knob of the service; read once, passed down."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./data")
    knowledge_dir: Path = Path("./knowledge")
    staff_token: SecretStr | None = None
    # A second staff role (issue 16): reviewers approve FAQ entries and clinic details flagged by the safety review.
    # Unset: nobody can approve, so flagged entries wait. Same rules as STAFF_TOKEN (plain, or sha256:<hex>).
    reviewer_token: SecretStr | None = None
    # This service's public address (https://bot.example.org): Messenger's "Source:" lines link to its
    # /articles pages only when it is set, since a Page conversation has no origin to resolve them against.
    public_url: str | None = None
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000", "http://localhost:8000"]
    )
    chroma_host: str | None = None
    chroma_port: int = 8001
    collection: str = "clinic"
    # Secrets: they may hold a password (postgresql://user:pw@..., redis://:pw@...); repr and logs show "**********".
    database_url: SecretStr | None = None
    # int8 ONNX by default: the same all-MiniLM-L6-v2, ~2x faster per query, no torch import at start (the dev
    # and blind evals within one case of torch: README "Speed"); `minilm` keeps the torch build.
    embedding_model: str = "minilm-int8"
    answer_mode: Literal["extractive", "llm"] = "extractive"
    llm_provider: str = "openai"
    llm_model: str = "gemma3"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    # Under REQUEST_TIMEOUT: a slow model must fall back to the extractive answer before the request gives up.
    llm_timeout: float = 8.0
    messenger_verify_token: SecretStr | None = None
    messenger_app_secret: SecretStr | None = None
    messenger_page_access_token: SecretStr | None = None
    graph_api_base: str = "https://graph.facebook.com"
    graph_api_version: str = "v23.0"
    messenger_handover_app_id: str = "263902037430900"
    messenger_handover_minutes: int = 60
    messenger_lapse_hours: int = 24
    redis_url: SecretStr | None = None
    max_message_chars: int = 2000
    # The longest answer body in words (the articles' sentences, before any booking line); a phone screen's worth.
    answer_max_words: int = 60
    max_body_bytes: int = 64 * 1024
    retention_days: int = 30
    session_idle_minutes: int = 120
    request_timeout: float = 15.0
    rate_limit_chat: str = "30/minute"
    rate_limit_search: str = "120/minute"
    # Grounding threshold on the fused retrieval confidence; calibrated by `python -m tools.evaluate`.
    grounded_threshold: float = 0.42
    # A staff FAQ entry answers when the question's cosine to its question or an "applies to" phrase reaches this;
    # calibrated on tests/eval/faq_dev.yaml (README "Staff answers").
    faq_threshold: float = 0.6

    # --- hardening (issue 15): dependency timeouts, client identity, staff log-ins, serving ------------------------
    # The rate limiter talks to Redis asynchronously; past this many seconds a check fails open (and is counted in
    # bot_ratelimit_failures_total), and Redis is left alone for RATE_LIMIT_RETRY_SECONDS before it is tried again.
    rate_limit_timeout: float = 0.25
    rate_limit_retry_seconds: float = 5.0
    # Failed staff log-ins (a wrong or missing bearer token), per client address and for the whole service.
    rate_limit_staff_failures: str = "10/minute"
    rate_limit_staff_failures_global: str = "100/minute"
    # Proxies whose X-Forwarded-For is believed (uvicorn's FORWARDED_ALLOW_IPS: addresses or CIDRs, "*" for any);
    # empty: the socket's peer is the client. IPv6 clients are limited per /64.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds any one call to the vector store (a Chroma server) may take inside a request before the request
    # answers without it; and the budget of each /health check (so /health answers while a dependency hangs).
    index_timeout: float = 2.0
    health_check_timeout: float = 0.03
    # /metrics, /docs, /redoc and /openapi.json: "open", "staff" (bearer STAFF_TOKEN) or "loopback" (127.0.0.1/::1
    # only); unset means open in development and staff in production.
    ops_access: Literal["open", "staff", "loopback"] | None = None
    # Serving (python -m bot serve): connections beyond LIMIT_CONCURRENCY get a 503; idle keep-alive connections
    # close after TIMEOUT_KEEP_ALIVE seconds; a request's headers and body must arrive within
    # REQUEST_READ_TIMEOUT seconds (a slow client is cut off instead of holding a connection).
    limit_concurrency: int | None = 200
    timeout_keep_alive: float = 5.0
    request_read_timeout: float = 10.0
    # On SIGTERM a worker first drains for SHUTDOWN_DRAIN_SECONDS (serves, but /health says 503 and every response
    # closes its connection), then stops taking connections and waits up to GRACEFUL_TIMEOUT for requests in flight.
    shutdown_drain_seconds: float = 1.5
    graceful_timeout: float = 20.0

    # -- Messenger delivery (issue 14): the durable queue, the outbox and the Page profile ---------------------
    # Events older than this (Meta's timestamp) are dropped with a metric, at intake and when resuming.
    messenger_max_event_age_s: float = 3600.0
    # A reply that failed on 5xx/timeouts is retried for as long as Meta's 24-hour messaging window allows.
    messenger_send_window_hours: float = 24.0
    # A worker holds a sender's event this long between heartbeats; a dead worker's events resume after it.
    messenger_lease_s: float = 30.0
    # How many senders one worker serves at once.
    messenger_concurrency: int = 8
    # How often an idle worker looks for work it was not woken for (other workers' intake, retries due).
    messenger_poll_s: float = 0.5
    # Backoff of a failed send: first wait and cap (doubling in between).
    messenger_retry_initial_s: float = 1.0
    messenger_retry_max_s: float = 60.0
    # A send whose answer was lost after the request went out may have reached Meta: wait this long for its
    # echo (message_echoes carries our idempotency key) before sending it again.
    messenger_echo_wait_s: float = 20.0
    # In-flight events get this long at shutdown; the rest go back to the queue for the next worker.
    messenger_shutdown_grace_s: float = 5.0
    # Meta shows either the Get Started button or ice breakers on a new thread, not both.
    messenger_welcome: Literal["get_started", "ice_breakers"] = "get_started"

    @field_validator("allowed_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("chroma_host", "database_url", "redis_url", "llm_base_url", "public_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _known_llm_provider(self) -> Settings:
        # A typo in LLM_PROVIDER stops the start-up here, instead of every reply falling back quietly.
        if self.answer_mode == "llm" and self.llm_provider not in LLM_PROVIDERS:
            raise ValueError(f"Unknown LLM_PROVIDER {self.llm_provider!r}: use {' or '.join(LLM_PROVIDERS)}")
        return self

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.env != "production":
            return self
        bad = [
            name
            for name in ("staff_token",)
            if _is_placeholder(getattr(self, name)) or _weak_staff_token(getattr(self, name))
        ]
        if self.reviewer_token is not None and _weak_staff_token(self.reviewer_token):
            bad.append("reviewer_token")
        # Messenger secrets only matter once the channel is configured at all.
        messenger = ("messenger_verify_token", "messenger_app_secret", "messenger_page_access_token")
        if any(getattr(self, n) is not None for n in messenger):
            bad += [n for n in messenger if _is_placeholder(getattr(self, n))]
        if bad:
            names = ", ".join(n.upper() for n in bad)
            raise ValueError(f"ENV=production refuses unset, placeholder or weak secrets: set {names} (STAFF_TOKEN: "
                             f"at least {STAFF_TOKEN_MIN} random characters, e.g. python3 -c 'import secrets; "
                             f"print(secrets.token_urlsafe(32))', or sha256:<hex digest of one>)")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to SQLite under DATA_DIR."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'bot.sqlite3').resolve()}"

    @property
    def redis_url_value(self) -> str | None:
        """The Redis URL (with any password in it), or None."""
        return self.redis_url.get_secret_value() if self.redis_url is not None else None

    @property
    def reviewer_token_value(self) -> str | None:
        """The reviewer token, or None when it is not configured."""
        value = self.reviewer_token.get_secret_value() if self.reviewer_token else ""
        return value or None

    @property
    def staff_token_value(self) -> str | None:
        """The staff token, or None when it is not configured."""
        value = self.staff_token.get_secret_value() if self.staff_token else ""
        return value or None


LLM_PROVIDERS = ("openai", "ollama")


STAFF_TOKEN_MIN = 32


def _weak_staff_token(secret: SecretStr | None) -> bool:
    """A production staff token must look random: 32+ characters without a repeated unit or few distinct ones
    ("password1234" x 3 is long but guessable), or the SHA-256 of one ("sha256:" + 64 hex digits)."""
    if secret is None:
        return True
    value = secret.get_secret_value().strip()
    if re.fullmatch(r"sha256:[0-9a-fA-F]{64}", value):
        return False
    repeated = re.fullmatch(r"(.+?)\1+", value) is not None
    return len(value) < STAFF_TOKEN_MIN or repeated or len(set(value)) < 12 or value.isalpha()


def _is_placeholder(secret: SecretStr | None) -> bool:
    if secret is None:
        return True
    value = secret.get_secret_value().strip().lower()
    return value in PLACEHOLDERS or len(value) < 12


class ClinicProfile(BaseModel):
    """Facts about the clinic that the bot may state, from knowledge/clinic.toml."""

    name: str
    city: str
    phone: str
    booking_url: str | None = None
    emergency_number: str = "911"
    crisis_number: str = "988"
    disclaimer: str
    greeting: str
    scope: str
    suggested_questions: list[str] = Field(default_factory=list)
    articles_url: str | None = None

    @property
    def phone_e164(self) -> str:
        """The phone as +1XXXXXXXXXX for tel: links and Messenger buttons."""
        digits = re.sub(r"\D", "", self.phone)
        return "+" + (digits if len(digits) > 10 else "1" + digits)


def load_clinic(knowledge_dir: Path) -> ClinicProfile:
    """Read clinic.toml from the knowledge folder."""
    with (knowledge_dir / "clinic.toml").open("rb") as fh:
        data = tomllib.load(fh)
    clinic = data.get("clinic", data)
    if not clinic.get("booking_url"):
        clinic["booking_url"] = None
    return ClinicProfile(**clinic)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
