"""The client's address behind trusted proxies (``FLASHSALE_TRUSTED_PROXIES``).

Each proxy appends the address it saw to X-Forwarded-For, so only the entries
to the right are believable: walking from the right, the first entry that is
not one of our proxies is the client. Everything to its left was written by
the client itself. X-Forwarded-For counts only when the socket peer is a
trusted proxy; otherwise (or with no proxies configured) the peer is the client.
Per-IP limits and the rate limit key on this address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from litestar.types import Scope

from flashsale.settings import Network

_HEADER = b"x-forwarded-for"


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a forwarded hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``)."""
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class ClientAddress:
    """Resolves a request's client address; one per worker, built from the settings."""

    def __init__(self, trusted: tuple[Network, ...]) -> None:
        self.trusted = trusted
        # Peers and hops repeat; remember the verdicts (bounded).
        self._is_trusted = lru_cache(maxsize=4096)(self._check)

    def _check(self, text: str) -> bool:
        address = parse_address(text)
        if address is None:
            return False
        return any(address.version == net.version and address in net for net in self.trusted)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else ""
        if not self.trusted or not self._is_trusted(peer):
            return peer
        hops: list[str] = []
        for name, value in scope["headers"]:
            if name == _HEADER:  # several headers are one list, in order
                hops.extend(h.strip() for h in value.decode("latin-1").split(","))
        hops = [h for h in hops if h]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                address = parse_address(hop)
                # a trusted proxy writes a real address; anything else: count the proxy
                return str(address) if address is not None else peer
        # every hop is one of ours: the furthest one is as near the client as we know
        if hops:
            address = parse_address(hops[0])
            if address is not None:
                return str(address)
        return peer
