"""The cluster client's classification of a connection torn down under a command."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from flashsale.engine.cluster_client import torn_connection


async def test_a_write_on_a_connection_whose_writer_was_taken_is_a_torn_connection() -> None:
    # What a concurrent reinitialize leaves: a connection object without its socket.
    connection = Connection(host="127.0.0.1", port=1)
    with pytest.raises(AttributeError) as caught:
        await connection._send_packed_command([b"PING\\r\\n"])
    assert torn_connection(caught.value)


def test_an_attribute_error_of_our_own_is_not() -> None:
    with pytest.raises(AttributeError) as caught:
        None.writelines  # type: ignore[attr-defined]  # noqa: B018
    assert not torn_connection(caught.value)
    assert not torn_connection(ValueError("not an attribute error"))
