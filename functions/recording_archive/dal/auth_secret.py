"""The Plivo credentials, from the Secrets Manager secret, through Powertools Parameters (cached).

Secret JSON: {"auth_id": "MA...", "auth_tokens": ["main", "subaccount", "next-rotation"]}.
Several tokens cover the main account (X-Plivo-Signature-Ma-V3), subaccounts and rotation. An
empty list, a missing key or an unreadable secret leaves no token, and then every callback is
refused: the endpoint fails closed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from recording_archive.models.errors import RecordingArchiveError


class SecretUnavailableError(RecordingArchiveError):
    """The secret could not be read now (permissions, throttling, network)."""


class PlivoCredentials(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    auth_id: str = ""
    auth_tokens: tuple[str, ...] = ()

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)):
            return tuple(t for t in value if isinstance(t, str) and t.strip())
        return value

    def __repr__(self) -> str:  # never print a token
        return f"PlivoCredentials(auth_id={self.auth_id!r}, tokens={len(self.auth_tokens)})"

    __str__ = __repr__


def load_credentials(secret_id: str, *, max_age: int, provider: Any = None) -> PlivoCredentials:
    """Read (or take from Powertools' cache) and validate the secret."""
    from aws_lambda_powertools.utilities.parameters.exceptions import (
        GetParameterError,
        TransformParameterError,
    )

    from recording_archive.dal.aws import secrets_provider

    raw: Any
    try:
        raw = (provider or secrets_provider()).get(secret_id, transform="json", max_age=max_age)
    except TransformParameterError:
        return PlivoCredentials()  # not JSON: no usable token, refuse everything
    except GetParameterError as exc:
        raise SecretUnavailableError("auth secret could not be read") from exc
    return parse_credentials(raw)


def parse_credentials(raw: object) -> PlivoCredentials:
    """The secret's rule, for its decoded JSON value (the operator CLI reads it too): anything
    but an object of the documented shape holds no usable token."""
    if not isinstance(raw, dict):
        return PlivoCredentials()
    # A single "auth_token" is accepted too, for operators who paste just one.
    if "auth_tokens" not in raw and "auth_token" in raw:
        raw = {**raw, "auth_tokens": [raw["auth_token"]]}
    try:
        return PlivoCredentials.model_validate(raw)
    except ValidationError:
        return PlivoCredentials()
