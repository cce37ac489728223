"""Edits to SDP text that aiortc does not make: simulcast, codec parameters, RED.

aiortc's SDP model ignores ``a=rid`` and ``a=simulcast`` and writes its own
fmtp lines. The SFU needs a little more on the wire, so these functions read
and edit the text of a description, one m-section at a time, and never
change anything they do not understand.
"""

from __future__ import annotations

import re

_RID = re.compile(r"^a=rid:(\S+) (send|recv)", re.M)
_SIMULCAST = re.compile(r"^a=simulcast:send (\S+)", re.M)
_MID = re.compile(r"^a=mid:(\S+)", re.M)
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/(\d+)", re.M)


def _sections(sdp: str) -> list[str]:
    """The session part, then each m-section, with their line endings."""
    parts = re.split(r"(?=^m=)", sdp, flags=re.M)
    return parts


def _eol(sdp: str) -> str:
    return "\r\n" if "\r\n" in sdp else "\n"


def offered_rids(offer: str) -> dict[str, list[str]]:
    """mid -> rids the client sends, in its ``a=simulcast:send`` order (lowest first)."""
    found: dict[str, list[str]] = {}
    for section in _sections(offer)[1:]:
        mid = _MID.search(section)
        simulcast = _SIMULCAST.search(section)
        if mid is None or simulcast is None:
            continue
        declared = {m.group(1) for m in _RID.finditer(section) if m.group(2) == "send"}
        rids = []
        for alternatives in simulcast.group(1).split(";"):
            rid = alternatives.split(",")[0].lstrip("~")
            if rid in declared and rid not in rids:
                rids.append(rid)
        if len(rids) > 1:
            found[mid.group(1)] = rids
    return found


def answer_simulcast(answer: str, rids: dict[str, list[str]]) -> str:
    """Accept the offered rids: ``a=rid:<id> recv`` and ``a=simulcast:recv`` per m-section."""
    if not rids:
        return answer
    eol = _eol(answer)
    out = []
    for section in _sections(answer):
        mid = _MID.search(section)
        wanted = rids.get(mid.group(1)) if mid else None
        edited = section
        if wanted and section.startswith("m=video"):
            if not edited.endswith(eol):
                edited += eol
            edited += "".join(f"a=rid:{rid} recv{eol}" for rid in wanted)
            edited += f"a=simulcast:recv {';'.join(wanted)}{eol}"
        out.append(edited)
    return "".join(out)


def payload_types(section: str, codec: str) -> list[int]:
    """Payload types of ``codec`` (e.g. "opus", "VP8", "red") in one m-section."""
    return [
        int(m.group(1)) for m in _RTPMAP.finditer(section) if m.group(2).lower() == codec.lower()
    ]


def set_fmtp(sdp: str, codec: str, parameters: dict[str, str]) -> str:
    """Add (or override) fmtp parameters of ``codec`` in every m-section that has it."""
    eol = _eol(sdp)
    out = []
    for original in _sections(sdp):
        section = original
        for pt in payload_types(original, codec):
            pattern = re.compile(rf"^a=fmtp:{pt} ([^\r\n]*)", re.M)
            match = pattern.search(section)
            current: dict[str, str] = {}
            if match:
                for item in match.group(1).strip().split(";"):
                    key, _, value = item.strip().partition("=")
                    if key:
                        current[key] = value
            current.update(parameters)
            line = f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in current.items())
            if match:
                section = section[: match.start()] + line + section[match.end() :]
            else:
                rtpmap = re.search(rf"^a=rtpmap:{pt} [^\r\n]*", section, re.M)
                assert rtpmap is not None
                section = section[: rtpmap.end()] + eol + line + section[rtpmap.end() :]
        out.append(section)
    return "".join(out)


def mid_sections(sdp: str) -> dict[str, str]:
    """mid -> the text of its m-section."""
    found = {}
    for section in _sections(sdp)[1:]:
        mid = _MID.search(section)
        if mid:
            found[mid.group(1)] = section
    return found


# -- RED (sfu/red.py) ------------------------------------------------------------

