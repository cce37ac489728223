"""sfu/udp_mux.py: one UDP port, each datagram handed to the connection it belongs to.

Real sockets on loopback; the receivers stand in for aioice's StunProtocol
(the real one runs in tests/functional/test_one_udp_port.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aioice import stun

from sfu.udp_mux import MAX_ADDRESSES, UdpMux


class Receiver:
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []
        self.lost = False

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, (addr[0], addr[1])))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def check(username: str, password: bytes) -> bytes:
    """A STUN Binding request as a browser sends it to the server."""
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    message.attributes["USERNAME"] = username
    message.add_message_integrity(password)
    message.add_fingerprint()
    return bytes(message)


@pytest.fixture
async def mux() -> AsyncIterator[UdpMux]:
    mux = UdpMux(0, 1 << 20)
    await mux.open(["127.0.0.1"])
    yield mux
    mux.close()


def client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


async def test_a_valid_check_names_the_connection_and_its_address_then_carries_media(
    mux: UdpMux,
) -> None:
    a, b = Receiver(), Receiver()
    mux.attach("127.0.0.1", "ufragA", "passwordA", a)
    mux.attach("127.0.0.1", "ufragB", "passwordB", b)
    port = mux.ports()["127.0.0.1"]
    browser_a, browser_b = client(), client()
    browser_a.sendto(b"\x80 not yet known", ("127.0.0.1", port))  # before any check: dropped
    browser_a.sendto(check("ufragA:browser", b"passwordA"), ("127.0.0.1", port))
    browser_b.sendto(check("ufragB:browser", b"passwordB"), ("127.0.0.1", port))
    await settle()
    browser_a.sendto(b"\x80 srtp of a", ("127.0.0.1", port))
    browser_b.sendto(b"\x80 srtp of b", ("127.0.0.1", port))
    await settle()
    assert [d for d, _ in a.datagrams][1:] == [b"\x80 srtp of a"]
    assert [d for d, _ in b.datagrams][1:] == [b"\x80 srtp of b"]
    assert mux.counters.unknown == 1
    browser_a.close()
    browser_b.close()


async def test_a_check_that_does_not_verify_teaches_nothing(mux: UdpMux) -> None:
    """Whoever knows a ufrag (it is in the SDP) still cannot steer a connection's address."""
    a = Receiver()
    mux.attach("127.0.0.1", "ufragA", "passwordA", a)
    port = mux.ports()["127.0.0.1"]
    intruder = client()
    intruder.sendto(check("ufragA:x", b"wrong password"), ("127.0.0.1", port))
    intruder.sendto(check("nobody:x", b"passwordA"), ("127.0.0.1", port))
    cookie = b"\x21\x12\xa4\x42"
    intruder.sendto(
        b"\x00\x01\x00\x00" + cookie + b"garbage that looks like stun", ("127.0.0.1", port)
    )
    await settle()
    intruder.sendto(b"\x80 media", ("127.0.0.1", port))
    await settle()
    assert a.datagrams == []
    assert mux.counters.bad_checks == 3
    assert mux.counters.unknown == 4
    intruder.close()


async def test_an_address_a_connection_sends_to_is_its_own_until_it_closes(mux: UdpMux) -> None:
    a, b = Receiver(), Receiver()
    transport_a = mux.attach("127.0.0.1", "ufragA", "passwordA", a)
    transport_b = mux.attach("127.0.0.1", "ufragB", "passwordB", b)
    port = mux.ports()["127.0.0.1"]
    browser = client()
    transport_a.sendto(b"check to a candidate", browser.getsockname())
    transport_b.sendto(b"the same address, another connection", browser.getsockname())
    await settle()
    assert browser.recv(100) == b"check to a candidate"
    browser.sendto(b"\x80 reply", ("127.0.0.1", port))
    await settle()
    assert [d for d, _ in a.datagrams] == [b"\x80 reply"]  # the first holder keeps it
    assert b.datagrams == []
    transport_a.close()
    await settle()
    assert a.lost
    browser.sendto(b"\x80 after close", ("127.0.0.1", port))
    await settle()
    assert [d for d, _ in a.datagrams] == [b"\x80 reply"]
    # a valid check moves an address to the connection it names
    browser.sendto(check("ufragB:browser", b"passwordB"), ("127.0.0.1", port))
    browser.sendto(b"\x80 now b", ("127.0.0.1", port))
    await settle()
    assert [d for d, _ in b.datagrams][-1] == b"\x80 now b"
    browser.close()


async def test_a_connection_holds_a_bounded_number_of_addresses(mux: UdpMux) -> None:
    transport = mux.attach("127.0.0.1", "ufragA", "passwordA", Receiver())
    for port in range(20000, 20000 + 3 * MAX_ADDRESSES):
        transport.sendto(b"x", ("127.0.0.1", port))
    assert len(transport.addresses) == MAX_ADDRESSES


async def test_a_taken_port_is_an_error_that_names_it() -> None:
    first = UdpMux(0, 1 << 20)
    await first.open(["127.0.0.1"])
    taken = first.ports()["127.0.0.1"]
    second = UdpMux(taken, 1 << 20)
    with pytest.raises(OSError, match=str(taken)):
        await second.open(["127.0.0.1"])
    first.close()
