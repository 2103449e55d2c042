"""Video files -> RGB frames at a fixed rate and the audio track at 16 kHz mono.

Decoding uses PyAV (the `av` package): its wheels carry their own FFmpeg
build, so every container and codec FFmpeg reads works after a plain `pip
install` on Linux, macOS and Windows, with no system FFmpeg or OpenCV build
to match (the starter's OpenCV route needed OpenCV "properly linked with
ffmpeg", its most reported failure). PyAV also exposes each frame's
presentation timestamp as an exact fraction of a second, which the sampling
below is defined on.

Sampling. Frame k (k = 0, 1, ...) is the first decoded frame whose
timestamp is at least k / fps seconds after the first frame's. The record
gets floor(duration * fps) frames, at most `max_frames`, where duration runs
from the first frame's timestamp to the end of the last frame (its timestamp
plus its duration): every frame then stands for a whole 1 / fps seconds of
video, and the audio second that goes with it (feature_extractor.py) lies
inside the video. Two differences from the starter's OpenCV loop, both on
purpose: its times drifted (each frame was the first at least 1 / fps after
the previous one taken, so 29.97 fps video slips 1 ms a second), and it took
one more frame from a last, partial second.
"""

import dataclasses
from fractions import Fraction
from typing import Optional

import av
import numpy as np

AUDIO_SAMPLE_RATE = 16000


class BadVideo(Exception):
    """A video that cannot give a record; the message says why, without the path."""


@dataclasses.dataclass
class DecodedVideo:
    """What one video file gives.

    frames: uint8 [num_frames, height, width, 3], RGB, at the requested rate.
    audio: float32 [samples] at 16 kHz mono, starting at the first frame's
      time (zero-padded where the track starts later); None when the file has
      no audio track or audio was not asked for.
    duration: seconds from the first frame to the end of the last.
    """

    frames: np.ndarray
    audio: Optional[np.ndarray]
    duration: float


def _frame_end(frame, previous_pts):
    """A frame's end time in its time base: its pts plus its duration.

    Containers that leave a frame's duration out get the gap to the previous
    frame (one frame's worth, for constant-rate video).
    """
    duration = getattr(frame, "duration", None) or 0
    if duration <= 0 and previous_pts is not None:
        duration = frame.pts - previous_pts
    return frame.pts + max(duration, 0)


def decode(path, frames_per_second=1, max_frames=300, with_audio=True):
    """Decodes `path`; raises BadVideo for a file that gives no usable frame."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise BadVideo(f"cannot be opened ({_reason(error)})") from None
    with container:
        if not container.streams.video:
            raise BadVideo("has no video stream")
        video_stream = container.streams.video[0]
        video_stream.thread_type = "AUTO"
        streams = [video_stream]
        audio_stream = None
        if with_audio and container.streams.audio:
            audio_stream = container.streams.audio[0]
            streams.append(audio_stream)
        try:
            return _decode_streams(
                container, video_stream, audio_stream, frames_per_second, max_frames
            )
        except av.error.FFmpegError as error:
            raise BadVideo(f"cannot be decoded ({_reason(error)})") from None


def _reason(error):
    return getattr(error, "strerror", None) or str(error)


def _decode_streams(container, video_stream, audio_stream, fps, max_frames):
    step = Fraction(1, fps)
    taken = []
    first_pts = previous_pts = end_pts = None
    time_base = None
    resampler = (
        av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE)
        if audio_stream is not None
        else None
    )
    audio_chunks = []
    audio_start = None
    audio_samples = 0
    audio_done = video_done = False
    for packet in container.demux(*[s for s in (video_stream, audio_stream) if s]):
        if packet.stream is audio_stream and not audio_done:
            for frame in packet.decode():
                if audio_start is None and frame.pts is not None:
                    audio_start = frame.pts * frame.time_base
                for resampled in resampler.resample(frame):
                    audio_chunks.append(resampled.to_ndarray().reshape(-1))
                    audio_samples += len(audio_chunks[-1])
            if video_done and audio_start is not None:
                # The last frame's audio second ends one step after the frame.
                needed_until = first_pts * time_base + (max_frames + 1) * step
                decoded_until = audio_start + Fraction(audio_samples, AUDIO_SAMPLE_RATE)
                audio_done = decoded_until >= needed_until
        elif packet.stream is video_stream and not video_done:
            for frame in packet.decode():
                if frame.pts is None:
                    raise BadVideo("has video frames without timestamps")
                if first_pts is None:
                    first_pts, time_base = frame.pts, frame.time_base
                elapsed = (frame.pts - first_pts) * time_base
                if len(taken) < max_frames and elapsed >= len(taken) * step:
                    taken.append(frame.to_ndarray(format="rgb24"))
                end_pts = max(end_pts or 0, _frame_end(frame, previous_pts))
                previous_pts = frame.pts
                # Past max_frames seconds the video's length no longer matters.
                if elapsed >= max_frames * step:
                    video_done = True
                    break
        if video_done and (audio_stream is None or audio_done):
            break
    if first_pts is None:
        raise BadVideo("has no video frames")
    duration = (end_pts - first_pts) * time_base
    count = min(int(duration * fps), max_frames)
    if count == 0:
        raise BadVideo(
            f"is {float(duration):.2f} s long, shorter than one frame at "
            f"--frames_per_second={fps} ({float(step):g} s)"
        )
    audio = None
    if audio_stream is not None and audio_start is not None:
        for resampled in resampler.resample(None):
            audio_chunks.append(resampled.to_ndarray().reshape(-1))
        audio = _align(audio_chunks, audio_start - first_pts * time_base)
    return DecodedVideo(np.stack(taken[:count]), audio, float(duration))


def _align(chunks, offset):
    """Samples from the first video frame's time on; zeros before the track starts."""
    samples = (
        np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    )
    shift = int(round(offset * AUDIO_SAMPLE_RATE))
    if shift >= 0:
        return np.concatenate([np.zeros(shift, np.float32), samples])
    return samples[-shift:]
