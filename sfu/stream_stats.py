"""Per-SSRC receive statistics: sequence tracking, loss, jitter, NACK list.

One ``ReceiveStream`` per incoming media SSRC. It decides whether a packet is
new (forward it), recovered (was missing, forward it) or a duplicate (drop),
keeps the list of sequence numbers to NACK upstream, and produces the figures
of an RTCP receiver report block (RFC 3550 appendix A.3 and A.8).
"""

from __future__ import annotations

from sfu.rtcp import ReportBlock

MAX_MISSING = 512
"""Sequence jumps larger than this (either way) are a stream restart, not loss."""
NACK_RETRIES = 3
NACK_INTERVAL_MS = 80
NACK_MAX_AGE_MS = 1000
REPAIR_SMOOTHING = 0.25
# On a long path (satellite: 600 ms round trip) a NACK is repeated once at once (in
# case the first was lost: the sender ignores a NACK for a packet it resent less than a
# round trip ago), then only once a repair could have come back, and a packet is
# waited for a few round trips: after its last NACK it is still taken (and forwarded)
# until then. Before, it was dropped as a duplicate once its NACKs were spent, so on a
# 600 ms path no repair was ever used (nor its round trip learned): the receiving
# browser froze 3 s and asked for a keyframe.
NACK_INTERVAL_RTTS = 1.25
NACK_MAX_AGE_RTTS = 3.0


class ReceiveStream:
    __slots__ = (
        "_cycles",
        "_epoch_expected",
        "_expected_prior",
        "_jitter",
        "_last_transit",
        "_received_prior",
        "_restart_next",
        "base_seq",
        "bytes",
        "clock_rate",
        "duplicates",
        "highest",
        "missing",
        "packets",
        "recovered",
        "repair_ms",
        "ssrc",
    )

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.base_seq = -1
        self.highest = -1  # extended highest sequence number
        self._cycles = 0
        self._epoch_expected = 0  # packets expected before the last restart
        self._restart_next: int | None = None
        self.packets = 0
        self.bytes = 0
        self.duplicates = 0
        self.recovered = 0
        self._jitter = 0.0
        self._last_transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0
        self.repair_ms: float | None = None  # smoothed time from a gap to its repair (~ RTT)
        # extended seq -> [first_missing_ms, last_nack_ms, nack_count]
        self.missing: dict[int, list[int]] = {}

    def receive(self, seq: int, timestamp: int, arrival_ms: int, size: int, rtx: bool) -> bool:
        """Account one packet; False if it is a duplicate or too old to use."""
        if self.highest < 0:
            self.base_seq = seq
            self.highest = seq
            self._count(timestamp, arrival_ms, size, rtx)
            return True
        ext = self._extend(seq)
        if ext > self.highest:
            if ext - self.highest - 1 > MAX_MISSING:
                self._restart(ext)
            else:
                for missing in range(self.highest + 1, ext):
                    self.missing[missing] = [arrival_ms, 0, 0]
                self.highest = ext
                self._cycles = ext & ~0xFFFF
            self._restart_next = None
            self._count(timestamp, arrival_ms, size, rtx)
            return True
        state = self.missing.pop(ext, None)
        if state is not None:
            self.recovered += 1
            if state[2]:  # NACKed: the time since the gap was seen is about a round trip
                sample = arrival_ms - state[0]
                repair = self.repair_ms
                self.repair_ms = (
                    sample if repair is None else repair + REPAIR_SMOOTHING * (sample - repair)
                )
            self._count(timestamp, arrival_ms, size, True)
            return True
        if self.highest - ext > MAX_MISSING and not rtx:
            # far behind: a sender that restarted its numbering, once two
            # consecutive packets confirm it (a single stray is dropped)
            if self._restart_next == seq:
                self._restart(seq)
                self._restart_next = None
                self._count(timestamp, arrival_ms, size, rtx)
                return True
            self._restart_next = (seq + 1) & 0xFFFF
        self.duplicates += 1
        return False

    def _restart(self, ext: int) -> None:
        """Start a new numbering epoch at ``ext``; nothing in between counts as lost."""
        self._epoch_expected += self.highest - self.base_seq + 1
        self.base_seq = self.highest = ext
        self._cycles = ext & ~0xFFFF
        self.missing.clear()

    def _extend(self, seq: int) -> int:
        cycles = self._cycles
        last = self.highest & 0xFFFF
        if seq < 0x4000 and last > 0xC000:
            cycles += 1 << 16
        elif seq > 0xC000 and last < 0x4000 and cycles:
            cycles -= 1 << 16
        return cycles | seq

    def _count(self, timestamp: int, arrival_ms: int, size: int, rtx: bool) -> None:
        self.packets += 1
        self.bytes += size
        if rtx:
            return  # retransmissions would distort the jitter estimate
        transit = arrival_ms * self.clock_rate / 1000.0 - timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            if d < self.clock_rate * 10:  # ignore timestamp jumps
                self._jitter += (d - self._jitter) / 16.0
        self._last_transit = transit

    def due_nacks(self, now_ms: int) -> list[int]:
        """Sequence numbers (16-bit) to NACK now; forgets those too old to wait for."""
        due: list[int] = []
        repair = self.repair_ms or 0.0
        interval = max(NACK_INTERVAL_MS, NACK_INTERVAL_RTTS * repair)
        max_age = max(NACK_MAX_AGE_MS, NACK_MAX_AGE_RTTS * repair)
        for ext, state in list(self.missing.items()):
            first, last_nack, count = state
            if now_ms - first > max_age:
                del self.missing[ext]
                continue
            if count >= NACK_RETRIES:
                continue  # asked enough: its repair is still taken until max_age
            if now_ms - last_nack >= (NACK_INTERVAL_MS if count == 1 else interval):
                state[1] = now_ms
                state[2] = count + 1
                due.append(ext & 0xFFFF)
        return due

    @property
    def expected(self) -> int:
        if self.highest < 0:
            return 0
        return self._epoch_expected + self.highest - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)

    @property
    def jitter(self) -> int:
        return int(self._jitter)

    def report_block(self, lsr: int, dlsr: int) -> ReportBlock:
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.packets - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.packets
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=min(self.lost, 0x7FFFFF),
            highest_seq=self.highest & 0xFFFFFFFF,
            jitter=self.jitter,
            lsr=lsr,
            dlsr=dlsr,
        )