_FMTP = re.compile(r"^a=fmtp:(\d+) ([^\r\n]*)", re.M)
_MLINE = re.compile(r"^(m=audio [^\r\n]*?)(\r?\n)", re.M)
_CODEC_LINE = re.compile(r"^a=(?:rtpmap|fmtp|rtcp-fb):[^\r\n]*\r?\n", re.M)


def _red_over(section: str, inner_pt: int) -> int | None:
    """The RED payload type of ``section`` whose blocks are all ``inner_pt``."""
    for pt in payload_types(section, "red"):
        fmtp = next((m.group(2) for m in _FMTP.finditer(section) if int(m.group(1)) == pt), "")
        blocks = fmtp.strip().split("/")
        if len(blocks) >= 2 and set(blocks) == {str(inner_pt)}:
            return pt
    return None


def _add_red(section: str, red_pt: int, inner_pt: int, first: bool) -> str:
    """``section`` with RED over ``inner_pt`` added to its formats, first or last."""
    eol = _eol(section)
    mline = _MLINE.search(section)
    assert mline is not None
    parts = mline.group(1).split(" ")
    formats = [p for p in parts[3:] if p != str(red_pt)]
    formats = [str(red_pt), *formats] if first else [*formats, str(red_pt)]
    section = section[: mline.start(1)] + " ".join(parts[:3] + formats) + section[mline.end(1) :]
    codec_lines = list(_CODEC_LINE.finditer(section))
    at = codec_lines[-1].end() if codec_lines else len(section)
    lines = f"a=rtpmap:{red_pt} red/48000/2{eol}a=fmtp:{red_pt} {inner_pt}/{inner_pt}{eol}"
    if at == len(section) and not section.endswith(eol):
        lines = eol + lines
    return section[:at] + lines + section[at:]


def answer_red(answer: str, offer: str) -> tuple[str, dict[str, int]]:
    """Accept the publisher's offered RED over Opus, first in the answer's formats.

    A browser sends the first codec of the answer, so listing RED first makes
    it send redundant audio. Returns the answer and mid -> RED payload type.
    """
    offered = mid_sections(offer)
    accepted: dict[str, int] = {}
    out = []
    for section in _sections(answer):
        mid = _MID.search(section)
        if section.startswith("m=audio") and mid and mid.group(1) in offered:
            opus = payload_types(section, "opus")
            red_pt = _red_over(offered[mid.group(1)], opus[0]) if opus else None
            if red_pt is not None and not payload_types(section, "red"):
                accepted[mid.group(1)] = red_pt
                out.append(_add_red(section, red_pt, opus[0], first=True))
                continue
        out.append(section)
    return "".join(out), accepted


def _used_payload_types(sdp: str) -> set[int]:
    used = {int(m.group(1)) for m in _RTPMAP.finditer(sdp)}
    for mline in re.finditer(r"^m=\S+ \S+ \S+ ([^\r\n]*)", sdp, re.M):
        used.update(int(p) for p in mline.group(1).split() if p.isdigit())
    return used


def offer_red(offer: str, mids: set[str]) -> str:
    """Offer RED over Opus (after the codecs already there) in the audio m-sections ``mids``.

    The payload type is one no m-section of the offer uses (63, as browsers
    number it, when free), so bundled m-sections never disagree about it.
    """
    if not mids:
        return offer
    used = _used_payload_types(offer)
    free = [pt for pt in (63, *range(96, 128), *range(35, 63)) if pt not in used]
    if not free:
        return offer
    out = []
    for section in _sections(offer):
        mid = _MID.search(section)
        if section.startswith("m=audio") and mid and mid.group(1) in mids:
            opus = payload_types(section, "opus")
            if opus and not payload_types(section, "red"):
                out.append(_add_red(section, free[0], opus[0], first=False))
                continue
        out.append(section)
    return "".join(out)


def answered_red(answer: str) -> dict[str, int]:
    """mid -> RED payload type, for the audio m-sections of an answer that kept RED over Opus."""
    found = {}
    for mid, section in mid_sections(answer).items():
        opus = payload_types(section, "opus")
        red_pt = _red_over(section, opus[0]) if opus and section.startswith("m=audio") else None
        if red_pt is not None and not section.startswith("m=audio 0 "):
            found[mid] = red_pt
    return found


