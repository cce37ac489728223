"""Unit tests for signaling/protocol.py: ICE candidates, nesting, unpaired surrogates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sfu.errors import ErrorCode, SfuError
from signaling.protocol import Message, decode, ice_candidate_field

BROWSER_CANDIDATES = [
    # Chrome: host, mDNS host, srflx, relay, TCP; Firefox: upper-case transport
    "candidate:842163049 1 udp 2122260223 192.168.1.5 54400 typ host generation 0 ufrag Ab/+"
    " network-id 1 network-cost 10",
    "candidate:1840965416 1 udp 2113937151 3f1a9c3e-1234-4abc-8def-1234567890ab.local 54400"
    " typ host generation 0 ufrag abcd network-cost 999",
    "candidate:1 1 udp 1677729535 203.0.113.5 61000 typ srflx raddr 0.0.0.0 rport 0"
    " generation 0 ufrag abcd network-cost 999",
    "candidate:2 1 udp 41885439 198.51.100.9 3478 typ relay raddr 203.0.113.5 rport 61000",
    "candidate:3 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active generation 0",
    "candidate:0 1 UDP 2122252543 2001:db8::5 54321 typ host",
    "candidate:1 1 UDP 1686052863 203.0.113.5 54321 typ srflx raddr 192.168.1.2 rport 54321",
]


def _message(candidate: Any) -> Message:
    return Message("ice_candidate", 1, {"type": "ice_candidate", "pc": "publisher", **candidate})


@pytest.mark.parametrize("text", BROWSER_CANDIDATES)
def test_browser_candidates_are_taken(text: str) -> None:
    candidate = ice_candidate_field(
        _message({"candidate": {"candidate": text, "sdpMid": "0", "sdpMLineIndex": 0}})
    )
    assert candidate is not None
    assert (candidate.sdpMid, candidate.sdpMLineIndex) == ("0", 0)
    assert candidate.ip == text.split()[4]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"candidate": None},
        {"candidate": {"candidate": ""}},
        {"candidate": {"candidate": "candidate:"}},
    ],
)
def test_end_of_candidates(body: dict[str, Any]) -> None:
    assert ice_candidate_field(_message(body)) is None


def test_either_mid_or_index_is_enough() -> None:
    text = BROWSER_CANDIDATES[0]
    by_mid = ice_candidate_field(_message({"candidate": {"candidate": text, "sdpMid": "1"}}))
    assert by_mid is not None and (by_mid.sdpMid, by_mid.sdpMLineIndex) == ("1", None)
    by_index = ice_candidate_field(_message({"candidate": {"candidate": text, "sdpMLineIndex": 2}}))
    assert by_index is not None and (by_index.sdpMid, by_index.sdpMLineIndex) == (None, 2)


@pytest.mark.parametrize(
    "text",
    [
        "candidate:garbage",
        "candidate:1 1 udp 1 192.0.2.1 5000 typ",
        "candidate:1 1 udp 1 192.0.2.1 5000 type host",
        "candidate:1 0 udp 1 192.0.2.1 5000 typ host",
        "candidate:1 1 sctp 1 192.0.2.1 5000 typ host",
        "candidate:1 1 udp 4294967296 192.0.2.1 5000 typ host",
        "candidate:1 1 udp 1 192.0.2.300 5000 typ host",
        "candidate:1 1 udp 1 evil.example 5000 typ host",
        "candidate:1 1 udp 1 192.0.2.1 65536 typ host",
        "candidate:1 1 udp 1 192.0.2.1 5000 typ prflx",
        "candidate:1 1 udp 1 192.0.2.1 5000 typ host raddr",
        "candidate:1 1 udp 1 192.0.2.1 5000 typ srflx raddr x rport 1",
        "candidate:1 1 udp 1 192.0.2.1 5000 typ srflx raddr 192.0.2.2 rport -1",
        "candidate:1 1 tcp 1 192.0.2.1 9 typ host tcptype sideways",
        "candidate:1 1 udp \u0661 192.0.2.1 5000 typ host",  # an Arabic-Indic digit
        "candidate:f\u00f6 1 udp 1 192.0.2.1 5000 typ host",
        "candidate:1 1 udp 1 192.0.2.1 5000 typ host " + "x" * 600,
    ],
)
def test_garbage_is_bad_message(text: str) -> None:
    with pytest.raises(SfuError) as refused:
        ice_candidate_field(_message({"candidate": {"candidate": text, "sdpMid": "0"}}))
    assert refused.value.code is ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    "extra", [{}, {"sdpMid": 0}, {"sdpMid": ""}, {"sdpMLineIndex": True}, {"sdpMLineIndex": 256}]
)
def test_a_candidate_needs_a_usable_mid_or_index(extra: dict[str, Any]) -> None:
    body = {"candidate": {"candidate": BROWSER_CANDIDATES[0], **extra}}
    with pytest.raises(SfuError, match="sdpMid or sdpMLineIndex") as refused:
        ice_candidate_field(_message(body))
    assert refused.value.code is ErrorCode.BAD_MESSAGE


def test_deep_nesting_is_bad_json() -> None:
    raw = '{"type": "ping", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(SfuError, match="nested too deeply") as refused:
        decode(raw, 65536)
    assert refused.value.code is ErrorCode.BAD_JSON


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDFFF", "\\udc80x", "x\\ud83d"])
def test_unpaired_surrogate_is_bad_message(escape: str) -> None:
    raw = '{"type": "join", "token": "ab' + escape + 'cd"}'
    with pytest.raises(SfuError, match="unpaired surrogate") as refused:
        decode(raw, 65536)
    assert refused.value.code is ErrorCode.BAD_MESSAGE


def test_paired_surrogates_and_escaped_backslashes_are_fine() -> None:
    assert decode('{"type": "chat", "text": "\\ud83d\\ude00"}', 65536).body["text"] == "\U0001f600"
    text = decode(json.dumps({"type": "chat", "text": "\\ud800"}), 65536).body["text"]
    assert text == "\\ud800"  # a backslash, then letters: no surrogate at all
