"""Simulcast: header extensions aiortc must accept for it.

Part of sfu/aiortc_hooks (every use of aiortc's private API, pinned to aiortc 1.16.0).
"""

from __future__ import annotations

import aiortc.codecs
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

SIMULCAST_EXTENSIONS = (
    (10, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
    (11, "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"),
)


def accept_simulcast_extensions() -> None:
    """Add the RID and repaired-RID extensions to aiortc's video extensions.

    aiortc intersects an offer's extensions with the module-level
    ``aiortc.codecs.HEADER_EXTENSIONS`` in setRemoteDescription, so without
    them a browser's simulcast offer is answered without RIDs and the
    browser sends one encoding. Process-wide and idempotent; aiortc peers
    that don't use the extensions just carry two more extmap lines.
    """
    video = aiortc.codecs.HEADER_EXTENSIONS["video"]
    known = {e.uri for e in video}
    for ext_id, uri in SIMULCAST_EXTENSIONS:
        if uri not in known:
            video.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))
