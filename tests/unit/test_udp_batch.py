"""sfu/udp_batch.py and sfu/_sendmmsg.c: batched egress behaves the same compiled or not.

Real sockets on loopback. Every test runs with the compiled sendmmsg and
with the pure-Python twin; the compiled one must be there (``pip install``
builds it), so a broken build fails here instead of quietly falling back.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from sfu import udp_batch
from sfu.udp_batch import FLUSH_AT, BatchedSocket, SendBatch, send_each, send_mmsg

SENDERS = {"sendmmsg": send_mmsg, "python": send_each}


def test_the_compiled_module_was_built() -> None:
    assert udp_batch.compiled_send_batch is not None, "pip install did not build sfu._sendmmsg"
    assert udp_batch.best_sender() is send_mmsg


@pytest.fixture(params=list(SENDERS))
def send(request: pytest.FixtureRequest) -> SendBatch:
    return SENDERS[request.param]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    sender.setblocking(False)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.settimeout(1.0)
    yield sender, receiver
    sender.close()
    receiver.close()


def receive(receiver: socket.socket, count: int) -> list[bytes]:
    return [receiver.recv(2000) for _ in range(count)]


def test_a_batch_arrives_whole_and_in_order(
    send: SendBatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    sender, receiver = pair
    addr = receiver.getsockname()
    packets = [(bytes([i % 256]) * (100 + i), addr) for i in range(150)]  # three sendmmsg calls
    assert send(sender, packets) == 150
    assert receive(receiver, 150) == [data for data, _ in packets]


def test_a_datagram_that_cannot_go_is_dropped_alone(
    send: SendBatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    sender, receiver = pair
    addr = receiver.getsockname()
    refused = ("255.255.255.255", addr[1])  # broadcast without SO_BROADCAST: EACCES
    packets = [(b"first", addr), (b"refused", refused), (b"second", addr)]
    assert send(sender, packets) == 2
    assert receive(receiver, 2) == [b"first", b"second"]


def test_ipv6(send: SendBatch) -> None:
    try:
        receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        receiver.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sender.bind(("::1", 0))
    receiver.settimeout(1.0)
    addr = receiver.getsockname()[:2]
    assert send(sender, [(b"six", addr)]) == 1
    assert receiver.recv(100) == b"six"
    sender.close()
    receiver.close()


def test_a_bad_address_is_an_error_not_a_crash() -> None:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(ValueError, match="not an IPv4 address"):
        send_mmsg(sender, [(b"x", ("not an address", 9))])
    with pytest.raises(TypeError):
        send_mmsg(sender, [(b"x",)])  # type: ignore[list-item]
    sender.close()


async def test_copies_leave_a_few_dozen_at_a_time_and_the_rest_with_the_next_callback(
    send: SendBatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    sender, receiver = pair
    batch = BatchedSocket(sender, send)
    addr = receiver.getsockname()
    for i in range(100):  # one packet's copies for 100 subscribers
        batch.send(b"copy %d" % i, addr)
    # FLUSH_AT at a time, so that the first copies need not wait for the whole fan-out
    assert batch.counters.datagrams == 3 * FLUSH_AT
    await asyncio.sleep(0)  # the rest with the loop's next callback
    assert (batch.counters.batches, batch.counters.datagrams, batch.counters.dropped) == (4, 100, 0)
    assert receive(receiver, 100) == [b"copy %d" % i for i in range(100)]


async def test_a_flush_now_sends_at_once_and_leaves_the_scheduled_one_nothing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The end of one packet's fan-out (sfu/peer.py): its copies need not wait for the loop."""
    sender, receiver = pair
    batch = BatchedSocket(sender)
    addr = receiver.getsockname()
    batch.send(b"one", addr)
    batch.send(b"two", addr)
    batch.flush_queue()
    assert batch.counters.datagrams == 2
    batch.send(b"three", addr)  # the scheduled flush is still pending: it takes this one
    await asyncio.sleep(0)
    assert (batch.counters.batches, batch.counters.datagrams) == (2, 3)
    assert receive(receiver, 3) == [b"one", b"two", b"three"]
