"""RED (RFC 2198) redundant audio: payload parsing (sfu/red.py) and its SDP edits."""

from __future__ import annotations

import pytest

from sfu import red
from sfu.sdp_edits import answer_red, answered_red, mid_sections, offer_red, payload_types
from tests.unit.test_sdp_edits import AUDIO, SESSION

OPUS = 111


def red_payload(blocks: list[bytes], pt: int = OPUS, offsets: list[int] | None = None) -> bytes:
    """A RED payload: ``blocks`` oldest first, the last one primary."""
    offsets = offsets or [960 * (len(blocks) - 1 - i) for i in range(len(blocks))]
    header = b""
    for block, offset in zip(blocks[:-1], offsets, strict=False):
        header += bytes([0x80 | pt]) + ((offset << 10) | len(block)).to_bytes(3, "big")
    header += bytes([pt])
    return header + b"".join(blocks)


# -- payload ------------------------------------------------------------------------


def test_primary_of_one_redundant_block() -> None:
    payload = red_payload([b"old-frame", b"new-frame!"])
    assert red.primary(payload, OPUS) == b"new-frame!"


def test_primary_without_redundancy() -> None:
    assert red.primary(red_payload([b"only"]), OPUS) == b"only"


def test_primary_of_two_redundant_blocks_with_a_long_one() -> None:
    oldest = bytes(range(256)) * 3  # 768 bytes: the length's top two bits are used
    payload = red_payload([oldest, b"older", b"primary"])
    assert red.primary(payload, OPUS) == b"primary"


def test_empty_primary_is_returned_empty() -> None:
    assert red.primary(red_payload([b"old", b""]), OPUS) == b""


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # no header at all
        bytes([0x80 | OPUS, 0, 0]),  # truncated 4-byte header
        bytes([0x80 | OPUS]) + (5).to_bytes(3, "big") + bytes([OPUS]) + b"abc",  # block too long
        bytes([0x80 | OPUS]) * 4,  # headers that never end
        bytes([0x80 | OPUS]) + (0).to_bytes(3, "big") * 0,  # F=1 then nothing
    ],
)
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    assert red.primary(payload, OPUS) is None


def test_blocks_of_another_codec_are_refused() -> None:
    assert red.primary(red_payload([b"a", b"b"], pt=0), OPUS) is None
    mixed = bytes([0x80 | OPUS]) + (1).to_bytes(3, "big") + bytes([0]) + b"ab"
    assert red.primary(mixed, OPUS) is None


def test_too_many_blocks_are_refused() -> None:
    blocks = [b"x"] * (red.MAX_BLOCKS + 2)
    assert red.primary(red_payload(blocks), OPUS) is None
    assert red.primary(red_payload(blocks[: red.MAX_BLOCKS + 1]), OPUS) == b"x"


def test_retag_changes_every_block_type_and_nothing_else() -> None:
    payload = red_payload([b"older", b"old", b"primary"], offsets=[1920, 960])
    retagged = red.retag(payload, 100)
    assert red.primary(retagged, 100) == b"primary"
    assert red.primary(retagged, OPUS) is None
    assert retagged[0] == 0x80 | 100 and retagged[4] == 0x80 | 100 and retagged[8] == 100
    assert retagged[1:4] == payload[1:4] and retagged[5:8] == payload[5:8]
    assert retagged[9:] == payload[9:]


# -- SDP -------------------------------------------------------------------------------

CHROME_AUDIO = AUDIO  # Chromium's offer: Opus 111, RED 63 over it
AIORTC_AUDIO = """m=audio 9 UDP/TLS/RTP/SAVPF 111 0
c=IN IP4 0.0.0.0
a=mid:0
a=recvonly
a=rtpmap:111 opus/48000/2
a=rtpmap:0 PCMU/8000
"""
VIDEO = """m=video 9 UDP/TLS/RTP/SAVPF 97 98
c=IN IP4 0.0.0.0
a=mid:1
a=recvonly
a=rtpmap:97 VP8/90000
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=97
"""


def test_answer_puts_red_first_with_its_lines() -> None:
    answer, accepted = answer_red(SESSION + AIORTC_AUDIO + VIDEO, SESSION + CHROME_AUDIO + VIDEO)
    assert accepted == {"0": 63}
    audio = mid_sections(answer)["0"]
    assert audio.splitlines()[0] == "m=audio 9 UDP/TLS/RTP/SAVPF 63 111 0"
    assert "a=rtpmap:63 red/48000/2\na=fmtp:63 111/111\n" in audio
    assert mid_sections(answer)["1"] == VIDEO
    assert answered_red(answer) == {"0": 63}


def test_answer_keeps_crlf() -> None:
    offer = (SESSION + CHROME_AUDIO).replace("\n", "\r\n")
    answer, _ = answer_red((SESSION + AIORTC_AUDIO).replace("\n", "\r\n"), offer)
    assert "\n" not in answer.replace("\r\n", "")
    assert "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n" in answer


@pytest.mark.parametrize(
    "offered",
    [
        CHROME_AUDIO.replace("a=fmtp:63 111/111", "a=fmtp:63 0/0"),  # RED over another codec
        CHROME_AUDIO.replace("a=fmtp:63 111/111", "a=fmtp:63 111/0"),  # mixed blocks
        CHROME_AUDIO.replace("a=fmtp:63 111/111\n", ""),  # RED without its fmtp
        CHROME_AUDIO.replace(" 63\n", "\n").replace("a=rtpmap:63 red/48000/2\n", ""),  # no RED
    ],
)
def test_answer_without_usable_red_is_unchanged(offered: str) -> None:
    answer = SESSION + AIORTC_AUDIO
    assert answer_red(answer, SESSION + offered) == (answer, {})


def test_offer_adds_red_after_opus_with_a_free_payload_type() -> None:
    offer = offer_red(SESSION + AIORTC_AUDIO.replace("recvonly", "sendonly") + VIDEO, {"0"})
    audio = mid_sections(offer)["0"]
    assert audio.splitlines()[0] == "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 63"
    assert payload_types(audio, "red") == [63]
    assert "a=fmtp:63 111/111" in audio


def test_offer_red_avoids_payload_types_used_in_any_section() -> None:
    video = VIDEO.replace("97 98", "63 98").replace(":97 ", ":63 ").replace("apt=97", "apt=63")
    offer = offer_red(SESSION + AIORTC_AUDIO + video, {"0"})
    assert payload_types(mid_sections(offer)["0"], "red") == [96]


def test_offer_red_only_in_the_mids_named() -> None:
    sdp = SESSION + AIORTC_AUDIO + VIDEO
    assert offer_red(sdp, set()) == sdp
    assert offer_red(sdp, {"1"}) == sdp  # video: no Opus to wrap


def test_answered_red_needs_red_over_the_sections_opus() -> None:
    kept = SESSION + CHROME_AUDIO
    assert answered_red(kept) == {"0": 63}
    assert answered_red(SESSION + AIORTC_AUDIO) == {}
    rejected = kept.replace("m=audio 9 ", "m=audio 0 ")
    assert answered_red(rejected) == {}
