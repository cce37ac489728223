"""Transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01).

Every RTP packet on a transport carries a 16-bit transport-wide sequence number
(header extension :data:`EXT_TRANSPORT_CC`, 2 bytes big-endian); the receiver
answers with RTPFB fmt 15 feedback saying, per sequence number, whether and when
it arrived. The FCI, after the two SSRCs, is::

    base sequence number (16) | packet status count (16)
    reference time (24, signed, x 64 ms) | feedback packet count (8)
    packet chunks (16 bits each) ... | receive deltas ... | padding

Chunks carry 2-bit status symbols (0 not received, 1 received with a 1-byte
unsigned delta, 2 received with a 2-byte signed delta, 3 reserved): a run
length chunk ``0|SS|run(13)`` repeats one symbol, a vector chunk ``1|S|...``
holds 14 one-bit symbols (S=0: only 0 and 1) or 7 two-bit ones (S=1).

Deltas are in 250 us ticks. As libwebrtc does, each received packet's delta is
taken from the previous received packet's *rounded* time (the first from the
reference time), so rounding errors never accumulate beyond 125 us.

Design choices:

* The parser (:func:`parse_transport_feedback`) checks every length before it
  reads and raises :class:`TwccError` on truncated or reserved input, nothing
  else. A vector or run longer than the remaining status count is cut at it;
  bytes after the last delta (zero padding without the P bit) are ignored.
* The encoder works like libwebrtc's: symbols accumulate until they no longer
  fit one chunk; a uniform group becomes a run, 14 symbols without a large
  delta a one-bit vector, otherwise the first 7 a two-bit vector. Only the last
  chunk may be partially filled, so the size of a packet is known exactly
  while it is being filled. Built packets are padded to 32-bit words with the
  P bit set and the pad count in the last byte (RFC 3550), as libwebrtc does.
* :class:`TwccRecorder` (receive side) keeps arrivals in a ring indexed by the
  unwrapped sequence number and covers at most ``max_span`` sequence numbers:
  a jump further ahead skips the window start forward (those numbers are
  never reported), so a long outage cannot grow memory. Packets older than the
  window start (the first number not yet reported) are ignored: the sender
  keeps them as lost. Before the first feedback the start moves back to a
  reordered packet instead. Duplicates keep the first arrival. Feedback is
  split into a new RTCP packet (with its own reference time) when a delta does
  not fit int16 ticks, when the next status would make the packet exceed
  ``max_packet_size`` bytes, or after ``max_statuses`` statuses.
* :class:`SentPacketHistory` (send side) is a power-of-two ring of send records;
  it resolves each sequence number at most once as received (and at most once
  as lost before that) and unwraps the feedback's 24-bit reference time across
  feedbacks so that arrival times stay continuous.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

EXT_TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTPFB_TRANSPORT_CC = 15

Buffer = bytes | bytearray | memoryview

_RTPFB = 205
_HDR = struct.Struct("!BBH")
_FB_HDR = struct.Struct("!IIHHI")  # sender SSRC, media SSRC, base seq, count, ref time | fb count
_FCI_HDR = struct.Struct("!HHI")
_SEQ = struct.Struct("!H")
_LARGE = struct.Struct("!h")

_FIXED_BYTES = 20  # RTCP header, two SSRCs, base seq/status count, reference time/fb count
_TICK_US = 250
_REF_US = 64_000
_REF_WRAP_US = _REF_US << 24
_RUN_MAX = 0x1FFF
_NOT_RECEIVED, _SMALL, _LARGE_DELTA = 0, 1, 2

FEEDBACK_MIN_INTERVAL_S = 0.05
FEEDBACK_MAX_INTERVAL_S = 0.1
FEEDBACK_THIN_INTERVAL_S = 0.25  # ...when less than THIN_UPLINK_BPS arrives
THIN_UPLINK_BPS = 64_000
_FEEDBACK_SHARE = 0.05  # feedback may use ~5 % of the incoming bitrate (libwebrtc)
_FEEDBACK_BITS = 80 * 8  # a typical feedback datagram: IP, UDP, SRTCP, ~30 bytes of RTCP


class TwccError(ValueError):
    pass


@dataclass(slots=True)
class TransportFeedback:
    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    feedback_count: int
    reference_time_us: int
    # (16-bit sequence number, arrival time in us on the feedback's clock or None)
    packets: list[tuple[int, int | None]]


@dataclass(frozen=True, slots=True)
class PacketResult:
    seq: int  # unwrapped transport-wide sequence number
    send_time: float  # seconds, sender's clock
    size: int
    kind: int
    arrival_time: float | None  # seconds, receiver's clock (differences only); None: lost


# -- parsing ---------------------------------------------------------------


def parse_transport_feedback(sender_ssrc: int, media_ssrc: int, fci: Buffer) -> TransportFeedback:
    """Parse the FCI of a transport-cc feedback (from the base sequence number on)."""
    size = len(fci)
    if size < _FCI_HDR.size:
        raise TwccError("truncated transport feedback header")
    base, count, word = _FCI_HDR.unpack_from(fci)
    if count == 0:
        raise TwccError("transport feedback without packet status")
    ref_ticks = word >> 8
    if ref_ticks & 0x800000:
        ref_ticks -= 1 << 24
    symbols: list[int] = []
    pos = _FCI_HDR.size
    while len(symbols) < count:
        if pos + 2 > size:
            raise TwccError("truncated packet status chunks")
        chunk = (fci[pos] << 8) | fci[pos + 1]
        pos += 2
        room = count - len(symbols)
        if not chunk & 0x8000:
            symbols.extend([(chunk >> 13) & 3] * min(chunk & _RUN_MAX, room))
        elif chunk & 0x4000:
            symbols.extend((chunk >> (12 - 2 * i)) & 3 for i in range(min(7, room)))
        else:
            symbols.extend((chunk >> (13 - i)) & 1 for i in range(min(14, room)))
    time_us = ref_us = ref_ticks * _REF_US
    packets: list[tuple[int, int | None]] = []
    for i, symbol in enumerate(symbols):
        seq = (base + i) & 0xFFFF
        if symbol == _NOT_RECEIVED:
            packets.append((seq, None))
            continue
        if symbol == _SMALL:
            if pos >= size:
                raise TwccError("truncated receive deltas")
            time_us += fci[pos] * _TICK_US
            pos += 1
        elif symbol == _LARGE_DELTA:
            if pos + 2 > size:
                raise TwccError("truncated receive deltas")
            delta = (fci[pos] << 8) | fci[pos + 1]
            time_us += (delta - 0x10000 if delta & 0x8000 else delta) * _TICK_US
            pos += 2
        else:
            raise TwccError("reserved packet status symbol")
        packets.append((seq, time_us))
    return TransportFeedback(sender_ssrc, media_ssrc, base, word & 0xFF, ref_us, packets)


# -- building --------------------------------------------------------------


def _two_bit(symbols: list[int]) -> int:
    chunk = 0xC000
    for i, symbol in enumerate(symbols):
        chunk |= symbol << (12 - 2 * i)
    return chunk


def _one_bit(symbols: list[int]) -> int:
    chunk = 0x8000
    for i, symbol in enumerate(symbols):
        chunk |= symbol << (13 - i)
    return chunk


class _Writer:
    """One feedback packet being filled; its encoded size is known at every step."""

    __slots__ = ("_chunks", "_deltas", "_large", "_n", "_same", "_syms", "count", "last", "ref_us")

    def __init__(self, ref_us: int | None) -> None:
        self._chunks: list[int] = []
        self._deltas = bytearray()
        self._syms: list[int] = []  # pending symbols, the first 14 only (runs go longer)
        self._n = 0  # number of pending symbols
        self._same = True
        self._large = False
        self.count = 0
        self.ref_us = ref_us
        self.last = 0 if ref_us is None else ref_us

    def set_reference(self, ref_us: int) -> None:
        self.ref_us = self.last = ref_us

    def ticks(self, arrival_us: int) -> int:
        """Delta from the previous received packet, rounded half away from zero."""
        d = arrival_us - self.last
        return (d + 125) // _TICK_US if d >= 0 else -((125 - d) // _TICK_US)

    def size_after(self, symbol: int) -> int:
        """Unpadded packet size once ``symbol`` (0, 1 or 2: its delta's bytes) is added."""
        chunks = len(self._chunks) + (1 if self._can_add(symbol) else 2)
        return _FIXED_BYTES + 2 * chunks + len(self._deltas) + symbol

    def _can_add(self, symbol: int) -> bool:
        n = self._n
        if n < 7:  # a two-bit vector takes anything
            return True
        if n < 14 and not self._large and symbol != _LARGE_DELTA:
            return True
        return self._same and symbol == self._syms[0] and n < _RUN_MAX

    def add(self, symbol: int, ticks: int = 0) -> None:
        if not self._can_add(symbol):
            self._emit()
        if self._n < 14:
            self._syms.append(symbol)
        if self._n and symbol != self._syms[0]:
            self._same = False
        self._n += 1
        self.count += 1
        if symbol == _SMALL:
            self._deltas.append(ticks)
        elif symbol == _LARGE_DELTA:
            self._large = True
            self._deltas += _LARGE.pack(ticks)
        if symbol:
            self.last += ticks * _TICK_US

    def _emit(self) -> None:
        """Write out a full chunk; only called when the pending symbols cannot grow."""
        syms = self._syms
        rest: list[int] = []
        if self._same:
            self._chunks.append((syms[0] << 13) | self._n)
        elif self._n == 14:  # no large delta among them
            self._chunks.append(_one_bit(syms))
        else:  # 7..13 symbols with a large delta: 7 go out, the rest stay
            self._chunks.append(_two_bit(syms[:7]))
            rest = syms[7:]
        self._syms = rest
        self._n = len(rest)
        self._same = all(s == rest[0] for s in rest)
        self._large = _LARGE_DELTA in rest

    def to_bytes(self, sender_ssrc: int, media_ssrc: int, base_seq: int, fb_count: int) -> bytes:
        chunks = list(self._chunks)
        syms, n = self._syms, self._n
        if n:
            if self._same:
                chunks.append((syms[0] << 13) | n)
            elif n <= 7:
                chunks.append(_two_bit(syms))
            else:
                chunks.append(_one_bit(syms))
        length = _FIXED_BYTES + 2 * len(chunks) + len(self._deltas)
        pad = -length % 4
        out = bytearray(length + pad)
        b0 = 0x80 | (0x20 if pad else 0) | RTPFB_TRANSPORT_CC
        _HDR.pack_into(out, 0, b0, _RTPFB, len(out) // 4 - 1)
        word = ((((self.ref_us or 0) // _REF_US) & 0xFFFFFF) << 8) | (fb_count & 0xFF)
        _FB_HDR.pack_into(out, 4, sender_ssrc, media_ssrc, base_seq & 0xFFFF, self.count, word)
        struct.pack_into(f"!{len(chunks)}H", out, _FIXED_BYTES, *chunks)
        pos = _FIXED_BYTES + 2 * len(chunks)
        out[pos : pos + len(self._deltas)] = self._deltas
        if pad:
            out[-1] = pad
        return bytes(out)


def _symbol(ticks: int) -> int:
    if 0 <= ticks <= 0xFF:
        return _SMALL
    return _LARGE_DELTA if -0x8000 <= ticks <= 0x7FFF else -1


def build_transport_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    base_seq: int,
    feedback_count: int,
    reference_time_us: int,
    packets: list[int | None],
) -> bytes:
    """A complete RTCP transport-cc packet.

    ``packets[i]`` is the arrival time (us) of sequence number ``base_seq + i``,
    or None if it was not received. ``reference_time_us`` must be a multiple of
    64 ms; it is sent modulo 2**24 x 64 ms. Raises ValueError for a delta that
    does not fit a signed 16-bit count of 250 us ticks.
    """
    if not 0 < len(packets) <= 0xFFFF:
        raise ValueError("a transport feedback reports 1 to 65535 packets")
    if reference_time_us % _REF_US:
        raise ValueError("reference time must be a multiple of 64 ms")
    writer = _Writer(reference_time_us)
    for arrival_us in packets:
        if arrival_us is None:
            writer.add(_NOT_RECEIVED)
            continue
        ticks = writer.ticks(arrival_us)
        symbol = _symbol(ticks)
        if symbol < 0:
            raise ValueError("receive delta does not fit 16 bits of 250 us")
        writer.add(symbol, ticks)
    return writer.to_bytes(sender_ssrc, media_ssrc, base_seq, feedback_count)


# -- receive side ----------------------------------------------------------


def feedback_interval(incoming_bps: float) -> float:
    """Seconds between feedbacks so that they use ~5 % of the bitrate, in [0.05, 0.1].

    Below ``THIN_UPLINK_BPS`` (a publisher whose camera is off on a thin
    uplink sends audio alone) up to ``FEEDBACK_THIN_INTERVAL_S``, as
    libwebrtc's bound: the feedback travels on that participant's downlink,
    which is thin too, and at 100 ms it took 9 of a 60 kbit/s link's 60.
    """
    if not incoming_bps > 0:  # also NaN
        return FEEDBACK_MAX_INTERVAL_S
    interval = _FEEDBACK_BITS / (_FEEDBACK_SHARE * incoming_bps)
    longest = (
        FEEDBACK_THIN_INTERVAL_S if incoming_bps < THIN_UPLINK_BPS else FEEDBACK_MAX_INTERVAL_S
    )
    return min(longest, max(FEEDBACK_MIN_INTERVAL_S, interval))


class TwccRecorder:
    """Arrival times of one transport's packets, turned into feedback on demand."""

    def __init__(
        self, *, max_packet_size: int = 1200, max_statuses: int = 1000, max_span: int = 10_000
    ) -> None:
        if max_packet_size < 64 or max_statuses < 1 or max_span < 1:
            raise ValueError("feedback limits too small")
        ring = 1 << max_span.bit_length()  # > max_span
        self._ring: list[int | None] = [None] * ring
        self._mask = ring - 1
        self._max_size = max_packet_size
        self._max_statuses = min(max_statuses, 0xFFFF)
        self._max_span = max_span
        self._start: int | None = None  # first sequence number not yet reported (unwrapped)
        self._end = 0  # one past the highest received
        self._fb_count = 0
        self._reported = False
        self.skipped = 0  # sequence numbers skipped over (never reported)

    @property
    def has_pending(self) -> bool:
        return self._start is not None and self._start < self._end

    def on_packet(self, seq: int, arrival_us: int) -> None:
        start = self._start
        if start is None:
            u = seq & 0xFFFF
            self._start = u
            self._end = u + 1
            self._ring[u & self._mask] = arrival_us
            return
        last = self._end - 1
        d = (seq - last) & 0xFFFF
        u = last + (d - 0x10000 if d >= 0x8000 else d)
        if u < start:  # already reported or skipped; or reordered before any feedback
            if self._reported or self._end - u > self._max_span:
                return
            self._start = start = u
        if u > last:
            if u - start >= self._max_span:
                self._skip_to(u - self._max_span + 1)
            self._end = u + 1
        i = u & self._mask
        if self._ring[i] is None:
            self._ring[i] = arrival_us

    def _skip_to(self, new_start: int) -> None:
        start = self._start
        assert start is not None
        ring, mask = self._ring, self._mask
        for s in range(start, min(self._end, new_start)):
            ring[s & mask] = None
        self.skipped += new_start - start
        self._start = new_start

    def build_feedback(self, sender_ssrc: int, media_ssrc: int, now_us: int) -> list[bytes]:
        """Feedback for everything received since the last call, split as needed."""
        seq = self._start
        end = self._end
        if seq is None or seq >= end:
            return []
        ring, mask = self._ring, self._mask
        out: list[bytes] = []
        while seq < end:
            writer = _Writer(None)
            base = seq
            while seq < end and writer.count < self._max_statuses:
                arrival_us = ring[seq & mask]
                if arrival_us is None:
                    symbol, ticks = _NOT_RECEIVED, 0
                else:
                    if writer.ref_us is None:
                        writer.set_reference(arrival_us // _REF_US * _REF_US)
                    ticks = writer.ticks(arrival_us)
                    symbol = _symbol(ticks)
                    if symbol < 0:
                        break  # a new packet, with its own reference time
                if (writer.size_after(symbol) + 3) & ~3 > self._max_size:
                    break
                writer.add(symbol, ticks)
                ring[seq & mask] = None
                seq += 1
            if writer.ref_us is None:  # nothing received in this one
                writer.set_reference(now_us // _REF_US * _REF_US)
            out.append(writer.to_bytes(sender_ssrc, media_ssrc, base, self._fb_count))
            self._fb_count = (self._fb_count + 1) & 0xFF
        self._start = end
        self._reported = True
        return out


# -- send side -------------------------------------------------------------


def write_seq(packet: bytearray, offset: int, seq: int) -> None:
    """Write a transport-wide sequence number (the extension's 2 data bytes)."""
    _SEQ.pack_into(packet, offset, seq & 0xFFFF)


def read_seq(data: Buffer, offset: int) -> int:
    value: int = _SEQ.unpack_from(data, offset)[0]
    return value


class TransportSequence:
    """Hands out transport-wide sequence numbers, starting at a random value < 2**15."""

    __slots__ = ("_next",)

    write_seq = staticmethod(write_seq)

    def __init__(self, start: int | None = None) -> None:
        self._next = random.randrange(1 << 15) if start is None else start & 0xFFFF

    def next_seq(self) -> int:
        seq = self._next
        self._next = (seq + 1) & 0xFFFF
        return seq


class SentPacketHistory:
    """Send records of the last ``size`` transport-wide sequence numbers."""

    def __init__(self, size: int = 8192) -> None:
        if size < 1 or size & (size - 1) or size > 0x8000:
            raise ValueError("history size must be a power of two up to 32768")
        self._mask = size - 1
        self._seq = [-1] * size  # unwrapped sequence number held by each slot
        self._send = [0.0] * size
        self._size = [0] * size
        self._kind = [0] * size
        self._state = bytearray(size)  # 0 unreported, 1 reported lost, 2 received
        self._last: int | None = None
        self._ref_raw = 0
        self._ref_unwrapped: int | None = None
        self.last_feedback_time: float | None = None

    def on_sent(self, seq16: int, send_time_s: float, size: int, kind: int) -> int:
        """Record one packet; returns its unwrapped sequence number (as feedback resolves it)."""
        last = self._last
        if last is None:
            u = (seq16 & 0xFFFF) + 0x10000  # keeps unwrapped numbers positive
        else:
            d = (seq16 - last) & 0xFFFF
            u = last + (d - 0x10000 if d >= 0x8000 else d)
        i = u & self._mask
        self._seq[i] = u
        self._send[i] = send_time_s
        self._size[i] = size
        self._kind[i] = kind
        self._state[i] = 0
        if last is None or u > last:
            self._last = u
        return u

    def resolve(self, feedback: TransportFeedback, now_s: float) -> list[PacketResult]:
        """Send records of the packets ``feedback`` reports, each new outcome once.

        A packet reported lost and later received gives a second result, with
        its arrival time: the earlier loss was a false alarm.
        """
        self.last_feedback_time = now_s
        last = self._last
        if last is None:
            return []
        ref = feedback.reference_time_us
        if self._ref_unwrapped is None:
            self._ref_unwrapped = ref
        else:
            d = (ref - self._ref_raw) % _REF_WRAP_US
            if d >= _REF_WRAP_US // 2:
                d -= _REF_WRAP_US
            self._ref_unwrapped += d
        self._ref_raw = ref
        shift = self._ref_unwrapped - ref
        mask, seqs, state = self._mask, self._seq, self._state
        results: list[PacketResult] = []
        for seq16, arrival_us in feedback.packets:
            d = (seq16 - last) & 0xFFFF
            u = last + (d - 0x10000 if d >= 0x8000 else d)
            i = u & mask
            if seqs[i] != u:
                continue  # too old, or never sent
            if arrival_us is None:
                if state[i]:
                    continue
                state[i] = 1
                arrival: float | None = None
            else:
                if state[i] == 2:
                    continue
                state[i] = 2
                arrival = (arrival_us + shift) / 1e6
            results.append(PacketResult(u, self._send[i], self._size[i], self._kind[i], arrival))
        return results
