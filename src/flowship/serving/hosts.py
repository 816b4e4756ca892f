"""The Host-header guard against DNS rebinding.

A server bound to loopback trusts that only this machine can reach it, but a web page can
point a name it controls at 127.0.0.1 and make the visitor's browser call the server
with ``Host: evil.example``. So when bound to loopback, only requests addressed to a
local name are answered (any port); ``allowed_hosts`` overrides the list, and ``*``
turns the check off. A server bound to another interface checks nothing by default.
"""

from __future__ import annotations

import ipaddress

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, configured: tuple[str, ...] | None) -> frozenset[bytes] | None:
    """The Host names to answer, lower-cased, without port; None means any."""
    if configured is not None:
        if "*" in configured:
            return None
        names = configured
    elif is_loopback(bind):
        names = LOCAL_NAMES
    else:
        return None
    return frozenset(name.strip().lower().encode() for name in names)


def host_of(scope: dict) -> bytes | None:
    """The Host header's name, lower-cased and without port; None without a header."""
    for key, value in scope["headers"]:
        if key == b"host":
            value = value.lower()
            if value.startswith(b"["):  # [::1]:5000
                return value[: value.find(b"]") + 1]
            # Not ``b":" in value``: bytes.__contains__ first tries the operand as an int
            # and formats a TypeError, about 1,800 instructions on every request.
            name, colon, _ = value.rpartition(b":")
            return name if colon else value
    return None
