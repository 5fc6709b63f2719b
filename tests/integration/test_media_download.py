"""MediaSource over real HTTP against the scripted media server on loopback: retries, faults,
redirects and credentials. Names (media.test, cdn.test, evil.test) resolve to 127.0.0.1 through
an injected resolver, so the Host header, the allow-list and the redirect rules are exercised as
with real names; a fake clock keeps the retry budget deterministic and the tests fast."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest

from recording_archive.dal.media_source import MediaPolicy, MediaSource, MediaStream
from recording_archive.models.errors import (
    MediaIntegrityError,
    MediaRefusedError,
    MediaUnavailableError,
)
from tests.support.media_server import (
    GeneratedBody,
    MediaServer,
    Redirect,
    Reset,
    Stall,
    Status,
    Truncate,
    WrongLength,
    wav_body,
)
from tests.support.moto_server import free_port

AUTH = ("MAXXXXXXXXXXXXXXXXXX", "auth-token-1")


class FakeClock:
    """time.monotonic and time.sleep in one: sleeping advances the clock, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as srv:
        yield srv


@pytest.fixture
def other() -> Iterator[MediaServer]:
    with MediaServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def source(clock: FakeClock, **kw: object) -> MediaSource:
    policy: dict[str, object] = {
        "allowed_hosts": ("media.test", "cdn.test"),
        "allow_loopback": True,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "retry_budget": 30.0,
    }
    policy.update(kw)
    return MediaSource(
        MediaPolicy(**policy),  # type: ignore[arg-type]
        resolver=resolver,
        sleep=clock.sleep,
        clock=clock,
    )


def url(server: MediaServer, path: str, host: str = "media.test") -> str:
    return f"http://{host}:{server.port}{path}"


