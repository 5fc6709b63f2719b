"""Which media URLs may be fetched, and at which addresses: the SSRF defence, before any connection.

The RecordingURL comes from a callback: whoever can make one arrive (a leaked auth token, a
replay, a bug) chooses the URL this function fetches from inside the AWS account. So: https only,
no userinfo, a DNS name on the allow-list (IDNA-normalised; IP literals refused in every
spelling), port 443, and every address the name resolves to must be global unicast (no loopback,
private, link-local incl. 169.254.169.254, CGNAT, multicast, reserved, site-local, or those
embedded in IPv6). download.py connects to the vetted addresses themselves, so DNS rebinding
between check and connect cannot swap them. `allow_loopback` exists for the local stack only.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from recording_archive.models.errors import MediaRefusedError, MediaUnavailableError

Resolver = Callable[[str, int], list[str]]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv6 global unicast (RFC 4291 section 2.4; IANA "IPv6 Global Unicast Address Assignments"). The
# ipaddress module's is_global follows IANA's special-purpose registry, which does not list the
# deprecated site-local fec0::/10 (RFC 3879): Python calls fec0::1 global. Nothing outside
# 2000::/3 is a public host address.
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# RFC 6761 section 6.3: names under .localhost are loopback names. glibc resolves `localhost`
# from /etc/hosts but not its sub-domains, so loopback mode resolves them itself.
_LOCALHOST_SUFFIX = ".localhost"
_LOCALHOST_ADDRESS = "127.0.0.1"
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class MediaPolicy:
    # "media.plivo.com" matches that name only; "*.media.plivo.com" any sub-domain (not the apex).
    allowed_hosts: tuple[str, ...]
    # Local development only: http:// and loopback names/addresses become allowed, any port.
    allow_loopback: bool = False
    connect_timeout: float = 3.0
    read_timeout: float = 20.0
    retry_budget: float = 30.0
    max_redirects: int = 3
    basic_auth: tuple[str, str] | None = None  # (auth_id, auth_token)
    max_url_length: int = 2048
    # Local development only (needs allow_loopback): a PEM file of CA certificates trusted in
    # addition to the system's store, for a local HTTPS media server. Deployed: None.
    ca_bundle: str | None = None
    # Largest body archived: a long stereo WAV call is hundreds of MB (about 2 MB a minute).
    max_bytes: int = 2 * 1024 * 1024 * 1024
    # The whole download, from the first request to the last body byte (retries included).
    max_seconds: float = 600.0


@dataclass(frozen=True)
class MediaTarget:
    url: str
    scheme: str
    host: str  # normalised DNS name (or loopback literal in loopback mode)
    port: int
    request_path: str
    addresses: tuple[str, ...]

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _refuse(message: str) -> MediaRefusedError:
    return MediaRefusedError(message)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global unicast only. `is_global` alone lets multicast, site-local and IPv6-embedded IPv4
    through."""
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return _is_public(inner)
        return ip in _GLOBAL_UNICAST_V6 and not ip.is_site_local
    return True


def _is_loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _looks_numeric(host: str) -> bool:
    """IPv4 in any spelling inet_aton accepts (2130706433, 0x7f.1, 0177.0.0.1, 127.1), and any
    name whose last label is numeric (the URL standard parses those as IPv4)."""
    try:
        socket.inet_aton(host)
    except OSError:
        pass
    else:
        return True
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or (
        last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])
    )


def _normalise_host(raw: str) -> str:
    """IDNA-encode, lower-case, strip one trailing dot; refuse anything not a DNS name."""
    host = raw.rstrip(".") if raw.endswith(".") and not raw.endswith("..") else raw
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise _refuse("media URL host is not a valid host name") from exc
    if not ascii_host or len(ascii_host) > 253:
        raise _refuse("media URL host is not a valid host name")
    for label in ascii_host.split("."):
        if (
            not 1 <= len(label) <= 63
            or not set(label) <= _LABEL_CHARS
            or label.startswith("-")
            or label.endswith("-")
        ):
            raise _refuse("media URL host is not a valid host name")
    return ascii_host


def _listed_name(name: str) -> str:
    """An allow-list entry in the form hosts are compared in (IDNA, lower-case, no end dot)."""
    try:
        return _normalise_host(name.strip())
    except MediaRefusedError:
        return name.strip().lower().rstrip(".")


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


