"""Domain exceptions. handlers/http_errors.py maps them to HTTP answers (no HTTP status here);
no one matches on message text.

Messages are fixed strings written for a client or an operator: they never contain a value taken
from the request (a phone number, a token, a signature).
"""

from __future__ import annotations


class RecordingArchiveError(Exception):
    """Base of every domain error of this package."""


# --- callback rejection (handlers/http_errors.py maps each to its HTTP answer) ----------------
class CallbackRejectedError(RecordingArchiveError):
    code: str = "bad_request"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        # The `Reason` dimension of the CallbackRejected metric: the code, or a finer cause.
        self.reason = reason or self.code


class MalformedBodyError(CallbackRejectedError):
    code = "malformed_body"


class SignatureMissingError(CallbackRejectedError):
    code = "signature_missing"


class SignatureInvalidError(CallbackRejectedError):
    code = "signature_invalid"


class NoAuthTokenError(SignatureInvalidError):
    """No auth token is configured: fail closed, every request is refused."""

    code = "no_auth_token_configured"


class PayloadTooLargeError(CallbackRejectedError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(CallbackRejectedError):
    code = "unsupported_media_type"


class CallbackValidationError(CallbackRejectedError):
    code = "invalid_callback"

    def __init__(self, message: str, fields: list[str], *, reason: str = "") -> None:
        super().__init__(message, reason=reason)
        self.fields = fields


# --- storage -----------------------------------------------------------------------------------
class EventStoreUnavailableError(RecordingArchiveError):
    """The table write failed after the SDK's own retries (throttling, 5xx, timeouts)."""


class FallbackUnavailableError(RecordingArchiveError):
    """The fallback queue could not take the event either."""


class SessionIndexUnavailableError(RecordingArchiveError):
    """The session index (dal/session_index.py) could not be read or written after the SDK's
    retries. The events table stays the record: `recording-archive index rebuild` repairs."""


class NumberKeyUnavailableError(SessionIndexUnavailableError):
    """KMS did not compute a number's HMAC (GenerateMac): the key is missing, disabled, not an
    HMAC key, not granted, or KMS is unreachable."""


# --- archiving ---------------------------------------------------------------------------------
class ArchiveError(RecordingArchiveError):
    """A recording could not be archived this time."""

    retryable: bool = True


class MediaRefusedError(ArchiveError):
    """The RecordingURL (or a redirect) is not allowed: never fetched, never retried."""

    retryable = False


class MediaUnavailableError(ArchiveError):
    """404, 429, 5xx, connection errors or timeouts that outlasted the retry budget."""


class MediaIntegrityError(ArchiveError):
    """The body did not match its Content-Length (truncated or over-long), or was empty."""


class ArchiveConflictError(ArchiveError):
    """An object exists under the key with another size or SHA-256. Never overwritten."""

    retryable = False


class UploadError(ArchiveError):
    """S3 refused or failed the upload (after the upload was aborted)."""


class LifecycleEventsUnavailableError(ArchiveError):
    """EventBridge did not take a lifecycle event (dal/lifecycle_events.py): the call failed after
    the client's retries, or PutEvents answered with a failed entry. An ArchiveError (retryable):
    the archive attempt that could not announce its outcome fails and is retried, so the event
    is published at least once."""