def drain(stream: MediaStream) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(256 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def test_streams_the_exact_bytes(media: MediaServer, clock: FakeClock) -> None:
    body = media.add("/r.wav", wav_body(2.0), content_type="audio/wav")
    big = media.add("/big.mp3", GeneratedBody(3 * 1024 * 1024 + 17, seed=5))
    src = source(clock)
    with src.open(url(media, "/r.wav")) as stream:
        assert stream.content_type == "audio/wav"
        assert stream.content_length == body.size
        assert stream.final_url == url(media, "/r.wav")
        assert drain(stream) == (body.size, body.sha256_hex)
        assert stream.read(10) == b""
    with src.open(url(media, "/big.mp3")) as stream:
        assert drain(stream) == (big.size, big.sha256_hex)
    first = media.requests[0]
    assert first.headers["host"] == f"media.test:{media.port}"
    assert first.headers["accept-encoding"] == "identity"
    assert "authorization" not in first.headers
    assert clock.sleeps == []


def test_404_then_200_is_retried(media: MediaServer, clock: FakeClock) -> None:
    body = media.add("/r.mp3", GeneratedBody(50_000), faults=[Status(404, times=3)])
    with source(clock).open(url(media, "/r.mp3")) as stream:
        assert drain(stream) == (body.size, body.sha256_hex)
    assert len(media.requests) == 4
    assert len(clock.sleeps) == 3
    assert all(0 <= s <= 8 for s in clock.sleeps)


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx_then_200_is_retried(media: MediaServer, clock: FakeClock, code: int) -> None:
    body = media.add("/r.mp3", b"audio", faults=[Status(code, times=2)])
    with source(clock).open(url(media, "/r.mp3")) as stream:
        assert stream.read(100) == body.chunks().__next__()
    assert len(media.requests) == 3


def test_persistent_500_gives_up_within_the_budget(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio", faults=[Status(500, times=None)])
    start = clock.now
    with (
        pytest.raises(MediaUnavailableError, match="HTTP 500") as info,
        source(clock, retry_budget=30.0).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert info.value.retryable
    assert clock.now - start <= 30.0
    assert len(media.requests) == len(clock.sleeps) + 1 >= 3


def test_zero_budget_means_one_attempt(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio", faults=[Status(503, times=None)])
    with (
        pytest.raises(MediaUnavailableError),
        source(clock, retry_budget=0).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert len(media.requests) == 1
    assert clock.sleeps == []


def test_429_retry_after_is_honoured(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio", faults=[Status(429, (("Retry-After", "7"),))])
    with source(clock).open(url(media, "/r.mp3")) as stream:
        assert stream.read(10) == b"audio"
    assert clock.sleeps[0] >= 7


def test_429_retry_after_beyond_the_budget_fails_at_once(
    media: MediaServer, clock: FakeClock
) -> None:
    media.add("/r.mp3", b"audio", faults=[Status(429, (("Retry-After", "120"),), times=None)])
    with (
        pytest.raises(MediaUnavailableError, match="429"),
        source(clock, retry_budget=30).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert len(media.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("code", [400, 401, 410, 451])
def test_other_4xx_fail_without_retry(media: MediaServer, clock: FakeClock, code: int) -> None:
    media.add("/r.mp3", b"audio", faults=[Status(code, times=None)])
    with (
        pytest.raises(MediaUnavailableError, match=str(code)),
        source(clock).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert len(media.requests) == 1


def test_truncated_body_is_an_integrity_error(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", GeneratedBody(400_000), faults=[Truncate(100_000)])
    with pytest.raises(MediaIntegrityError), source(clock).open(url(media, "/r.mp3")) as stream:
        drain(stream)
    assert len(media.requests) == 1  # never retried once the body has started


def test_stalled_body_times_out(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", GeneratedBody(400_000), faults=[Stall(100_000, seconds=10)])
    started = time.monotonic()
    with (
        pytest.raises(MediaUnavailableError, match="read timeout"),
        source(clock, read_timeout=0.3).open(url(media, "/r.mp3")) as stream,
    ):
        drain(stream)
    assert time.monotonic() - started < 5


def test_reset_mid_body_is_unavailable(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", GeneratedBody(4_000_000), faults=[Reset(100_000)])
    with (
        pytest.raises(MediaUnavailableError, match="broken"),
        source(clock).open(url(media, "/r.mp3")) as stream,
    ):
        drain(stream)


def test_empty_file_reads_as_empty(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"")
    with source(clock).open(url(media, "/r.mp3")) as stream:
        assert stream.content_length == 0
        assert stream.read(100) == b""


def test_content_length_larger_than_the_body(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", GeneratedBody(300_000), faults=[WrongLength(declared=400_000)])
    with pytest.raises(MediaIntegrityError), source(clock).open(url(media, "/r.mp3")) as stream:
        drain(stream)


def test_content_length_smaller_than_the_body(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", GeneratedBody(600_000), faults=[WrongLength(declared=200_000)])
    with (
        pytest.raises(MediaIntegrityError, match="longer"),
        source(clock).open(url(media, "/r.mp3")) as stream,
    ):
        drain(stream)


def test_connection_refused_is_retried_then_unavailable(clock: FakeClock) -> None:
    port = free_port()
    calls: list[str] = []

    def counting(host: str, p: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    src = MediaSource(
        MediaPolicy(allowed_hosts=("media.test",), allow_loopback=True, retry_budget=10),
        resolver=counting,
        sleep=clock.sleep,
        clock=clock,
    )
    with (
        pytest.raises(MediaUnavailableError, match="connection failed"),
        src.open(f"http://media.test:{port}/r.mp3"),
    ):
        pytest.fail("opened")
    assert len(calls) == len(clock.sleeps) + 1 >= 2  # each attempt re-resolves and re-vets


def test_dns_failure_is_retried(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio")
    answers: list[list[str] | Exception] = [OSError("SERVFAIL"), ["127.0.0.1"]]

    def flaky(host: str, port: int) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    src = MediaSource(
        MediaPolicy(allowed_hosts=("media.test",), allow_loopback=True),
        resolver=flaky,
        sleep=clock.sleep,
        clock=clock,
    )
    with src.open(url(media, "/r.mp3")) as stream:
        assert stream.read(10) == b"audio"
    assert len(clock.sleeps) == 1


# --- credentials -------------------------------------------------------------------------------
def test_basic_auth_is_sent_to_the_media_host(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio", basic_auth=AUTH)
    with source(clock, basic_auth=AUTH).open(url(media, "/r.mp3")) as stream:
        assert stream.read(10) == b"audio"
    assert media.requests[0].authorization == "Basic TUFYWFhYWFhYWFhYWFhYWFhYWFg6YXV0aC10b2tlbi0x"


def test_403_without_configured_auth_says_what_to_do(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio", basic_auth=AUTH)
    with (
        pytest.raises(MediaUnavailableError, match="HTTP Auth on recordings") as info,
        source(clock).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert "MEDIA_AUTH" in str(info.value)
    assert len(media.requests) == 1


def test_403_with_wrong_credentials(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio", basic_auth=AUTH)
    with (
        pytest.raises(MediaUnavailableError, match="refused the credentials") as info,
        source(clock, basic_auth=(AUTH[0], "old-token")).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert "old-token" not in str(info.value)
    assert len(media.requests) == 1


# --- redirects ---------------------------------------------------------------------------------
def test_redirect_to_another_allowed_host_drops_credentials(
    media: MediaServer, other: MediaServer, clock: FakeClock
) -> None:
    body = other.add("/cdn/r.mp3", GeneratedBody(100_000, seed=9))
    target = url(other, "/cdn/r.mp3", host="cdn.test")
    media.add("/r.mp3", b"", faults=[Redirect(target, code=302)])
    with source(clock, basic_auth=AUTH).open(url(media, "/r.mp3")) as stream:
        assert stream.final_url == target
        assert drain(stream) == (body.size, body.sha256_hex)
    assert media.requests[0].authorization is not None
    assert len(other.requests) == 1
    assert other.requests[0].authorization is None
    assert other.requests[0].headers["host"] == f"cdn.test:{other.port}"


def test_relative_redirect_on_the_same_host_keeps_credentials(
    media: MediaServer, clock: FakeClock
) -> None:
    media.add("/r.mp3", b"", faults=[Redirect("/v2/r.mp3", code=301)])
    media.add("/v2/r.mp3", b"audio")
    with source(clock, basic_auth=AUTH).open(url(media, "/r.mp3")) as stream:
        assert stream.read(10) == b"audio"
        assert stream.final_url == url(media, "/v2/r.mp3")
    assert [r.authorization is not None for r in media.requests] == [True, True]


def test_redirect_to_a_host_off_the_list_is_refused(
    media: MediaServer, other: MediaServer, clock: FakeClock
) -> None:
    other.add("/steal", b"secret")
    media.add("/r.mp3", b"", faults=[Redirect(url(other, "/steal", host="evil.test"), times=None)])
    with (
        pytest.raises(MediaRefusedError),
        source(clock, basic_auth=AUTH).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert other.requests == []
    assert len(media.requests) == 1  # a refusal is not retried
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://2130706433/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        "http://user:pw@media.test/",
    ],
)
def test_redirect_to_internal_targets_is_refused(
    media: MediaServer, clock: FakeClock, location: str
) -> None:
    media.add("/r.mp3", b"", faults=[Redirect(location, code=307, times=None)])
    with pytest.raises(MediaRefusedError), source(clock).open(url(media, "/r.mp3")):
        pytest.fail("opened")
    assert len(media.requests) == 1


def test_redirect_limit(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"", faults=[Redirect("/r.mp3", times=None)])
    with (
        pytest.raises(MediaUnavailableError, match="too many"),
        source(clock, max_redirects=3).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert len(media.requests) == 4


def test_redirect_then_404_retries_from_the_original_url(
    media: MediaServer, other: MediaServer, clock: FakeClock
) -> None:
    other.add("/cdn/r.mp3", b"audio", faults=[Status(404)])
    media.add("/r.mp3", b"", faults=[Redirect(url(other, "/cdn/r.mp3", host="cdn.test"), times=2)])
    with source(clock).open(url(media, "/r.mp3")) as stream:
        assert stream.read(10) == b"audio"
    assert len(media.requests) == 2
    assert len(other.requests) == 2
