"""Unit tests for sfu/sdp_edits.py: simulcast rids and fmtp edits on SDP text."""

from __future__ import annotations

import pytest

from sfu.sdp_edits import answer_simulcast, mid_sections, offered_rids, payload_types, set_fmtp

SESSION = """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic: WMS
"""

AUDIO = """m=audio 9 UDP/TLS/RTP/SAVPF 111 63
c=IN IP4 0.0.0.0
a=mid:0
a=sendonly
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
"""

VIDEO_HEAD = """m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99
c=IN IP4 0.0.0.0
a=mid:1
a=sendonly
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:98 VP9/90000
a=fmtp:98 profile-id=0
a=rtpmap:99 rtx/90000
a=fmtp:99 apt=98
"""

CHROME_SIMULCAST = """a=rid:q send
a=rid:h send
a=rid:f send
a=simulcast:send q;h;f
"""


def offer(simulcast: str = CHROME_SIMULCAST, eol: str = "\n") -> str:
    return (SESSION + AUDIO + VIDEO_HEAD + simulcast).replace("\n", eol)


def lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


# --------------------------------------------------------------------------
# offered_rids
# --------------------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_chrome_simulcast_offer(eol: str) -> None:
    assert offered_rids(offer(eol=eol)) == {"1": ["q", "h", "f"]}


def test_rids_in_simulcast_order_not_declaration_order() -> None:
    sdp = offer("a=rid:f send\na=rid:h send\na=rid:q send\na=simulcast:send q;h;f\n")
    assert offered_rids(sdp) == {"1": ["q", "h", "f"]}


def test_rid_restrictions_are_allowed() -> None:
    sdp = offer(
        "a=rid:lo send pt=96;max-width=320\na=rid:hi send max-height=720\na=simulcast:send lo;hi\n"
    )
    assert offered_rids(sdp) == {"1": ["lo", "hi"]}


def test_paused_rids_are_offered_without_the_tilde() -> None:
    sdp = offer(CHROME_SIMULCAST.replace("send q;h;f", "send ~q;h;~f"))
    assert offered_rids(sdp) == {"1": ["q", "h", "f"]}


def test_alternatives_take_the_first() -> None:
    sdp = offer("a=rid:q send\na=rid:x send\na=rid:h send\na=simulcast:send q,x;h\n")
    assert offered_rids(sdp) == {"1": ["q", "h"]}


def test_undeclared_rids_are_left_out() -> None:
    sdp = offer("a=rid:q send\na=rid:f send\na=simulcast:send q;h;f\n")
    assert offered_rids(sdp) == {"1": ["q", "f"]}


def test_recv_rids_are_not_send_rids() -> None:
    sdp = offer("a=rid:q send\na=rid:h recv\na=rid:f send\na=simulcast:send q;h;f\n")
    assert offered_rids(sdp) == {"1": ["q", "f"]}


def test_repeated_rid_counts_once() -> None:
    sdp = offer("a=rid:q send\na=rid:h send\na=simulcast:send q;q;h\n")
    assert offered_rids(sdp) == {"1": ["q", "h"]}


@pytest.mark.parametrize(
    "simulcast",
    [
        "",  # no simulcast at all
        "a=rid:q send\n",  # a rid, no a=simulcast
        "a=rid:q send\na=simulcast:send q\n",  # one rid: not simulcast
        "a=rid:q send\na=simulcast:send q;h;f\n",  # one declared rid
        "a=rid:q recv\na=rid:h recv\na=simulcast:recv q;h\n",  # receive simulcast
    ],
)
def test_not_simulcast(simulcast: str) -> None:
    assert offered_rids(offer(simulcast)) == {}


def test_section_without_mid_is_skipped() -> None:
    sdp = offer().replace("a=mid:1\n", "")
    assert offered_rids(sdp) == {}


