"""Settings from the environment, and the auth secret's parsing (fail closed)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)
from pydantic import ValidationError

from recording_archive.config import ArchiveSettings, CallbackSettings
from recording_archive.dal.auth_secret import (
    PlivoCredentials,
    SecretUnavailableError,
    load_credentials,
)


class FakeProvider:
    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error

    def get(self, name: str, **kwargs: Any) -> Any:
        if self.error:
            raise self.error
        return self.value


def test_settings_read_upper_case_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_TABLE_NAME", "events")
    monkeypatch.setenv("AUTH_SECRET_ID", "secret")
    monkeypatch.setenv("FALLBACK_QUEUE_URL", "https://sqs/q")
    monkeypatch.setenv("RETENTION_DAYS", "30")
    monkeypatch.setenv("PUBLIC_CALLBACK_URL", "")
    s = CallbackSettings.from_env()
    assert (s.events_table_name, s.retention_days, s.public_callback_url) == ("events", 30, "")


def test_public_callback_url_must_be_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_TABLE_NAME", "events")
    monkeypatch.setenv("AUTH_SECRET_ID", "secret")
    monkeypatch.setenv("FALLBACK_QUEUE_URL", "https://sqs/q")
    monkeypatch.setenv("PUBLIC_CALLBACK_URL", "/callbacks/recording")
    with pytest.raises(ValidationError, match="absolute"):
        CallbackSettings.from_env()
    monkeypatch.setenv("PUBLIC_CALLBACK_URL", "https://calls.example.com:8443/cb/")
    assert CallbackSettings.from_env().public_callback_url == "https://calls.example.com:8443/cb/"


def test_missing_resource_name_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTS_TABLE_NAME", raising=False)
    with pytest.raises(ValidationError, match="events_table_name"):
        CallbackSettings.from_env()


def test_archive_settings_split_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "EVENTS_TABLE_NAME": "events",
        "ARCHIVE_BUCKET_NAME": "bucket",
        "ARCHIVE_KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/x",
        "ARCHIVE_BUCKET_OWNER": "123456789012",
        "AUTH_SECRET_ID": "s",
        "EVENT_BUS_NAME": "default",
        "MEDIA_ALLOWED_HOSTS": " Media.Plivo.com, *.media.plivo.com ,",
    }.items():
        monkeypatch.setenv(name, value)
    assert ArchiveSettings.from_env().media_allowed_hosts == (
        "media.plivo.com",
        "*.media.plivo.com",
    )
    monkeypatch.setenv("ARCHIVE_BUCKET_OWNER", "not-an-account")
    with pytest.raises(ValidationError):
        ArchiveSettings.from_env()


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        ({"auth_id": "MA1", "auth_tokens": ["a", "b"]}, ("a", "b")),
        ({"auth_id": "MA1", "auth_tokens": ["a", "", "  "]}, ("a",)),
        ({"auth_id": "MA1", "auth_token": "single"}, ("single",)),
        ({"auth_id": "MA1", "auth_tokens": []}, ()),
        ({"auth_id": "MA1"}, ()),
        ({"auth_tokens": 42}, ()),
        (["not", "an", "object"], ()),
    ],
)
def test_secret_shapes(value: Any, tokens: tuple[str, ...]) -> None:
    creds = load_credentials("s", max_age=0, provider=FakeProvider(value))
    assert creds.auth_tokens == tokens


def test_secret_not_json_refuses_and_unreadable_raises() -> None:
    bad = FakeProvider(error=TransformParameterError("x"))
    assert load_credentials("s", max_age=0, provider=bad) == PlivoCredentials()
    with pytest.raises(SecretUnavailableError):
        load_credentials("s", max_age=0, provider=FakeProvider(error=GetParameterError("x")))


def test_credentials_never_print_tokens() -> None:
    creds = PlivoCredentials(auth_id="MA1", auth_tokens=("super-secret",))
    assert "super-secret" not in repr(creds)
    assert "super-secret" not in str(creds)
