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
