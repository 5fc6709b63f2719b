"""MediaSource over real HTTP against the scripted media server on loopback: retries, faults,
redirects and credentials. Names (media.test, cdn.test, evil.test) resolve to 127.0.0.1 through
an injected resolver, so the Host header, the allow-list and the redirect rules are exercised as
with real names; a fake clock keeps the retry budget deterministic and the tests fast.

One module (over 500 lines): every case shares the server, resolver and clock fixtures above.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from recording_archive.dal.media import MediaPolicy, MediaSource, Resolver
from recording_archive.models.errors import (
    MediaIntegrityError,
    MediaRefusedError,
    MediaUnavailableError,
)
from tests.support.media_client import FakeClock, drain
from tests.support.media_server import (
    Chunked,
    Drip,
    ErrorBody,
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
from tests.support.net import free_port

AUTH = ("MAXXXXXXXXXXXXXXXXXX", "auth-token-1")


def resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.fixture
def other() -> Iterator[MediaServer]:
    with MediaServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def source(clock: FakeClock, *, resolve: Resolver = resolver, **kw: object) -> MediaSource:
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
        resolver=resolve,
        sleep=clock.sleep,
        clock=clock,
    )


def url(server: MediaServer, path: str, host: str = "media.test") -> str:
    return f"http://{host}:{server.port}{path}"


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


# --- bounds: size, time, error bodies, addresses, pools -----------------------------------------
def test_declared_length_over_the_size_limit_is_refused_before_reading(
    media: MediaServer, clock: FakeClock
) -> None:
    media.add("/r.mp3", GeneratedBody(2 * 1024 * 1024))
    with (
        pytest.raises(MediaRefusedError, match="larger than the limit of 1048576 bytes"),
        source(clock, max_bytes=1024 * 1024).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert len(media.requests) == 1  # a refusal: not retried
    # At the limit exactly, the same body is served whole.
    with source(clock, max_bytes=2 * 1024 * 1024).open(url(media, "/r.mp3")) as stream:
        assert drain(stream)[0] == 2 * 1024 * 1024


def test_undeclared_length_over_the_size_limit_stops_mid_stream(
    media: MediaServer, clock: FakeClock
) -> None:
    media.add("/r.mp3", GeneratedBody(3 * 1024 * 1024), faults=[Chunked(times=None)])
    with source(clock, max_bytes=1024 * 1024).open(url(media, "/r.mp3")) as stream:
        assert stream.content_length is None
        with pytest.raises(MediaRefusedError, match="larger than the limit"):
            drain(stream)
        assert stream.bytes_read <= 2 * 1024 * 1024  # stopped near the limit, not at the end
    body = media.add("/ok.mp3", GeneratedBody(900_000, seed=4), faults=[Chunked(times=None)])
    with source(clock, max_bytes=1024 * 1024).open(url(media, "/ok.mp3")) as stream:
        assert drain(stream) == (body.size, body.sha256_hex)


def test_a_host_that_drips_is_stopped_at_the_total_time_limit(
    media: MediaServer, clock: FakeClock
) -> None:
    # 1 KiB every 50 ms never trips the 5 s read timeout; only the total limit ends it.
    media.add("/r.mp3", GeneratedBody(1024 * 1024), faults=[Drip(every=0.05, times=None)])
    started = time.monotonic()
    with (
        pytest.raises(MediaUnavailableError, match=r"time limit of 0\.6 s") as info,
        source(clock, read_timeout=5.0, max_seconds=0.6).open(url(media, "/r.mp3")) as stream,
    ):
        drain(stream)
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 3
    assert info.value.retryable
    assert len(media.requests) == 1  # a body had started: not retried within this attempt


def test_total_time_limit_bounds_the_retries_too(media: MediaServer, clock: FakeClock) -> None:
    media.add("/r.mp3", b"audio", faults=[Status(503, times=None)])
    with (
        pytest.raises(MediaUnavailableError, match="HTTP 503"),
        source(clock, retry_budget=30.0, max_seconds=5.0).open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert sum(clock.sleeps) <= 5.0


def test_a_short_error_body_is_read_and_its_connection_reused(
    media: MediaServer, clock: FakeClock
) -> None:
    media.add("/r.mp3", b"audio", faults=[ErrorBody(404, 2000, times=2)])
    with source(clock).open(url(media, "/r.mp3")) as stream:
        assert stream.read(10) == b"audio"
    assert len(media.requests) == 3
    assert media.connections == 1


def test_a_long_error_body_is_not_read_its_connection_is_closed(
    media: MediaServer, clock: FakeClock
) -> None:
    size = 64 * 1024 * 1024
    media.add("/r.mp3", b"audio", faults=[ErrorBody(503, size)])
    with source(clock).open(url(media, "/r.mp3")) as stream:
        assert stream.read(10) == b"audio"
    assert len(media.requests) == 2
    assert media.connections == 2  # the 503's connection was dropped, not drained
    # Only what the socket buffers took. The server thread records a chunk once its write
    # returns: a write still blocked (or failed) when the client closed is not counted yet, so
    # the key may be absent; a drained body would have counted nearly all of it by now.
    assert media.bytes_sent.get("/r.mp3", 0) < size // 2


def test_each_vetted_address_is_tried_in_turn(media: MediaServer, clock: FakeClock) -> None:
    body = media.add("/r.mp3", GeneratedBody(10_000))
    dead = free_port()

    def two_addresses(host: str, port: int) -> list[str]:
        return ["::1", "127.0.0.1"]  # the server listens on 127.0.0.1 only

    src = source(clock, resolve=two_addresses, retry_budget=0)
    with src.open(url(media, "/r.mp3")) as stream:
        assert drain(stream) == (body.size, body.sha256_hex)
    assert clock.sleeps == []  # the second address served the first attempt
    with (
        pytest.raises(MediaUnavailableError, match="connection failed"),
        src.open(f"http://media.test:{dead}/r.mp3"),
    ):
        pytest.fail("opened")


def test_connection_pools_are_bounded_least_recently_used_first(
    media: MediaServer, clock: FakeClock
) -> None:
    media.add("/r.mp3", b"audio")
    src = source(clock, allowed_hosts=("*.pool.test",))

    def fetch(name: str) -> None:
        with src.open(url(media, "/r.mp3", host=f"{name}.pool.test")) as stream:
            assert stream.read(10) == b"audio"

    names = [f"h{i}" for i in range(10)]  # one pool per host name
    for name in names:
        fetch(name)
    assert media.connections == 10
    fetch("h9")  # most recent: its pool and connection are kept
    assert media.connections == 10
    fetch("h0")  # least recent: evicted (and closed) when the ninth pool came
    assert media.connections == 11


def test_time_used_up_before_the_body_stops_before_reading(
    media: MediaServer, clock: FakeClock
) -> None:
    media.add("/r.mp3", b"audio")

    def slow_dns(host: str, port: int) -> list[str]:
        time.sleep(0.2)  # the lookup alone outlasts the download's whole time
        return ["127.0.0.1"]

    src = source(clock, resolve=slow_dns, max_seconds=0.1)
    with (
        pytest.raises(MediaUnavailableError, match=r"time limit of 0\.1 s"),
        src.open(url(media, "/r.mp3")),
    ):
        pytest.fail("opened")
    assert len(media.requests) == 1
