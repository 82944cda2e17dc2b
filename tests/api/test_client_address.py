"""The client's address behind trusted proxies (FLASHSALE_TRUSTED_PROXIES).

Over a real socket (uvicorn in this process on a loopback port, so the peer is
127.0.0.1) for the per-IP limit, and the resolver's rules as a pure unit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from flashsale.api.app import create_app
from flashsale.api.clientip import ClientAddress
from flashsale.engine.engine import Engine
from flashsale.settings import Network

from .conftest import app_settings, bearer
from .helpers import problem


def _nets(*texts: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


@asynccontextmanager
async def serving(redis_url: str, namespace: str, proxies: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app served by uvicorn on 127.0.0.1 with these trusted proxies, and a client to it."""
    settings = app_settings(redis_url, namespace, trusted_proxies=_nets(*proxies.split(",")))
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        proxy_headers=False,  # as `flashsale serve` runs it: the app resolves the header
    )
    # listening before uvicorn runs: early connections wait in the backlog
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            yield client
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.mark.parametrize(
    ("proxies", "forwarded"),
    [
        # behind our proxies the client can't pick its address by writing to the left
        ("127.0.0.1,10.0.0.0/8", "198.51.100.{i}, 203.0.113.5, 10.0.0.7"),
        # proxies configured, but the request did not come from one: the socket peer counts
        ("10.0.0.0/8", "203.0.113.{i}"),
    ],
)
async def test_a_client_cannot_choose_its_address(
    redis_url: str, namespace: str, engine: Engine, proxies: str, forwarded: str
) -> None:
    async with serving(redis_url, namespace, proxies) as client:
        body = {"name": "xff", "sale_id": "xff", "serials": {"range": [1, 10]}}
        body |= {"per_user_limit": 5, "per_ip_limit": 2}
        r = await client.post("/v1/sales", json=body, headers=bearer("ops", admin=True))
        assert r.status_code == 201, r.text
        answers = []
        for i in range(3):
            headers = bearer(f"u{i}") | {"X-Forwarded-For": forwarded.format(i=i)}
            answers.append(await client.post("/v1/sales/xff/purchase", json={}, headers=headers))
        assert [a.status_code for a in answers[:2]] == [201, 201], answers[1].text
        assert problem(answers[2], 409, "limit_reached")["scope"] == "ip"
        if proxies.startswith("127."):  # another client behind the same proxy: its own budget
            headers = bearer("u9") | {"X-Forwarded-For": "203.0.113.6"}
            r = await client.post("/v1/sales/xff/purchase", json={}, headers=headers)
            assert r.status_code == 201, r.text


def _scope(peer: str, *forwarded: str) -> Any:
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return {"client": (peer, 4000), "headers": [(b"host", b"x"), *headers]}


def test_resolver_rules() -> None:
    resolve: Callable[[Any], str] = ClientAddress(_nets("10.0.0.0/8", "::1/128"))
    # no proxies at all: always the peer
    assert ClientAddress(())(_scope("10.0.0.1", "1.2.3.4")) == "10.0.0.1"
    # untrusted peer: the header is the client's own words
    assert resolve(_scope("192.0.2.1", "1.2.3.4")) == "192.0.2.1"
    # a chain of our proxies: the first hop from the right that isn't ours
    assert resolve(_scope("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.9.9.9")) == "1.2.3.4"
    # several headers are one list, in order
    assert resolve(_scope("10.0.0.1", "6.6.6.6", "1.2.3.4", "10.0.0.3")) == "1.2.3.4"
    # ports and brackets, IPv6 peers
    assert resolve(_scope("10.0.0.1", "1.2.3.4:5555")) == "1.2.3.4"
    assert resolve(_scope("::1", "[2001:db8::1]:443")) == "2001:db8::1"
    # every hop is ours: the furthest one
    assert resolve(_scope("10.0.0.1", "10.0.0.9, 10.0.0.8")) == "10.0.0.9"
    # no header, or garbage written by a broken proxy: the proxy itself
    assert resolve(_scope("10.0.0.1")) == "10.0.0.1"
    assert resolve(_scope("10.0.0.1", "1.2.3.4, not-an-address")) == "10.0.0.1"
    assert resolve(_scope("10.0.0.1", " , ")) == "10.0.0.1"
