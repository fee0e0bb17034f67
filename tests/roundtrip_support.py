"""Simulated editor saves and an event recorder for the round-trip tests."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np


def make_frame(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def edited(frame: np.ndarray, value: int) -> np.ndarray:
    """A visible edit: a filled block in the middle."""
    result = frame.copy()
    height, width = frame.shape[:2]
    result[height // 4 : height // 2, width // 4 : width // 2] = (value, 255 - value, value // 2)
    return result


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return data.tobytes()


def tiff_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".tiff", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return data.tobytes()


def psd_bytes(background: np.ndarray, overlay_rgba: np.ndarray, top: int, left: int) -> bytes:
    from PIL import Image
    from psd_tools import PSDImage

    height, width = background.shape[:2]
    psd = PSDImage.new("RGB", (width, height))
    psd.create_pixel_layer(Image.fromarray(background, "RGB"), name="Background")
    psd.create_pixel_layer(Image.fromarray(overlay_rgba, "RGBA"), name="Edit", top=top, left=left)
    buffer = io.BytesIO()
    psd.save(buffer)
    return buffer.getvalue()


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image[:, :, ::-1]


# Ways editors save (dependencies.md §3); each leaves `target` complete.


def save_atomic_replace(target: Path, data: bytes) -> None:
    temporary = target.with_name(target.name + ".tmp4821")
    temporary.write_bytes(data)
    os.replace(temporary, target)


def save_photoshop_like(target: Path, data: bytes) -> None:
    temporary = target.with_name("psE0A1.tmp")
    temporary.write_bytes(data)
    target.unlink(missing_ok=True)
    os.rename(temporary, target)


def save_krita_like(target: Path, data: bytes) -> None:
    if target.exists():
        os.replace(target, target.with_name(target.name + "~"))
    target.write_bytes(data)


def save_gio_like(target: Path, data: bytes) -> None:
    temporary = target.with_name(".goutputstream-X1Y2Z3")
    temporary.write_bytes(data)
    os.replace(temporary, target)


def save_two_writes(target: Path, data: bytes, pause: float = 0.3) -> None:
    half = len(data) // 2
    with open(target, "wb") as file:
        file.write(data[:half])
        file.flush()
        os.fsync(file.fileno())
        time.sleep(pause)
        file.write(data[half:])


def save_three_writes(target: Path, data: bytes, pause: float = 0.2) -> None:
    third = len(data) // 3
    with open(target, "wb") as file:
        for chunk in (data[:third], data[third : 2 * third], data[2 * third :]):
            file.write(chunk)
            file.flush()
            time.sleep(pause)


SAVE_STYLES: dict[str, Callable[[Path, bytes], None]] = {
    "atomic_replace": save_atomic_replace,
    "photoshop_like": save_photoshop_like,
    "krita_like": save_krita_like,
    "gio_like": save_gio_like,
    "two_writes": save_two_writes,
    "three_writes": save_three_writes,
}


class Recorder:
    """Collects callback arguments from any thread; waits on them with a deadline."""

    def __init__(self) -> None:
        self.items: list = []
        self._condition = threading.Condition()

    def __call__(self, item: object) -> None:
        with self._condition:
            self.items.append(item)
            self._condition.notify_all()

    def wait_for(self, predicate: Callable[[list], bool], timeout: float = 15.0) -> list:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self.items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out; got {self.items!r}")
                self._condition.wait(remaining)
            return list(self.items)

    def wait_count(self, count: int, match: Callable[[object], bool] | None = None, timeout=15.0):
        """Wait for `count` matching items; return the matching items."""
        match = match or _anything
        items = self.wait_for(lambda items: sum(1 for i in items if match(i)) >= count, timeout)
        return [item for item in items if match(item)]

    def stays(self, count: int, match: Callable[[object], bool] | None = None, seconds=1.5):
        """Assert that no more matching items arrive within `seconds`."""
        match = match or _anything
        time.sleep(seconds)
        with self._condition:
            found = [i for i in self.items if match(i)]
        assert len(found) == count, found
        return found


def _anything(_: object) -> bool:
    return True
