"""Every use of aiortc's (and aioice's) private API, in one package.

digiclinic uses aiortc for ICE, DTLS, SRTP and SDP, but forwards media at the
RTP packet level below RTCRtpReceiver/RTCRtpSender (which always decode or
encode). The hooks below were verified against exactly the versions pinned in
pyproject.toml; tests/unit/test_aiortc_hooks.py fails if any of them moves.

Nothing outside this package may touch an underscore attribute of an aiortc or
aioice object. One module per concern; every name is re-exported here
(``from sfu import aiortc_hooks; aiortc_hooks.SrtpEgress``):

* transceivers.py  keep aiortc's encoders/decoders out of the media path, NACK retries,
                   what was negotiated
* transport.py     the DTLS transport: decrypted packets in, SRTP-protected packets out
* ice.py           host candidates on chosen addresses and ports, ICE consent
* simulcast.py     the RID header extensions aiortc must accept
* estimation.py    aiortc's abs-send-time REMB estimator
* datagrams.py     incoming SRTP datagrams as they come off the socket
* frames.py        encoded frames before packetization and before decoding (the
                   Python client's end-to-end encryption)
"""

from __future__ import annotations

import aioice
import aiortc

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

if aiortc.__version__ != AIORTC_VERSION or aioice.__version__ != AIOICE_VERSION:
    raise ImportError(
        f"digiclinic's packet path was verified against aiortc {AIORTC_VERSION} / "
        f"aioice {AIOICE_VERSION}, found aiortc {aiortc.__version__} / "
        f"aioice {aioice.__version__}: re-verify sfu/aiortc_hooks/ before upgrading"
    )

# ruff: noqa: E402  (the version check comes first)
from sfu.aiortc_hooks.datagrams import (
    SrtpFilter,
    _intercept_srtp,
    srtp_unprotector,
    stamp_arrivals,
    tap_media_datagrams,
)
from sfu.aiortc_hooks.estimation import UplinkEstimator
from sfu.aiortc_hooks.frames import (
    FrameTransform,
    transform_received_frames,
    transform_sent_frames,
    vp8_frame,
    vp8_payloads,
)
from sfu.aiortc_hooks.ice import (
    CONSENT_INTERVAL,
    CONSENT_RETRANSMISSIONS,
    CONSENT_TIMEOUT,
    configure_host_candidates,
    local_candidate_addresses,
    tolerate_slow_consent,
)
from sfu.aiortc_hooks.simulcast import SIMULCAST_EXTENSIONS, accept_simulcast_extensions
from sfu.aiortc_hooks.transceivers import (
    NACK_MAX_TRIES,
    NACK_RETRY_MIN_WAIT,
    NACK_RETRY_TICK,
    _NackRetrier,
    disable_stock_receiver,
    disable_stock_sender,
    dtls_transport,
    negotiated_codecs,
    negotiated_header_extensions,
    retry_nacks,
    sender_ssrcs,
)
from sfu.aiortc_hooks.transport import RtcpHandler, RtpHandler, SrtpEgress, take_over_transport

__all__ = [
    "AIOICE_VERSION",
    "AIORTC_VERSION",
    "CONSENT_INTERVAL",
    "CONSENT_RETRANSMISSIONS",
    "CONSENT_TIMEOUT",
    "NACK_MAX_TRIES",
    "NACK_RETRY_MIN_WAIT",
    "NACK_RETRY_TICK",
    "SIMULCAST_EXTENSIONS",
    "FrameTransform",
    "RtcpHandler",
    "RtpHandler",
    "SrtpEgress",
    "SrtpFilter",
    "UplinkEstimator",
    "_NackRetrier",
    "_intercept_srtp",
    "accept_simulcast_extensions",
    "configure_host_candidates",
    "disable_stock_receiver",
    "disable_stock_sender",
    "dtls_transport",
    "local_candidate_addresses",
    "negotiated_codecs",
    "negotiated_header_extensions",
    "retry_nacks",
    "sender_ssrcs",
    "srtp_unprotector",
    "stamp_arrivals",
    "take_over_transport",
    "tap_media_datagrams",
    "tolerate_slow_consent",
    "transform_received_frames",
    "transform_sent_frames",
    "vp8_frame",
    "vp8_payloads",
]
