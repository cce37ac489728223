// The specialist's camera and microphone: getUserMedia, once for the whole
// page (the same tracks go to whichever room is focused). No state.

/**
 * Open the camera (1280x720, for clinical detail) and the microphone.
 * Rejects when neither can be opened; the console then joins without them.
 * @returns {Promise<{stream: MediaStream, audio: MediaStreamTrack | null, video: MediaStreamTrack | null}>}
 */
export async function openLocalMedia() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
  });
  const audio = stream.getAudioTracks()[0] ?? null;
  const video = stream.getVideoTracks()[0] ?? null;
  if (video) video.contentHint = "detail"; // clinical detail over smoothness
  return { stream, audio, video };
}
