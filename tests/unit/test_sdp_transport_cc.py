"""sdp_edits: transport-cc in publisher answers (the browser's send-side estimator)."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from sfu.sdp_edits import (
    TRANSPORT_CC_URI,
    answer_transport_cc,
    mid_sections,
    offer_transport_cc,
    transport_cc_id,
)

OFFER = """v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=mid:0
a=sendonly
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=mid:1
a=sendonly
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 nack
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
"""

ANSWER = """v=0
o=- 5 6 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0 1
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=recvonly
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=mid:0
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=recvonly
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=mid:1
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack
a=rtcp-fb:96 goog-remb
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
"""


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_answer_accepts_the_offered_extension_and_feedback(eol: str) -> None:
    answer, ext_id = answer_transport_cc(ANSWER.replace("\n", eol), OFFER.replace("\n", eol))
    assert ext_id == 3
    sections = mid_sections(answer)
    for mid in ("0", "1"):
        assert transport_cc_id(sections[mid]) == 3
        assert f"a=extmap:3 {TRANSPORT_CC_URI}{eol}" in sections[mid]
    assert f"a=rtcp-fb:111 transport-cc{eol}" in sections["0"]
    assert f"a=rtcp-fb:96 transport-cc{eol}" in sections["1"]
    assert "97 transport-cc" not in answer  # RTX never had it
    assert answer.count(eol + eol) == 0  # no empty lines


def test_nothing_changes_without_the_offer_asking() -> None:
    offer = OFFER.replace(f"a=extmap:3 {TRANSPORT_CC_URI}\n", "")
    assert answer_transport_cc(ANSWER, offer) == (ANSWER, None)


def test_a_rejected_section_is_left_alone() -> None:
    answer = ANSWER.replace("m=video 9 ", "m=video 0 ")
    edited, ext_id = answer_transport_cc(answer, OFFER)
    assert ext_id == 3
    assert transport_cc_id(mid_sections(edited)["1"]) is None


async def test_aiortc_accepts_the_edited_answer() -> None:
    """The edited answer is still valid SDP for a real offerer (aiortc here)."""
    offerer = RTCPeerConnection()
    answerer = RTCPeerConnection()
    try:
        offerer.addTransceiver("audio", direction="sendonly")
        offerer.addTransceiver("video", direction="sendonly")
        offer = await offerer.createOffer()
        sdp = offer.sdp.replace(
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            f"a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:5 {TRANSPORT_CC_URI}",
        )
        await answerer.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        answer = await answerer.createAnswer()
        edited, ext_id = answer_transport_cc(answer.sdp, sdp)
        assert ext_id == 5
        await offerer.setLocalDescription(offer)
        await offerer.setRemoteDescription(RTCSessionDescription(edited, "answer"))
    finally:
        await offerer.close()
        await answerer.close()


async def test_subscriber_offer_carries_transport_cc_and_aiortc_declines_it() -> None:
    """Offered to every m-section with a free id; aiortc's answer drops it (REMB stays)."""
    server = RTCPeerConnection()
    client = RTCPeerConnection()
    try:
        server.addTransceiver("audio", direction="sendonly")
        server.addTransceiver("video", direction="sendonly")
        offer = await server.createOffer()
        edited = offer_transport_cc(offer.sdp)
        ext_id = transport_cc_id(edited)
        assert ext_id is not None and ext_id not in (1, 2, 3)
        for section in mid_sections(edited).values():
            assert transport_cc_id(section) == ext_id
            assert "transport-cc" in section.split("a=rtcp-fb:", 1)[1]
        assert offer_transport_cc(edited) == edited  # idempotent
        await server.setLocalDescription(offer)
        await client.setRemoteDescription(RTCSessionDescription(edited, "offer"))
        answer = await client.createAnswer()
        assert transport_cc_id(answer.sdp) is None
        await server.setRemoteDescription(answer)
    finally:
        await server.close()
        await client.close()
