"""The one place that picks a free loopback port, for servers and test processes alike."""

from __future__ import annotations

import random
import socket
import sys
import threading
from pathlib import Path

from flashsale.devservers.errors import EmbeddedServerError

HOST = "127.0.0.1"

# Ports handed out by this process: two callers never get the same one before binding.
_HANDED_OUT: set[int] = set()
_PORT_LOCK = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return (49152, 65535) if sys.platform == "darwin" else (32768, 60999)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option as the servers use, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port, preferably below the kernel's ephemeral range.

    A port from bind(0) is an ephemeral one: while its server is down for a restart
    test, any outgoing connection on the machine may take it as a source port and
    the restart fails. Ports in 20000..<ephemeral start> (and below 55536, so a
    cluster bus port would fit too) avoid that; bind(0) is the fallback."""
    low, _ = _ephemeral_range()
    top = min(low, 55536)
    with _PORT_LOCK:
        if top - 20000 >= 1000:
            for _ in range(100):
                port = random.randrange(20000, top)
                if port not in _HANDED_OUT and _port_is_free(port):
                    _HANDED_OUT.add(port)
                    return port
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise EmbeddedServerError("no free loopback port found")
