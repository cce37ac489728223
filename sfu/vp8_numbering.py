"""Vp8Numbering: one subscriber's VP8 picture ids and TL0 indexes, continuous.

A Consumer restarts its stream at a keyframe (after a pause, or on another
simulcast layer, which numbers its pictures on its own), and may drop the
upper temporal layers. The subscriber's decoder must see picture ids and
TL0PICIDX run on without jumps or holes, so they are mapped here, going
on from the last ones forwarded (sfu/sequence_map.py closes the holes).
"""

from __future__ import annotations

from sfu.sequence_map import NumberMap
from sfu.vp8 import Vp8Descriptor, rewrite


class Vp8Numbering:
    def __init__(self) -> None:
        self.pictures: NumberMap | None = None  # None: the stream has no picture ids
        self._tl0: NumberMap | None = None
        self._last_pid = -1
        self._last_tl0 = -1

    def restart(self, desc: Vp8Descriptor | None) -> None:
        """The stream restarts at a keyframe with this descriptor (None: not VP8)."""
        if desc is None or desc.picture_id is None:
            self.pictures = self._tl0 = None
            return
        modulus = 1 << desc.picture_id_bits
        self.pictures = NumberMap(modulus)
        first = desc.picture_id if self._last_pid < 0 else (self._last_pid + 1) % modulus
        self.pictures.reset(desc.picture_id, first)
        if desc.tl0 is not None:
            self._tl0 = NumberMap(0x100)
            first_tl0 = desc.tl0 if self._last_tl0 < 0 else (self._last_tl0 + 1) & 0xFF
            self._tl0.reset(desc.tl0, first_tl0)
        else:
            self._tl0 = None

    def drop(self, desc: Vp8Descriptor) -> None:
        """A packet not forwarded (an upper temporal layer): its picture leaves no hole."""
        if desc.start and self.pictures is not None and desc.picture_id is not None:
            self.pictures.drop(desc.picture_id)

    def rewrite(self, payload: bytes, desc: Vp8Descriptor) -> bytes | None:
        """``payload`` with its picture id and TL0 index mapped (None: too old to send)."""
        pid = tl0 = None
        if desc.picture_id is not None and self.pictures is not None:
            pid = self.pictures.map(desc.picture_id)
            if pid is None:
                return None
            if desc.start:
                self._last_pid = pid
        if desc.tl0 is not None and self._tl0 is not None:
            tl0 = self._tl0.map(desc.tl0)
            if tl0 is not None:
                self._last_tl0 = tl0
        if pid == desc.picture_id and tl0 == desc.tl0:
            return payload
        return rewrite(payload, desc, pid, tl0)
