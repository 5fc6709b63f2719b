"""The layering the package's docstrings promise: logic/ never imports dal/, errors carry no HTTP
status (handlers/http_errors.py decides), the composition root resets everything it caches."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from recording_archive import config
from recording_archive.handlers import http_errors, wiring
from recording_archive.models import errors

PACKAGE = Path(wiring.__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("logic", ("recording_archive.dal", "recording_archive.handlers", "boto3.session")),
        (
            "models",
            ("recording_archive.dal", "recording_archive.logic", "recording_archive.handlers"),
        ),
        ("dal", ("recording_archive.logic", "recording_archive.handlers")),
    ],
)
def test_layers_import_only_downwards(layer: str, forbidden: tuple[str, ...]) -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in (PACKAGE / layer).rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith(forbidden)
    }
    assert offenders == set()


def test_domain_errors_hold_no_http_status() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type)]
    assert classes and not [c.__name__ for c in classes if "status" in vars(c)]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.MalformedBodyError("m"), 400),
        (errors.SignatureMissingError("m"), 401),
        (errors.SignatureInvalidError("m"), 403),
        (errors.NoAuthTokenError("m"), 403),
        (errors.PayloadTooLargeError("m"), 413),
        (errors.UnsupportedMediaTypeError("m"), 415),
        (errors.CallbackValidationError("m", ["SessionUUID"]), 422),
        (errors.CallbackRejectedError("m"), 400),
    ],
)
def test_each_refusal_has_its_status(error: errors.CallbackRejectedError, status: int) -> None:
    answer = http_errors.rejected(error)
    assert answer.status_code == status
    assert answer.body["error"] == error.code


def test_reset_forgets_settings_and_collaborators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_TABLE_NAME", "events")
    assert config.table_settings().events_table_name == "events"
    marker = object()
    wiring.set_callback_dependencies(marker)  # type: ignore[arg-type]
    assert wiring.callback_dependencies() is marker
    wiring.reset()
    assert config.table_settings.cache_info().currsize == 0
    monkeypatch.setenv("EVENTS_TABLE_NAME", "other")
    assert config.table_settings().events_table_name == "other"
    wiring.reset()


@pytest.mark.parametrize(
    ("raw", "auth_id", "tokens"),
    [
        ({"auth_id": "MA1", "auth_tokens": ["a", " ", "b"]}, "MA1", ("a", "b")),
        ({"auth_id": "MA1", "auth_token": "a"}, "MA1", ("a",)),
        (["not", "an", "object"], "", ()),
        ({"auth_id": 5}, "", ()),
    ],
)
def test_the_secret_rule_is_public(raw: object, auth_id: str, tokens: tuple[str, ...]) -> None:
    creds = wiring.parse_credentials(raw)
    assert (creds.auth_id, creds.auth_tokens) == (auth_id, tokens)
