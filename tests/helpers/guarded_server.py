"""``digiclinic serve`` with every aiortc encoder/decoder factory booby-trapped.

Any codec created in this process prints ``CODEC-CREATED`` to stderr, so a
test can show the SFU forwards media without ever decoding or encoding it.
"""

from __future__ import annotations

import sys
from typing import Any

import aiortc.codecs
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender


def _trap(name: str, original: Any) -> Any:
    def wrapper(codec: Any) -> Any:
        print(f"CODEC-CREATED {name} {codec.mimeType}", file=sys.stderr, flush=True)
        return original(codec)

    return wrapper


aiortc.codecs.get_decoder = _trap("decoder", aiortc.codecs.get_decoder)
aiortc.codecs.get_encoder = _trap("encoder", aiortc.codecs.get_encoder)
aiortc.rtcrtpreceiver.get_decoder = _trap("decoder", aiortc.rtcrtpreceiver.get_decoder)  # type: ignore[attr-defined]
aiortc.rtcrtpsender.get_encoder = _trap("encoder", aiortc.rtcrtpsender.get_encoder)  # type: ignore[attr-defined]

if __name__ == "__main__":
    from signaling.cli import main

    print("codec factories trapped", file=sys.stderr, flush=True)
    sys.exit(main())
