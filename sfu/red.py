"""RED (RFC 2198) redundant audio: read and retag the blocks of a RED payload.

Chrome sends Opus inside RED when the answer puts ``red/48000/2`` first: each
packet carries the current Opus frame (the *primary*, always the last block)
and a copy of the previous one, so a single lost packet costs no audio. The
SFU never decodes: it checks the block structure once per packet (Producer),
forwards the payload unchanged to subscribers that negotiated RED (retagging
the blocks' payload type where the subscriber numbers Opus differently), and
hands the primary alone to those that did not, and to the recorder.

A header block is 4 bytes, ``F=1 | PT (7) | timestamp offset (14) | length
(10)``; the last header is 1 byte, ``F=0 | PT``; the data blocks follow in
the same order.
"""

from __future__ import annotations

MAX_BLOCKS = 8
"""Redundant blocks accepted in one packet (Chrome sends one, at most two)."""


def primary(payload: bytes, inner_pt: int) -> bytes | None:
    """The primary (newest) block of a RED payload, or None if it is malformed.

    Every block must be of ``inner_pt`` (the publisher's Opus payload type):
    a RED payload that wraps anything else is not forwarded.
    """
    offset = 0
    redundant = 0
    size = len(payload)
    while True:
        if offset >= size:
            return None
        first = payload[offset]
        if first & 0x7F != inner_pt:
            return None
        if not first & 0x80:
            offset += 1
            break
        if offset + 4 > size or redundant == MAX_BLOCKS:
            return None
        redundant += ((payload[offset + 2] & 0x03) << 8) | payload[offset + 3]
        offset += 4
    start = offset + redundant
    if start > size:
        return None
    return payload[start:]


def retag(payload: bytes, inner_pt: int) -> bytes:
    """The same RED payload with every block's payload type set to ``inner_pt``.

    Only for a payload ``primary()`` accepted.
    """
    out = bytearray(payload)
    offset = 0
    while True:
        follows = out[offset] & 0x80
        out[offset] = follows | inner_pt
        if not follows:
            return bytes(out)
        offset += 4
