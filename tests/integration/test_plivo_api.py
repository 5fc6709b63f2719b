"""PlivoApi against the fake Plivo REST API over loopback HTTP: paging, windows, faults, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from recording_archive.dal.plivo_api import (
    MAX_WINDOW,
    PlivoApi,
    PlivoApiError,
    PlivoAuthError,
    PlivoNotFoundError,
    PlivoUnavailableError,
    recording_id_from_url,
    windows,
)
from tests.support.fake_plivo_api import AUTH_ID, AUTH_TOKEN, FakePlivoApi
from tests.support.net import free_port


@pytest.fixture
def fake() -> Iterator[FakePlivoApi]:
    with FakePlivoApi() as server:
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(fake: FakePlivoApi, sleeps: Sleeps | None = None, **kwargs: object) -> PlivoApi:
    return PlivoApi(
        AUTH_ID,
        AUTH_TOKEN,
        base_url=fake.base_url,
        sleep=sleeps if sleeps is not None else Sleeps(),
        **kwargs,  # type: ignore[arg-type]
    )


def test_lists_every_page_of_20_with_status_all(fake: FakePlivoApi) -> None:
    now = datetime.now(UTC)
    made = {
        fake.add_session(created=now - timedelta(minutes=i + 1)).session_uuid for i in range(45)
    }
    fake.add_session(created=now - timedelta(days=3))  # outside the window

    got = list(client(fake).list_sessions(now - timedelta(hours=2), now))

    assert {s["session_uuid"] for s in got} == made
    assert len(got) == 45
    lists = fake.requests_to("/Masking/Session/")
    assert [r.query["offset"] for r in lists] == [["0"], ["20"], ["40"]]
    assert all(r.query["limit"] == ["20"] and r.query["status"] == ["all"] for r in lists)
    assert all(r.authorized for r in lists)


def test_a_window_longer_than_30_days_is_split(fake: FakePlivoApi) -> None:
    now = datetime.now(UTC)
    made = {fake.add_session(created=now - timedelta(days=d)).session_uuid for d in (5, 40, 70, 89)}
    got = [s["session_uuid"] for s in client(fake).list_sessions(now - timedelta(days=90), now)]
    assert sorted(got) == sorted(made)
    assert len(fake.requests_to("/Masking/Session/")) == 3  # 90 days = 3 windows of 30


def test_windows_cover_the_range_without_gaps() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    parts = windows(start, start + timedelta(days=61))
    assert parts[0][0] == start and parts[-1][1] == start + timedelta(days=61)
    assert all(b - a <= MAX_WINDOW for a, b in parts)
    assert all(parts[i][1] == parts[i + 1][0] for i in range(len(parts) - 1))
    assert windows(start, start) == [(start, start)]
    with pytest.raises(ValueError, match="ends before"):
        windows(start, start - timedelta(seconds=1))


def test_429_honours_retry_after(fake: FakePlivoApi) -> None:
    session = fake.add_session()
    fake.fail(429, retry_after="2", path_contains=session.session_uuid)
    sleeps = Sleeps()
    got = client(fake, sleeps).get_session(session.session_uuid)
    assert got.session_uuid == session.session_uuid
    assert len(sleeps) == 1 and sleeps[0] >= 2
    assert len(fake.requests_to(session.session_uuid)) == 2


def test_retry_after_beyond_the_limit_fails_at_once(fake: FakePlivoApi) -> None:
    session = fake.add_session()
    fake.fail(429, retry_after="3600")
    sleeps = Sleeps()
    with pytest.raises(PlivoUnavailableError, match="retry after 3600"):
        client(fake, sleeps).get_session(session.session_uuid)
    assert sleeps == []


def test_5xx_is_retried_then_succeeds(fake: FakePlivoApi) -> None:
    session = fake.add_session()
    fake.fail(503, times=2)
    sleeps = Sleeps()
    assert client(fake, sleeps).get_session(session.session_uuid).status == "expired"
    assert len(sleeps) == 2


def test_5xx_retries_are_bounded(fake: FakePlivoApi) -> None:
    session = fake.add_session()
    fake.fail(500, times=10)
    with pytest.raises(PlivoUnavailableError, match="after 3 attempts: HTTP 500") as info:
        client(fake, max_attempts=3).get_session(session.session_uuid)
    assert info.value.status == 500
    assert len(fake.requests_to(session.session_uuid)) == 3


def test_connection_failures_are_bounded() -> None:
    api = PlivoApi(
        AUTH_ID,
        AUTH_TOKEN,
        base_url=f"http://127.0.0.1:{free_port()}",
        sleep=Sleeps(),
        max_attempts=2,
    )
    with pytest.raises(PlivoUnavailableError, match="connection failed"):
        api.get_recording("abc")


def test_wrong_token_is_an_auth_error(fake: FakePlivoApi) -> None:
    api = PlivoApi(AUTH_ID, "wrong-token", base_url=fake.base_url, sleep=Sleeps())
    with pytest.raises(PlivoAuthError, match="HTTP 401"):
        list(api.list_sessions(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC)))
    assert "wrong-token" not in repr(api)


def test_other_4xx_is_an_api_error_with_plivos_message(fake: FakePlivoApi) -> None:
    fake.fail(400)
    with pytest.raises(PlivoApiError, match="HTTP 400: injected fault") as info:
        client(fake).get_recording("abc")
    assert not isinstance(info.value, PlivoUnavailableError)


def test_session_with_interactions_and_recording(fake: FakePlivoApi) -> None:
    session = fake.add_session()
    rec = fake.add_recording(session, "http://127.0.0.1:1/rec.wav", fmt="wav", duration_ms=34100)
    fake.add_unrecorded_call(session)
    api = client(fake)

    got = api.get_session(session.session_uuid)
    assert [i.recording_id for i in got.interactions] == [rec.recording_id, None]
    assert got.interactions[0].type == "call"

    recording = api.get_recording(rec.recording_id)
    assert recording.recording_url == "http://127.0.0.1:1/rec.wav"
    assert recording.recording_format == "wav"
    assert recording.recording_duration_ms == 34100
    assert recording.call_uuid == rec.call_uuid
    assert recording.recording_start_ms is not None


def test_unknown_session_and_deleted_recording_are_not_found(fake: FakePlivoApi) -> None:
    session = fake.add_session()
    rec = fake.add_recording(session, "http://127.0.0.1:1/a.mp3")
    api = client(fake)
    with pytest.raises(PlivoNotFoundError):
        api.get_session("00000000-0000-0000-0000-000000000000")
    api.delete_recording(rec.recording_id)
    assert fake.deleted == [rec.recording_id]
    with pytest.raises(PlivoNotFoundError):
        api.delete_recording(rec.recording_id)
    with pytest.raises(PlivoNotFoundError):
        api.get_recording(rec.recording_id)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://api.plivo.com", "must be https"),
        ("ftp://127.0.0.1", "absolute https URL"),
        ("not a url", "absolute https URL"),
    ],
)
def test_base_url_must_be_https_except_loopback(base_url: str, message: str) -> None:
    with pytest.raises(PlivoApiError, match=message):
        PlivoApi(AUTH_ID, AUTH_TOKEN, base_url=base_url)


def test_ids_that_could_change_the_path_are_refused(fake: FakePlivoApi) -> None:
    api = client(fake)
    for bad in ("../Call", "a/b", "", "x?y=1"):
        with pytest.raises(PlivoApiError, match="invalid"):
            api.get_recording(bad)
    with pytest.raises(PlivoApiError, match="invalid auth id"):
        PlivoApi("MA/../x", AUTH_TOKEN)
    with pytest.raises(PlivoAuthError, match="no Plivo auth token"):
        PlivoApi(AUTH_ID, "")
    assert fake.requests == []


def test_recording_id_from_url() -> None:
    assert recording_id_from_url("https://api.plivo.com/v1/Account/MA1/Recording/abc-1/") == "abc-1"
    assert recording_id_from_url("https://api.plivo.com/v1/Account/MA1/Recording/abc") == "abc"
    assert recording_id_from_url("https://api.plivo.com/v1/Account/MA1/Call/abc/") is None
    assert recording_id_from_url(None) is None
    assert recording_id_from_url("") is None


def test_a_recording_without_recording_url_is_an_error(fake: FakePlivoApi) -> None:
    api = client(fake)
    fake.fail(200, path_contains="Recording")  # a 200 whose JSON body is not a recording
    with pytest.raises(PlivoApiError, match="no recording_url"):
        api.get_recording("abc")
