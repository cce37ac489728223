"""Thin-stream TCP for a signalling connection: a lost message is sent again soon.

A WebSocket carries a few small messages a second. On a weak link that is
full (the first seconds of a 60 kbit/s cap, before the server has paused
the video and the browser has stopped its camera) its segments and their
acknowledgements are dropped with the media, and TCP's retransmission
timer doubles at every loss: real Chromium behind a 60 kbit/s ``tbf`` saw
the server's socket back off 2-3 times within 3 s in every run (``ss -ti``
in the browser benchmark's report), and one ``track_paused`` reached the
patient 8 s after the server sent it.

Linux's thin-stream mode (``TCP_THIN_LINEAR_TIMEOUTS``, see the kernel's
Documentation/networking/tcp-thin.rst) keeps the timeout linear for the
first six retransmissions while fewer than four segments are in flight:
that is a signalling connection, never a bulk transfer. The kernel only
counts a stream as thin once a loss has set its slow-start threshold,
which BBR never does; the connection therefore uses Reno (its congestion
control makes no difference to a few hundred bytes a second). Both are best effort: where
the kernel or its policy refuses (not Linux, Reno not allowed), the
connection keeps the defaults and says so once in the log.
"""

from __future__ import annotations

import logging
import socket

logger = logging.getLogger(__name__)

TCP_THIN_LINEAR_TIMEOUTS = getattr(socket, "TCP_THIN_LINEAR_TIMEOUTS", 16)  # linux/tcp.h
CONGESTION_CONTROL = b"reno"  # sets ssthresh on a loss (thin-stream detection needs it)

_warned = False


def make_thin(sock: socket.socket | None) -> bool:
    """Thin-stream settings on a connected TCP socket; True when both took effect."""
    global _warned
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, 1)
        if hasattr(socket, "TCP_CONGESTION"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CONGESTION_CONTROL)
    except OSError as exc:
        if not _warned:
            _warned = True
            logger.info("signalling sockets keep the kernel's TCP defaults (%s)", exc.strerror)
        return False
    return True
