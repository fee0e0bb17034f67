"""Frames of a finished job's result, for the preview strip; decoded without torch.

A PNG result is a folder of frames, read with Qt. A movie is decoded with PyAV (the `media`
extra) when it is installed; without it the strip is empty and `FrameStrip.note` says why. Runs
in a worker thread: QImage, unlike QPixmap, may be made off the UI thread.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

STRIP_FRAMES = 6
THUMB_HEIGHT = 90


@dataclass
class FrameStrip:
    frames: list[QImage] = field(default_factory=list)
    note: str = ""  # why there are no frames, if there are none


def pick(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over `count` frames, first and last included."""
    if count <= 0:
        return []
    if count <= wanted:
        return list(range(count))
    return sorted({round(n * (count - 1) / (wanted - 1)) for n in range(wanted)})


def thumbnail(image: QImage, height: int = THUMB_HEIGHT) -> QImage:
    return image.scaledToHeight(height, Qt.TransformationMode.SmoothTransformation)


def pyav_available() -> bool:
    return importlib.util.find_spec("av") is not None


def result_strip(path: Path, wanted: int = STRIP_FRAMES) -> FrameStrip:
    """Up to `wanted` frames of a result; a note instead of frames when it cannot be read."""
    try:
        return _strip(path, wanted)
    except Exception as error:  # a damaged or unknown file: say so in the preview
        return FrameStrip(note=f"Cannot read {path.name}: {error}")


def _strip(path: Path, wanted: int) -> FrameStrip:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
        images = [QImage(str(files[n])) for n in pick(len(files), wanted)]
        frames = [thumbnail(image) for image in images if not image.isNull()]
        return FrameStrip(frames, "" if frames else f"no frames in {path}")
    if not path.is_file():
        return FrameStrip(note=f"{path} is missing")
    if not pyav_available():
        return FrameStrip(
            note="Install framerelay's media extra (PyAV) to see the result's frames."
        )
    return FrameStrip(movie_frames(path, wanted))


def movie_frames(path: Path, wanted: int, height: int = THUMB_HEIGHT) -> list[QImage]:
    """Decodes the movie once, keeping only the picked frames, scaled down as they come."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
    keep = set(pick(count, wanted))
    images = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width = max(2, round(stream.width * height / max(stream.height, 1)))
        for n, frame in enumerate(container.decode(stream)):
            if n not in keep:
                continue
            pixels = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
            data = pixels.tobytes()  # contiguous rows
            image = QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888)
            images.append(image.copy())  # copy: `data` goes away
            if len(images) == len(keep):
                break
    return images


def preview_image(png: bytes) -> QImage:
    return QImage.fromData(png, "PNG")
