"""Egress guard for the reliability suites: nothing leaves the machine from a guarded process.

Python imports `sitecustomize` at start-up when it is on sys.path: putting this directory on a
process's PYTHONPATH, with RELIABILITY_EGRESS_LOG naming a file, installs the guard in it (and
in any Python child that inherits both). Then every name lookup (getaddrinfo, gethostbyname,
gethostbyname_ex) and every connect / connect_ex / sendto / sendmsg aimed at a host that is not
loopback (127.0.0.0/8, ::1, IPv4-mapped loopback, the name "localhost") is refused with an
OSError before any packet or DNS query, and appended to the log as one JSON line
{"event": "refused", ...}. Loopback and non-IP sockets (AF_UNIX) pass through. At start-up the
guard appends {"event": "installed", "pid": ...}: proof that the guarded process loaded it.

Without RELIABILITY_EGRESS_LOG this module does nothing (and then, as with it, hands over to
any other `sitecustomize` it shadows).
"""

from __future__ import annotations

import os
import sys

LOG_ENV = "RELIABILITY_EGRESS_LOG"


def is_loopback_host(host: object) -> bool:
    """True for a loopback address or the name "localhost" (also bracketed, with a zone, as
    bytes); any other name, and "127.1"-style spellings, are not loopback."""
    import ipaddress

    if host is None:  # getaddrinfo(None, ...): the local host
        return True
    if isinstance(host, bytes | bytearray):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.split("%", 1)[0]
    if name.rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _install(log_path: str) -> None:
    import errno
    import json
    import socket
    import time

    def log(event: str, **fields: object) -> None:
        line = json.dumps({"event": event, "pid": os.getpid(), "time": time.time(), **fields})
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def refuse(call: str, host: object, port: object, lookup: bool) -> OSError:
        log(
            "refused",
            call=call,
            host=repr(host) if not isinstance(host, str) else host,
            port=port if isinstance(port, int) else repr(port),
        )
        message = f"reliability egress guard: {call} to non-loopback {host!r} refused"
        if lookup:
            return socket.gaierror(socket.EAI_NONAME, message)
        return PermissionError(errno.EACCES, message)

    def ip_family(sock: socket.socket) -> bool:
        return sock.family in (socket.AF_INET, socket.AF_INET6)

    def split(address: object) -> tuple[object, object]:
        if isinstance(address, tuple) and len(address) >= 2:
            return address[0], address[1]
        return address, None

    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_sendmsg = socket.socket.sendmsg

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not is_loopback_host(host):
            raise refuse("getaddrinfo", host, port, lookup=True)
        return original_getaddrinfo(host, port, *args, **kwargs)

    def gethostbyname(host):  # type: ignore[no-untyped-def]
        if not is_loopback_host(host):
            raise refuse("gethostbyname", host, None, lookup=True)
        return original_gethostbyname(host)

    def gethostbyname_ex(host):  # type: ignore[no-untyped-def]
        if not is_loopback_host(host):
            raise refuse("gethostbyname_ex", host, None, lookup=True)
        return original_gethostbyname_ex(host)

    def connect(self, address):  # type: ignore[no-untyped-def]
        if ip_family(self):
            host, port = split(address)
            if not is_loopback_host(host):
                raise refuse("connect", host, port, lookup=False)
        return original_connect(self, address)

    def connect_ex(self, address):  # type: ignore[no-untyped-def]
        if ip_family(self):
            host, port = split(address)
            if not is_loopback_host(host):
                refuse("connect_ex", host, port, lookup=False)
                return errno.EACCES
        return original_connect_ex(self, address)

    def sendto(self, data, *args):  # type: ignore[no-untyped-def]
        if ip_family(self) and args:
            host, port = split(args[-1])
            if not is_loopback_host(host):
                raise refuse("sendto", host, port, lookup=False)
        return original_sendto(self, data, *args)

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):  # type: ignore[no-untyped-def]
        if ip_family(self) and address is not None:
            host, port = split(address)
            if not is_loopback_host(host):
                raise refuse("sendmsg", host, port, lookup=False)
        if address is None:
            return original_sendmsg(self, buffers, ancdata, flags)
        return original_sendmsg(self, buffers, ancdata, flags, address)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign]
    socket.socket.sendmsg = sendmsg  # type: ignore[method-assign]
    log("installed", executable=sys.executable, argv=list(getattr(sys, "argv", []))[:4])


def _chain() -> None:
    """Run the `sitecustomize` this one shadows, if there is one (as Python would have)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None or spec.origin == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


# Only as Python's start-up hook; imported as `reliability.egress_guard.sitecustomize` (for
# `is_loopback_host`), it installs nothing and runs no other hook.
if __name__ == "sitecustomize":
    if os.environ.get(LOG_ENV):
        _install(os.environ[LOG_ENV])
    _chain()