def test_several_simulcast_sections() -> None:
    second = VIDEO_HEAD.replace("a=mid:1", "a=mid:2") + (
        "a=rid:lo send\na=rid:hi send\na=simulcast:send lo;hi\n"
    )
    assert offered_rids(offer() + second) == {"1": ["q", "h", "f"], "2": ["lo", "hi"]}


def test_simulcast_line_in_the_session_part_is_ignored() -> None:
    sdp = SESSION + "a=rid:q send\na=rid:h send\na=simulcast:send q;h\n" + AUDIO
    assert offered_rids(sdp) == {}


# --------------------------------------------------------------------------
# answer_simulcast
# --------------------------------------------------------------------------

ANSWER_VIDEO = """m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=mid:1
a=recvonly
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
"""


def answer(eol: str = "\n") -> str:
    return (SESSION + AUDIO.replace("sendonly", "recvonly") + ANSWER_VIDEO).replace("\n", eol)


def test_answer_without_rids_is_unchanged() -> None:
    text = answer()
    assert answer_simulcast(text, {}) is text


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_answer_gets_recv_rids_in_the_video_section(eol: str) -> None:
    original = answer(eol)
    edited = answer_simulcast(original, {"1": ["q", "h", "f"]})
    assert edited.startswith(original)  # nothing before changes
    added = edited[len(original) :]
    assert added == eol.join(["a=rid:q recv", "a=rid:h recv", "a=rid:f recv"]) + eol + (
        "a=simulcast:recv q;h;f" + eol
    )
    sections = mid_sections(edited)
    assert "a=simulcast" not in sections["0"]
    assert sections["1"].endswith("a=simulcast:recv q;h;f" + eol)
    if eol == "\r\n":
        assert "\n" not in edited.replace("\r\n", "")


def test_answer_edits_only_the_sections_named() -> None:
    second = ANSWER_VIDEO.replace("a=mid:1", "a=mid:2")
    third = ANSWER_VIDEO.replace("a=mid:1", "a=mid:3")
    original = answer() + second + third
    edited = answer_simulcast(original, {"2": ["lo", "hi"]})
    before, after = mid_sections(original), mid_sections(edited)
    assert after["0"] == before["0"]
    assert after["1"] == before["1"]
    assert after["3"] == before["3"]
    assert after["2"] == before["2"] + "a=rid:lo recv\na=rid:hi recv\na=simulcast:recv lo;hi\n"


def test_answer_never_puts_simulcast_on_audio() -> None:
    original = answer()
    assert answer_simulcast(original, {"0": ["a", "b"]}) == original


def test_answer_for_an_unknown_mid_is_unchanged() -> None:
    original = answer()
    assert answer_simulcast(original, {"9": ["q", "h"]}) == original


def test_answer_without_a_final_line_end() -> None:
    original = answer("\r\n").removesuffix("\r\n")
    edited = answer_simulcast(original, {"1": ["q", "h"]})
    assert edited == original + "\r\na=rid:q recv\r\na=rid:h recv\r\na=simulcast:recv q;h\r\n"


# --------------------------------------------------------------------------
# payload_types, set_fmtp
# --------------------------------------------------------------------------


def test_payload_types_by_codec_name_any_case() -> None:
    sections = mid_sections(offer())
    assert payload_types(sections["1"], "vp8") == [96]
    assert payload_types(sections["1"], "rtx") == [97, 99]
    assert payload_types(sections["0"], "OPUS") == [111]
    assert payload_types(sections["0"], "VP8") == []


def test_set_fmtp_adds_a_line_after_the_rtpmap() -> None:
    edited = set_fmtp(offer(), "VP8", {"x-google-start-bitrate": "1000"})
    got = lines(edited)
    at = got.index("a=rtpmap:96 VP8/90000")
    assert got[at + 1] == "a=fmtp:96 x-google-start-bitrate=1000"
    assert edited.replace("a=fmtp:96 x-google-start-bitrate=1000\n", "") == offer()


