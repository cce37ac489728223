"""The recorder in an end-to-end encrypted room: what its header says, and a decodable start.

The media side (frames recorded still encrypted, the export decrypting them) is
tests/unit/test_e2ee_export.py and, with real browsers, tests/browser/test_e2ee_recording.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from e2ee.mode import E2eeMode
from recording.e2ee_export import frame_format
from recording.participant_recording import request_recorded_keyframe
from recording.room_recording import RoomRecording
from recording.webm_writer import ParticipantWebm
from sfu.rtp import RtpPacket


def test_the_header_says_whose_frames_are_end_to_end_encrypted() -> None:
    def metadata(mode: E2eeMode, encrypts: bool) -> dict[str, str]:
        fake = SimpleNamespace(room=SimpleNamespace(e2ee=mode))
        return RoomRecording._e2ee(fake, SimpleNamespace(e2ee=encrypts))  # type: ignore[arg-type]

    assert metadata(E2eeMode.OFF, False) == {}
    assert metadata(E2eeMode.REQUIRED, True) == {"e2ee_room": "required", "e2ee": "v1"}
    # "optional": a page without the key sends in clear, and its file says so
    assert metadata(E2eeMode.OPTIONAL, False) == {"e2ee_room": "optional"}
    assert frame_format({"metadata": {"e2ee": "v1"}}) == "v1"
    assert frame_format({"metadata": {"e2ee_room": "optional"}}) is None
    with pytest.raises(ValueError, match="frame format 'v2'"):
        frame_format({"metadata": {"e2ee": "v2"}})


def test_the_keyframe_asked_for_is_of_the_recorded_top_layer() -> None:
    asked: list[int] = []
    producer = SimpleNamespace(layers=[object(), object(), object()], request_keyframe=asked.append)
    request_recorded_keyframe(producer)  # type: ignore[arg-type]
    assert asked == [2]  # simulcast: the top layer, the one the recorder taps


def test_the_writer_waits_for_a_keyframe_and_says_so() -> None:
    webm = ParticipantWebm(video=True, audio=True)
    assert webm.awaiting_keyframe
    delta = RtpPacket(True, 96, 1, 3000, 1, {}, b"\x10\x01\x00\x00")
    webm.add_video(delta, 0)
    webm.add_audio(RtpPacket(False, 111, 1, 960, 2, {}, b"\xfc\x00"), 5000)
    assert webm.awaiting_keyframe and webm.video_frames == 0  # 5 s: audio still held
    webm.add_audio(RtpPacket(False, 111, 2, 1920, 2, {}, b"\xfc\x00"), 10_000)
    assert not webm.awaiting_keyframe  # opened without video: no keyframe is wanted any more
    webm.close()
