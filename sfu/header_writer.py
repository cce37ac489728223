"""HeaderWriter: the RTP header of every packet a Consumer sends its subscriber.

The header extensions are the subscriber's negotiated ids: the
transport-wide sequence number's slot first (stamped as the packet leaves,
sfu/transport_sender.py), then the mid, then abs-send-time (video) or the
audio level (audio, copied from the publisher's packet).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sfu.media import MediaKind
from sfu.rtp import RtpPacket, abs_send_time, build_header

if TYPE_CHECKING:
    from sfu.consumer import OutboundParams


class HeaderWriter:
    def __init__(self) -> None:
        self._head = b""  # the elements every packet starts with (transport-cc slot, mid)
        self._ast_header = 0  # abs-send-time element header (0: not negotiated)
        self._level_header = 0  # audio level element header (0: not negotiated)

    def bind(self, params: OutboundParams, kind: MediaKind) -> None:
        head = b""
        if params.transport_cc_ext is not None:
            head = bytes(((params.transport_cc_ext << 4) | 1, 0, 0))
        if params.mid_ext is not None:
            mid = params.mid.encode()
            head += bytes([(params.mid_ext << 4) | (len(mid) - 1)]) + mid
        self._head = head
        if params.abs_send_time_ext is not None and kind is MediaKind.VIDEO:
            self._ast_header = (params.abs_send_time_ext << 4) | 2
        if params.audio_level_ext is not None and kind is MediaKind.AUDIO:
            self._level_header = params.audio_level_ext << 4

    def packet(
        self,
        packet: RtpPacket,
        payload: bytes,
        payload_type: int,
        out_seq: int,
        out_ts: int,
        ssrc: int,
        send_time: bytes,
        level_ext: int | None,
    ) -> bytes:
        """The packet as sent: ``packet``'s marker and level, our numbers and extensions."""
        body = self._head
        if self._ast_header:
            body += bytes((self._ast_header,)) + send_time
        if self._level_header:
            level = packet.extensions.get(level_ext) if level_ext is not None else None
            if level:
                body += bytes((self._level_header,)) + level[:1]
        if body:
            pad = -len(body) % 4
            ext = b"\xbe\xde" + (len(body) // 4 + (pad > 0)).to_bytes(2, "big") + body
            if pad:
                ext += b"\x00" * pad
        else:
            ext = b""
        return build_header(packet.marker, payload_type, out_seq, out_ts, ssrc, ext) + payload

    def padding_extensions(self) -> bytes:
        """The extension block of a padding-only packet (empty if none negotiated)."""
        ext = self._head
        if self._ast_header:
            ext += bytes((self._ast_header,)) + abs_send_time(time.time())
        if not ext:
            return b""
        pad = -len(ext) % 4
        return b"\xbe\xde" + ((len(ext) + pad) // 4).to_bytes(2, "big") + ext + bytes(pad)
