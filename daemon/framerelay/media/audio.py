"""The source's audio for the processed range, cut on the exact sample, for mp4/mov outputs.

The first audio stream is decoded and cut to [start, start + duration) of the source timeline
(the video's first processed frame to the end of its last), `round(duration × rate)` samples;
where the source has no audio for part of the range, silence fills it. It is written as
uncompressed PCM in .mov (the source's samples unchanged: 16-bit, or 24-bit for deeper sources)
and as AAC (320 kb/s) in .mp4, whose encoder delay the container's edit list removes. Both
containers get a movie time scale that holds the audio and video durations exactly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

log = logging.getLogger(__name__)

CHUNK = 1024  # samples per encoded frame (AAC's frame size)
AAC_BITRATE = "320k"


@dataclass(frozen=True)
class AudioInfo:
    index: int  # stream index in the container
    codec: str
    sample_rate: int
    channels: int
    layout: str
    sample_format: str

    @property
    def deep(self) -> bool:
        """More than 16 bits per sample (s32, float, double)."""
        return not self.sample_format.startswith(("s16", "u8"))


@dataclass(frozen=True, eq=False)
class AudioClip:
    samples: np.ndarray  # float32 (channels, n) in [-1, 1]
    sample_rate: int
    layout: str
    deep: bool

    @property
    def count(self) -> int:
        return int(self.samples.shape[1])


def probe_audio(container: av.container.InputContainer) -> AudioInfo | None:
    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    context = stream.codec_context
    if not context.sample_rate:
        return None
    return AudioInfo(
        index=stream.index,
        codec=context.name,
        sample_rate=int(context.sample_rate),
        channels=int(context.channels),
        layout=context.layout.name,
        sample_format=context.format.name if context.format else "fltp",
    )


def read_range(path: Path, start: Fraction, duration: Fraction) -> AudioClip | None:
    """The samples of [start, start + duration) seconds of the source timeline, or None."""
    with av.open(str(path)) as container:
        info = probe_audio(container)
        if info is None:
            return None
        rate = info.sample_rate
        count = round(duration * rate)
        first = start * rate  # sample position, in the source timeline
        out = np.zeros((info.channels, count), np.float32)
        resampler = av.AudioResampler(format="fltp", layout=info.layout, rate=rate)
        stream = container.streams[info.index]
        assert isinstance(stream, av.AudioStream)
        position = None
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    position = Fraction(frame.pts) * frame.time_base * rate
                elif position is None:
                    position = Fraction(0)
                for converted in resampler.resample(frame):
                    position = _place(out, converted.to_ndarray(), position, first)
                if position - first >= count:
                    break
        except av.error.FFmpegError as error:
            log.warning("%s: the audio could not be decoded (%s); it is left out", path.name, error)
            return None
    return AudioClip(out, rate, info.layout, info.deep)


def _place(out: np.ndarray, data: np.ndarray, position: Fraction, first: Fraction) -> Fraction:
    """Copy decoded samples that fall inside the range; returns the position after them."""
    offset = round(position - first)
    count = data.shape[1]
    lo, hi = max(0, offset), min(out.shape[1], offset + count)
    if lo < hi:
        out[: data.shape[0], lo:hi] = data[:, lo - offset : hi - offset]
    return position + count


def movie_timescale(sample_rate: int, fps: Fraction) -> int:
    """A time scale in which both the audio and the video durations are whole numbers."""
    return math.lcm(sample_rate, Fraction(fps).numerator)


def add_stream(container: av.container.OutputContainer, clip: AudioClip, fmt: str):
    if fmt == "mov":
        codec = "pcm_s24le" if clip.deep else "pcm_s16le"
        stream = container.add_stream(codec, rate=clip.sample_rate, layout=clip.layout)
    else:
        stream = container.add_stream(
            "aac", rate=clip.sample_rate, layout=clip.layout, options={"b": AAC_BITRATE}
        )
    return stream


def mux(container: av.container.OutputContainer, stream, clip: AudioClip) -> None:
    """Encode and mux every sample of the clip, pts in samples from 0."""
    sample_format = stream.codec_context.format.name
    for start in range(0, clip.count, CHUNK):
        chunk = clip.samples[:, start : start + CHUNK]
        frame = av.AudioFrame.from_ndarray(
            _as_format(chunk, sample_format), format=sample_format, layout=clip.layout
        )
        frame.sample_rate = clip.sample_rate
        frame.pts, frame.time_base = start, Fraction(1, clip.sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _as_format(chunk: np.ndarray, sample_format: str) -> np.ndarray:
    planar = sample_format.endswith("p")
    base = sample_format.rstrip("p")
    if base == "flt":
        data = chunk.astype(np.float32)
    elif base == "s16":
        data = np.clip(np.round(chunk * 32768), -32768, 32767).astype(np.int16)
    elif base == "s32":
        data = np.clip(np.round(chunk.astype(np.float64) * 2**31), -(2**31), 2**31 - 1)
        data = data.astype(np.int32)
    else:
        raise ValueError(f"unexpected audio sample format {sample_format}")
    if planar:
        return np.ascontiguousarray(data)
    return np.ascontiguousarray(data.T.reshape(1, -1))
