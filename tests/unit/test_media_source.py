"""URL vetting of MediaSource: what may be fetched, decided before any connection.

A resolver fake stands in for DNS (it records every lookup, so a refusal that should happen before
resolution is shown to make none); a real media server on loopback shows that a refused URL makes
zero requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recording_archive.dal.media import MediaPolicy, MediaSource
from recording_archive.models.errors import MediaRefusedError, MediaUnavailableError
from tests.support.media_server import MediaServer

PUBLIC = "93.184.216.34"
PUBLIC6 = "2606:2800:220:1:248:1893:25c8:1946"
PLIVO = ("media.plivo.com", "*.media.plivo.com")


class FakeResolver:
    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.table.get(host, [PUBLIC])


def make(
    hosts: tuple[str, ...] = PLIVO,
    *,
    loopback: bool = False,
    table: dict[str, list[str]] | None = None,
    **kw: object,
) -> tuple[MediaSource, FakeResolver]:
    resolver = FakeResolver(table)
    policy = MediaPolicy(allowed_hosts=hosts, allow_loopback=loopback, **kw)  # type: ignore[arg-type]
    return MediaSource(policy, resolver=resolver), resolver


# Refused before any name lookup.
REFUSED_BEFORE_DNS = [
    "http://media.plivo.com/r.mp3",
    "ftp://media.plivo.com/r.mp3",
    "file:///etc/passwd",
    "gopher://media.plivo.com/",
    "//media.plivo.com/r.mp3",
    "media.plivo.com/r.mp3",
    "https:///r.mp3",
    "https://127.0.0.1/r.mp3",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/r.mp3",
    "https://93.184.216.34/r.mp3",
    "https://[::1]/r.mp3",
    "https://[fd00::1]/r.mp3",
    "https://[::ffff:127.0.0.1]/r.mp3",
    "https://[fe80::1%25eth0]/r.mp3",
    "https://2130706433/r.mp3",
    "https://0x7f.1/r.mp3",
    "https://0x7f000001/r.mp3",
    "https://0177.0.0.1/r.mp3",
    "https://127.1/r.mp3",
    "https://017700000001/r.mp3",
    "https://media.plivo.123/r.mp3",
    "https://localhost/r.mp3",
    "https://evil.com/r.mp3",
    "https://media.plivo.com.evil.com/r.mp3",
    "https://evilmedia.plivo.com/r.mp3",
    "https://plivo.com/r.mp3",
    "https://media.plivo.com@evil.com/r.mp3",
    "https://user:pw@media.plivo.com/r.mp3",
    "https://user@media.plivo.com/r.mp3",
    "https://@media.plivo.com/r.mp3",
    "https://evil.com#@media.plivo.com/r.mp3",
    "https://evil.com?@media.plivo.com/r.mp3",
    "https://evil.com\\@media.plivo.com/r.mp3",
    "https://media.plivo.com\\.evil.com/r.mp3",
    "https://med\u0456a.plivo.com/r.mp3",  # Cyrillic small letter i (U+0456)
    "https://xn--meda-n9d.plivo.com/r.mp3",  # its punycode spelling
    "https://aps1.med\u0456a.plivo.com/r.mp3",
    "https://\u0430ps1.media.plivo.com/r.mp3",  # Cyrillic a (U+0430), wildcard
    "https://xn--ps1-5cd.media.plivo.com/r.mp3",  # punycode under the wildcard
    "https://media.plivo.com:8443/r.mp3",
    "https://media.plivo.com:80/r.mp3",
    "https://media.plivo.com:0/r.mp3",
    "https://media.plivo.com:99999/r.mp3",
    "https://media.plivo.com:abc/r.mp3",
    "https://media.plivo.com/" + "a" * 2100,
    "https://media.plivo.com/r .mp3",
    "https://media.plivo.com/r\n.mp3",
    "https://media.plivo.com/r\t.mp3",
    " https://media.plivo.com/r.mp3",
    "https://media.plivo.com/r\x00.mp3",
    "https://media.plivo.com/rec/\u00e9.mp3",
    "https://media..plivo.com/r.mp3",
    "https://a_b.media.plivo.com/r.mp3",
    "https://-a.media.plivo.com/r.mp3",
    "https://" + "a" * 64 + ".media.plivo.com/r.mp3",
    "https://[media.plivo.com]/r.mp3",
    "",
]


@pytest.mark.parametrize("url", REFUSED_BEFORE_DNS)
def test_refused_without_a_lookup(url: str) -> None:
    source, resolver = make()
    with pytest.raises(MediaRefusedError):
        source.check_url(url)
    assert resolver.calls == []


# Names on the list that resolve to an address no download may reach.
NON_PUBLIC = [
    ["127.0.0.1"],
    ["127.8.9.10"],
    ["10.1.2.3"],
    ["172.16.0.1"],
    ["192.168.1.1"],
    ["169.254.169.254"],
    ["169.254.0.1"],
    ["100.64.0.1"],
    ["100.127.255.254"],
    ["0.0.0.0"],
    ["224.0.0.1"],
    ["239.255.255.250"],
    ["240.0.0.1"],
    ["255.255.255.255"],
    ["192.0.0.1"],
    ["198.18.0.1"],
    ["::1"],
    ["::"],
    ["fe80::1"],
    ["fe80::1%eth0"],
    ["fc00::1"],
    ["fd12:3456::1"],
    ["fec0::1"],  # site-local (RFC 3879): ipaddress calls it global
    ["fec0:0:0:ffff::1"],
    ["feff:ffff::1"],  # the top of fec0::/10
    ["2001:db8::1"],  # documentation
    ["100::1"],  # discard-only
    ["4000::1"],  # outside global unicast 2000::/3 (unassigned)
    ["ff02::1"],
    ["::ffff:127.0.0.1"],
    ["::ffff:169.254.169.254"],
    ["::ffff:10.0.0.1"],
    ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
    ["2002:a00:1::1"],  # 6to4 of 10.0.0.1
    [PUBLIC, "10.0.0.1"],  # any one bad address refuses the name
    [PUBLIC6, "fd00::1"],
    ["not-an-address"],
]


@pytest.mark.parametrize("addresses", NON_PUBLIC, ids=",".join)
def test_names_resolving_to_non_public_addresses_are_refused(addresses: list[str]) -> None:
    source, resolver = make(table={"media.plivo.com": addresses})
    with pytest.raises(MediaRefusedError):
        source.check_url("https://media.plivo.com/v1/Account/MA1/Recording/r.mp3")
    assert resolver.calls == [("media.plivo.com", 443)]


@pytest.mark.parametrize("address", [PUBLIC6, "2a05:d018:1::1", "2600:1f18::1", "3fff:ffff::1"])
def test_global_unicast_ipv6_is_public(address: str) -> None:
    # The other side of the site-local fix: real global addresses (AWS ranges, the top of
    # 2000::/3) still pass.
    source, _ = make(table={"media.plivo.com": [address]})
    source.check_url("https://media.plivo.com/r.mp3")


ALLOWED = [
    "https://media.plivo.com/v1/Account/MAXXXX/Recording/abc.mp3",
    "https://aps1.media.plivo.com/v1/Account/MAXXXX/Recording/abc.wav",
    "https://a.b.media.plivo.com/r.mp3",
    "https://MEDIA.Plivo.COM./r.mp3",
    "https://media.plivo.com:443/r.mp3",
    "https://media.plivo.com/r.mp3?token=abc&x=1",
    "https://media.plivo.com/r.mp3#fragment",
    "https://media.plivo.com",
]


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed(url: str) -> None:
    source, resolver = make(table={"media.plivo.com": [PUBLIC, PUBLIC6]})
    source.check_url(url)
    assert len(resolver.calls) == 1
    host, port = resolver.calls[0]
    assert port == 443
    assert host == host.lower()
    assert not host.endswith(".")


def test_wildcard_allows_sub_domains_but_not_the_apex() -> None:
    source, _ = make(("*.media.plivo.com",))
    source.check_url("https://aps1.media.plivo.com/r.mp3")
    source.check_url("https://x.y.media.plivo.com/r.mp3")
    with pytest.raises(MediaRefusedError):
        source.check_url("https://media.plivo.com/r.mp3")
    with pytest.raises(MediaRefusedError):
        source.check_url("https://xmedia.plivo.com/r.mp3")


def test_exact_name_does_not_allow_sub_domains() -> None:
    source, _ = make(("media.plivo.com",))
    source.check_url("https://media.plivo.com/r.mp3")
    with pytest.raises(MediaRefusedError):
        source.check_url("https://aps1.media.plivo.com/r.mp3")


def test_listed_internationalised_name_matches_in_both_spellings() -> None:
    source, resolver = make(("bücher.example",))
    source.check_url("https://bücher.example/r.mp3")
    source.check_url("https://xn--bcher-kva.example/r.mp3")
    source.check_url("https://BÜCHER.example/r.mp3")
    assert [h for h, _ in resolver.calls] == ["xn--bcher-kva.example"] * 3
    with pytest.raises(MediaRefusedError):
        source.check_url("https://bucher.example/r.mp3")


def test_url_length_limit_is_the_policys() -> None:
    source, _ = make(max_url_length=40)
    source.check_url("https://media.plivo.com/" + "a" * 16)
    with pytest.raises(MediaRefusedError, match="too long"):
        source.check_url("https://media.plivo.com/" + "a" * 17)


def test_name_that_does_not_resolve_is_unavailable_not_refused() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    source = MediaSource(MediaPolicy(allowed_hosts=PLIVO), resolver=failing)
    with pytest.raises(MediaUnavailableError):
        source.check_url("https://media.plivo.com/r.mp3")
    source, _ = make(table={"media.plivo.com": []})
    with pytest.raises(MediaUnavailableError):
        source.check_url("https://media.plivo.com/r.mp3")


def test_refusal_messages_never_echo_the_url() -> None:
    source, _ = make()
    with pytest.raises(MediaRefusedError) as info:
        source.check_url("https://user:secret-token@media.plivo.com/r.mp3")
    assert "secret-token" not in str(info.value)


# --- loopback mode (the local stack) -----------------------------------------------------------
LOOPBACK_ALLOWED = [
    "http://127.0.0.1:8080/r.mp3",
    "http://localhost:8080/r.mp3",
    "http://[::1]:8080/r.mp3",
    "https://127.0.0.1/r.mp3",
    "http://media.test:9000/r.mp3",  # a listed name that resolves to loopback
    "https://media.localhost:8443/r.mp3",  # RFC 6761 loopback names, resolved without DNS
    "http://aps1.media.localhost:9000/r.mp3",
]
LOOPBACK_REFUSED = [
    "http://127.0.0.2:8080/r.mp3",  # a loopback literal that is not listed
    "http://10.0.0.1/r.mp3",
    "http://169.254.169.254/latest/meta-data/",
    "http://2130706433:8080/r.mp3",
    "http://0x7f.1:8080/r.mp3",
    "http://public.test/r.mp3",  # http to a public address
    "https://public.test:8443/r.mp3",  # another port on a public address
    "http://private.test/r.mp3",
    "http://user:pw@127.0.0.1:8080/r.mp3",
    "http://evil.test:8080/r.mp3",  # not listed, even though it resolves to loopback
]
LOOPBACK_TABLE = {
    "localhost": ["127.0.0.1", "::1"],
    "media.test": ["127.0.0.1"],
    "public.test": [PUBLIC],
    "private.test": ["10.0.0.1"],
    "evil.test": ["127.0.0.1"],
}


@pytest.mark.parametrize("url", LOOPBACK_ALLOWED)
def test_loopback_mode_allows_loopback_targets(url: str) -> None:
    source, _ = make(
        ("media.test", "public.test", "private.test"), loopback=True, table=LOOPBACK_TABLE
    )
    source.check_url(url)


@pytest.mark.parametrize("url", LOOPBACK_REFUSED)
def test_loopback_mode_refuses_everything_else(url: str) -> None:
    source, _ = make(
        ("media.test", "public.test", "private.test"), loopback=True, table=LOOPBACK_TABLE
    )
    with pytest.raises(MediaRefusedError):
        source.check_url(url)


def test_localhost_sub_domains_resolve_to_loopback_without_a_lookup() -> None:
    source, resolver = make(("media.test",), loopback=True)  # the fake would answer PUBLIC
    source.check_url("https://media.localhost:8443/r.mp3")
    assert resolver.calls == []
    # Outside loopback mode a .localhost name is an ordinary name: not listed, refused; and
    # when listed, resolved and vetted like any other (no loopback shortcut).
    strict, strict_resolver = make(("media.localhost",), table={"media.localhost": ["127.0.0.1"]})
    with pytest.raises(MediaRefusedError, match="non-public"):
        strict.check_url("https://media.localhost/r.mp3")
    assert strict_resolver.calls == [("media.localhost", 443)]
    with pytest.raises(MediaRefusedError, match="allow-list"):
        make()[0].check_url("https://media.localhost/r.mp3")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/r.mp3", "http://localhost:8080/r.mp3", "http://[::1]/r.mp3"]
)
def test_loopback_is_refused_outside_loopback_mode(url: str) -> None:
    source, _ = make(("localhost", "127.0.0.1", "::1"), table=LOOPBACK_TABLE)
    with pytest.raises(MediaRefusedError):
        source.check_url(url)


# --- a refused URL makes no request ------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[MediaServer]:
    with MediaServer() as srv:
        srv.add("/r.mp3", b"ID3 audio")
        yield srv


def test_refused_urls_make_zero_requests(server: MediaServer) -> None:
    port = server.port
    strict, _ = make(("media.test",), table={"media.test": ["127.0.0.1"]})
    loopback, _ = make(("media.test",), loopback=True, table={"media.test": ["127.0.0.1"]})
    cases = [
        (strict, f"http://127.0.0.1:{port}/r.mp3"),
        (strict, f"https://media.test:{port}/r.mp3"),
        (strict, "https://media.test/r.mp3"),  # resolves to loopback
        (strict, f"http://media.test:{port}/r.mp3"),
        (loopback, f"http://2130706433:{port}/r.mp3"),
        (loopback, f"http://user:pw@127.0.0.1:{port}/r.mp3"),
        (loopback, f"http://media.test@127.0.0.1:{port}/r.mp3"),
        (loopback, f"http://127.0.0.2:{port}/r.mp3"),
        (loopback, f"ftp://127.0.0.1:{port}/r.mp3"),
    ]
    for source, url in cases:
        with pytest.raises(MediaRefusedError), source.open(url):
            pytest.fail("opened a refused URL")
    assert server.requests == []
    # The same server answers an allowed URL: the refusals above were not a dead server.
    with loopback.open(f"http://media.test:{port}/r.mp3") as stream:
        assert stream.read(100) == b"ID3 audio"
    assert len(server.requests) == 1


# --- the CA bundle is for loopback mode only --------------------------------------------------
def test_ca_bundle_without_loopback_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="local stack only"):
        MediaSource(MediaPolicy(allowed_hosts=PLIVO, ca_bundle="/etc/ssl/certs/ca.pem"))
    MediaSource(MediaPolicy(allowed_hosts=PLIVO, allow_loopback=True, ca_bundle="/x.pem"))