# -- transport-wide congestion control (sfu/twcc.py) -----------------------------

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
_EXTMAP = re.compile(r"^a=extmap:(\d+)(?:/\w+)? (\S+)", re.M)
_RTCP_FB = re.compile(r"^a=rtcp-fb:[^\r\n]*", re.M)
_TRANSPORT_CC_FB = re.compile(r"^a=rtcp-fb:(\d+) transport-cc\s*$", re.M)


def transport_cc_id(sdp: str) -> int | None:
    """The extension id the description gives transport-wide sequence numbers (None: absent)."""
    for match in _EXTMAP.finditer(sdp):
        if match.group(2) == TRANSPORT_CC_URI:
            return int(match.group(1))
    return None


def _insert_after_last(section: str, pattern: re.Pattern[str], lines: str) -> str:
    """``section`` with ``lines`` after the last line matching ``pattern`` (else at its end)."""
    eol = _eol(section)
    found = list(pattern.finditer(section))
    if not found:
        body = section if section.endswith(eol) else section + eol
        return body + lines
    end = section.find(eol, found[-1].end())
    end = len(section) if end < 0 else end + len(eol)
    return section[:end] + lines + section[end:]


def answer_transport_cc(answer: str, offer: str) -> tuple[str, int | None]:
    """Accept the publisher's transport-cc: its extmap and ``rtcp-fb transport-cc``.

    aiortc knows neither, so its answer drops both and a browser falls back
    to REMB from the receiver. With them, the browser stamps every packet
    with a transport-wide sequence number and runs its own send-side
    estimator on the server's feedback. Only m-sections whose offer had the
    extension are edited, with the offer's id and payload types. Returns the
    answer and the extension id (None: not offered).
    """
    ext_id = transport_cc_id(offer)
    if ext_id is None:
        return answer, None
    offered = mid_sections(offer)
    eol = _eol(answer)
    out = []
    accepted = False
    for section in _sections(answer):
        mid = _MID.search(section)
        original = offered.get(mid.group(1)) if mid else None
        if (
            original is None
            or transport_cc_id(original) != ext_id
            or re.match(r"m=\S+ 0 ", section)
            or transport_cc_id(section) is not None
        ):
            out.append(section)
            continue
        ours = {int(pt) for pt in re.findall(r"^a=rtpmap:(\d+) ", section, re.M)}
        feedback = "".join(
            f"a=rtcp-fb:{pt} transport-cc{eol}"
            for pt in sorted({int(m.group(1)) for m in _TRANSPORT_CC_FB.finditer(original)})
            if pt in ours
        )
        extmap = f"a=extmap:{ext_id} {TRANSPORT_CC_URI}{eol}"
        edited = _insert_after_last(section, _EXTMAP, extmap)
        if feedback:
            edited = _insert_after_last(edited, _RTCP_FB, feedback)
        accepted = True
        out.append(edited)
    return "".join(out), ext_id if accepted else None


def offer_transport_cc(offer: str) -> str:
    """Offer transport-cc to a subscriber: the extension and its feedback on every codec.

    The id is one no extmap of the offer uses (bundled m-sections share one
    id space). A browser that accepts answers with the same extmap and then
    returns transport feedback for every packet that carries it; a peer that
    does not (aiortc) drops it and keeps sending REMB.
    """
    if transport_cc_id(offer) is not None:
        return offer
    used = {int(m.group(1)) for m in _EXTMAP.finditer(offer)}
    free = next((i for i in range(1, 15) if i not in used), None)
    if free is None:
        return offer
    eol = _eol(offer)
    out = []
    for section in _sections(offer):
        if not re.match(r"m=(audio|video) [1-9]", section):
            out.append(section)
            continue
        codecs = [
            int(m.group(1))
            for m in _RTPMAP.finditer(section)
            if m.group(2).lower() not in ("rtx", "red", "ulpfec")
        ]
        edited = _insert_after_last(section, _EXTMAP, f"a=extmap:{free} {TRANSPORT_CC_URI}{eol}")
        feedback = "".join(f"a=rtcp-fb:{pt} transport-cc{eol}" for pt in codecs)
        out.append(_insert_after_last(edited, _RTCP_FB, feedback) if feedback else edited)
    return "".join(out)
