"""Unit tests for signaling/connection_limits.py: the caps on unjoined connections."""

from __future__ import annotations

import pytest

from sfu.errors import ErrorCode
from signaling.config import ConfigError, load_config
from signaling.connection_limits import TooManyConnections, UnjoinedConnections, address_key


def test_ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == address_key("fe80::2")
    assert address_key(None) == address_key("") == ""


def test_caps_per_address_and_in_total_and_slots_come_back() -> None:
    caps = UnjoinedConnections(per_address=2, total=3)
    a1, a2 = caps.open("192.0.2.1"), caps.open("192.0.2.1")
    with pytest.raises(TooManyConnections) as per_address:
        caps.open("192.0.2.1")
    assert (per_address.value.status, per_address.value.code) == (
        429,
        ErrorCode.TOO_MANY_CONNECTIONS,
    )
    b1 = caps.open("192.0.2.2")
    with pytest.raises(TooManyConnections) as total:
        caps.open("192.0.2.3")
    assert total.value.status == 503
    a1.release()
    a1.release()  # once only
    assert len(caps) == 2
    caps.open("192.0.2.3")
    for slot in (a2, b1):
        slot.release()
    assert len(caps) == 1
    caps.open("192.0.2.1")
    caps.open("192.0.2.1")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DIGICLINIC_SERVER__MAX_UNJOINED_PER_ADDRESS": "0"}, "max_unjoined_per_address"),
        ({"DIGICLINIC_SERVER__MAX_UNJOINED_CONNECTIONS": "8"}, "max_unjoined_per_address"),
        ({"DIGICLINIC_SERVER__JOIN_TIMEOUT": "0"}, "join_timeout"),
        ({"DIGICLINIC_ROOMS__MAX_ROOMS": "0"}, "max_rooms"),
        ({"DIGICLINIC_ROOMS__MAX_PUBLISHED_TRACKS": "0"}, "max_published_tracks"),
        ({"DIGICLINIC_ROOMS__MAX_MEDIA_SECTIONS": "4"}, "max_published_tracks"),
    ],
)
def test_connection_and_room_limits_must_make_sense(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(environ=env)
    assert words in str(refused.value)


def test_connection_and_room_limits_from_the_environment() -> None:
    config = load_config(
        environ={
            "DIGICLINIC_SERVER__MAX_UNJOINED_PER_ADDRESS": "4",
            "DIGICLINIC_SERVER__MAX_UNJOINED_CONNECTIONS": "40",
            "DIGICLINIC_SERVER__JOIN_TIMEOUT": "5",
            "DIGICLINIC_ROOMS__MAX_ROOMS": "50",
            "DIGICLINIC_ROOMS__MAX_MEDIA_SECTIONS": "6",
            "DIGICLINIC_ROOMS__MAX_PUBLISHED_TRACKS": "3",
        }
    )
    server, rooms = config.server, config.rooms
    assert (server.max_unjoined_per_address, server.max_unjoined_connections) == (4, 40)
    assert server.join_timeout == 5.0
    assert (rooms.max_rooms, rooms.max_media_sections, rooms.max_published_tracks) == (50, 6, 3)