class UrlVetter:
    """Applies a `MediaPolicy`'s allow-list and address rules to URLs (redirect targets too)."""

    def __init__(self, policy: MediaPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or _default_resolver
        self._exact = frozenset(
            _listed_name(h) for h in policy.allowed_hosts if not h.startswith("*.")
        )
        self._suffixes = tuple(
            "." + _listed_name(h[2:]) for h in policy.allowed_hosts if h.startswith("*.")
        )

    def check_url(self, url: str) -> None:
        """Raise MediaRefusedError if `url` may not be fetched (MediaUnavailableError if its
        name does not resolve). No connection is made."""
        self.vet(url)

    def _host_allowed(self, host: str, had_idn: bool) -> bool:
        if host in self._exact:
            return True
        if self.policy.allow_loopback and (
            host in _LOOPBACK_NAMES or host.endswith(_LOCALHOST_SUFFIX)
        ):
            return True
        if had_idn:
            # An internationalised name must equal a listed name exactly: a wildcard must not
            # let a look-alike through.
            return False
        return any(host.endswith(s) and len(host) > len(s) for s in self._suffixes)

    def vet(self, url: str) -> MediaTarget:
        """The URL's parts and vetted addresses, or MediaRefusedError / MediaUnavailableError."""
        scheme, raw_host, port, request_path = self._parse(url)
        host, literal = self._classify_host(raw_host)
        addresses = self._vetted_addresses(host, literal, port)
        local = self.policy.allow_loopback and all(
            _is_loopback(ipaddress.ip_address(a)) for a in addresses
        )
        if scheme == "http" and not local:
            raise _refuse("media URL scheme must be https")
        if port != 443 and not local:
            raise _refuse("media URL port must be 443")
        return MediaTarget(url, scheme, host, port, request_path, addresses)

    def _parse(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host as written, port, path?query); refuses before any name lookup."""
        policy = self.policy
        if len(url) > policy.max_url_length:
            raise _refuse("media URL is too long")
        if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
            raise _refuse("media URL contains whitespace, control characters or backslashes")
        try:
            parts = urlsplit(url)
            port_value = parts.port
        except ValueError as exc:
            raise _refuse("media URL cannot be parsed") from exc
        scheme = parts.scheme.lower()
        if scheme != "https" and not (scheme == "http" and policy.allow_loopback):
            raise _refuse("media URL scheme must be https")
        if "@" in parts.netloc:
            raise _refuse("media URL must not contain user information")
        port = port_value if port_value is not None else (443 if scheme == "https" else 80)
        if port != 443 and not policy.allow_loopback:
            raise _refuse("media URL port must be 443")
        path = parts.path or "/"
        if not path.isascii() or not parts.query.isascii():
            raise _refuse("media URL path must be ASCII (percent-encoded)")
        if not parts.hostname:
            raise _refuse("media URL has no host")
        return scheme, parts.hostname, port, path + (f"?{parts.query}" if parts.query else "")

    def _classify_host(
        self, raw_host: str
    ) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
        """The normalised host, and its address if it is an (allowed loopback) IP literal."""
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        try:
            literal = ipaddress.ip_address(raw_host)
        except ValueError:
            literal = None
        if literal is not None:
            # IP literals: refused, except loopback literals in loopback mode.
            if not (self.policy.allow_loopback and _is_loopback(literal)):
                raise _refuse("media URL host must be a name, not an IP address")
            host, had_idn = literal.compressed, False
        else:
            if raw_host.startswith("[") or ":" in raw_host:
                raise _refuse("media URL host is not a valid host name")
            host = _normalise_host(raw_host)
            had_idn = not raw_host.isascii() or "xn--" in host
            if _looks_numeric(host):
                raise _refuse("media URL host must be a name, not an IP address")
        if not self._host_allowed(host, had_idn):
            raise _refuse("media URL host is not on the allow-list")
        return host, literal

    def _vetted_addresses(
        self,
        host: str,
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
        port: int,
    ) -> tuple[str, ...]:
        """Resolve `host`; every address must be public (or loopback in loopback mode)."""
        if literal is not None:
            return (literal.compressed,)
        if self.policy.allow_loopback and host.endswith(_LOCALHOST_SUFFIX):
            return (_LOCALHOST_ADDRESS,)
        try:
            addresses = self._resolver(host, port)
        except OSError as exc:
            raise MediaUnavailableError("media host name does not resolve") from exc
        if not addresses:
            raise MediaUnavailableError("media host name does not resolve")
        vetted: list[str] = []
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError as exc:
                raise _refuse("media host resolved to an invalid address") from exc
            if not (_is_public(ip) or (self.policy.allow_loopback and _is_loopback(ip))):
                raise _refuse("media host resolves to a non-public address")
            vetted.append(ip.compressed)
        return tuple(vetted)