def test_set_fmtp_merges_and_overrides() -> None:
    edited = set_fmtp(offer(), "opus", {"useinbandfec": "1", "usedtx": "1", "minptime": "20"})
    assert "a=fmtp:111 minptime=20;useinbandfec=1;usedtx=1\n" in edited
    assert edited.count("a=fmtp:111") == 1
    assert "a=fmtp:63 111/111\n" in edited  # RED's own line untouched
    assert edited.replace("minptime=20;useinbandfec=1;usedtx=1", "minptime=10;useinbandfec=1") == (
        offer()
    )


def test_set_fmtp_keeps_valueless_parameters_and_spaces_are_trimmed() -> None:
    sdp = offer().replace("a=fmtp:111 minptime=10;useinbandfec=1", "a=fmtp:111 minptime=10; flag")
    edited = set_fmtp(sdp, "opus", {"usedtx": "1"})
    assert "a=fmtp:111 minptime=10;flag=;usedtx=1\n" in edited


def test_set_fmtp_on_every_payload_type_of_the_codec() -> None:
    sdp = offer().replace("96 97 98 99", "96 97 98 99 100") + "a=rtpmap:100 VP8/90000\n"
    edited = set_fmtp(sdp, "VP8", {"x-google-start-bitrate": "800"})
    assert "a=rtpmap:96 VP8/90000\na=fmtp:96 x-google-start-bitrate=800\n" in edited
    assert edited.endswith("a=rtpmap:100 VP8/90000\na=fmtp:100 x-google-start-bitrate=800\n")


def test_set_fmtp_in_every_section_with_the_codec() -> None:
    second = AUDIO.replace("a=mid:0", "a=mid:2")
    edited = set_fmtp(offer() + second, "opus", {"usedtx": "1"})
    sections = mid_sections(edited)
    for mid in ("0", "2"):
        assert "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\n" in sections[mid]
    assert sections["1"] == mid_sections(offer())["1"]


def test_set_fmtp_for_an_absent_codec_is_a_no_op() -> None:
    original = offer()
    assert set_fmtp(original, "H264", {"x-google-start-bitrate": "1000"}) == original


def test_set_fmtp_does_not_confuse_payload_type_prefixes() -> None:
    sdp = (
        offer()
        .replace("a=rtpmap:96 VP8/90000", "a=rtpmap:9 VP8/90000")
        .replace(
            "a=rtpmap:97 rtx/90000\na=fmtp:97 apt=96", "a=rtpmap:97 rtx/90000\na=fmtp:97 apt=9"
        )
    )
    sdp += "a=fmtp:96 unrelated=1\n"
    edited = set_fmtp(sdp, "VP8", {"k": "v"})
    assert "a=rtpmap:9 VP8/90000\na=fmtp:9 k=v\n" in edited
    assert "a=fmtp:96 unrelated=1\n" in edited


@pytest.mark.parametrize(
    ("codec", "parameters"),
    [("opus", {"usedtx": "1"}), ("VP8", {"x-google-start-bitrate": "1000"})],
)
def test_set_fmtp_keeps_crlf(codec: str, parameters: dict[str, str]) -> None:
    edited = set_fmtp(offer(eol="\r\n"), codec, parameters)
    assert "\n" not in edited.replace("\r\n", "")
    assert "\r" not in edited.replace("\r\n", "")


# --------------------------------------------------------------------------
# mid_sections
# --------------------------------------------------------------------------


def test_mid_sections() -> None:
    sections = mid_sections(offer())
    assert list(sections) == ["0", "1"]
    assert sections["0"] == AUDIO
    assert sections["1"] == VIDEO_HEAD + CHROME_SIMULCAST


def test_mid_sections_skip_sections_without_mid_and_the_session() -> None:
    sdp = offer().replace("a=mid:0\n", "")
    assert list(mid_sections(sdp)) == ["1"]
    assert mid_sections(SESSION) == {}
