"""Write the example clip and its edited first frame.

    PYTHONPATH=daemon python examples/make_examples.py

examples/clip.mp4: 14 frames, 512x288, 12 fps, H.264: a red ball rolls across a meadow at dusk.
examples/clip_edit.png: the clip's first frame (as decoded) with the ball painted blue and a top
hat added, as a user would edit it in an image editor.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from framerelay.media.image import save_png
from framerelay.media.video import read_frame
from framerelay.media.writer import write_video

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, FRAMES, FPS = 512, 288, 14, Fraction(12)
HORIZON = 190
RADIUS = 26
AA = cv2.LINE_AA


def ball_centre(index: int) -> tuple[int, int]:
    """Rolls left to right with a small bounce."""
    x = 70 + index * 27
    y = HORIZON + 38 - RADIUS - round(14 * abs(np.sin(index * np.pi / 4)))
    return x, y


def background() -> np.ndarray:
    y = np.linspace(0, 1, HORIZON)[:, None, None]
    top, low = np.array([38, 70, 150]), np.array([250, 170, 120])
    sky = (top + (low - top) * y**1.4) * np.ones((1, WIDTH, 1))
    ground_y = np.linspace(0, 1, HEIGHT - HORIZON)[:, None, None]
    near, far = np.array([40, 110, 45]), np.array([95, 150, 70])
    ground = (far + (near - far) * ground_y) * np.ones((1, WIDTH, 1))
    image = np.concatenate([sky, ground]).astype(np.uint8)
    cv2.circle(image, (400, 120), 34, (255, 226, 150), -1, AA)  # setting sun
    for x0, width, height in ((-40, 260, 60), (180, 300, 45), (380, 220, 70)):  # hills
        centre = (x0 + width // 2, HORIZON)
        cv2.ellipse(image, centre, (width // 2, height), 0, 180, 360, (70, 120, 85), -1, AA)
    _draw_grass(image)
    return image


def _draw_grass(image: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    for _ in range(260):
        x = int(rng.integers(0, WIDTH))
        y = int(rng.integers(HORIZON + 4, HEIGHT))
        length = 4 + (y - HORIZON) // 8
        lean = int(rng.integers(-3, 4))
        shade = (60 + int(rng.integers(0, 40)), 140 + int(rng.integers(0, 50)), 60)
        cv2.line(image, (x, y), (x + lean, y - length), shade, 1, AA)


def draw_ball(image: np.ndarray, index: int, colour: tuple[int, int, int]) -> None:
    x, y = ball_centre(index)
    cv2.ellipse(image, (x + 6, HORIZON + 40), (RADIUS, 6), 0, 0, 360, (30, 70, 35), -1, AA)
    cv2.circle(image, (x, y), RADIUS, colour, -1, AA)
    highlight = tuple(min(255, c + 90) for c in colour)
    cv2.circle(image, (x - 9, y - 9), 7, highlight, -1, AA)


def draw_hat(image: np.ndarray, index: int) -> None:
    x, y = ball_centre(index)
    brim_y = y - RADIUS + 6
    cv2.ellipse(image, (x, brim_y), (24, 6), 0, 0, 360, (25, 25, 30), -1, AA)
    cv2.rectangle(image, (x - 14, brim_y - 30), (x + 14, brim_y - 2), (25, 25, 30), -1, AA)
    cv2.rectangle(image, (x - 14, brim_y - 10), (x + 14, brim_y - 4), (200, 40, 60), -1, AA)


def clip_frames() -> list[np.ndarray]:
    scene = background()
    frames = []
    for index in range(FRAMES):
        frame = scene.copy()
        draw_ball(frame, index, (220, 40, 40))
        frames.append(frame)
    return frames


def edit_first_frame(first: np.ndarray) -> np.ndarray:
    edited = first.copy()
    x, y = ball_centre(0)
    cv2.circle(edited, (x, y), RADIUS + 1, (40, 90, 220), -1, AA)
    cv2.circle(edited, (x - 9, y - 9), 7, (130, 180, 255), -1, AA)
    draw_hat(edited, 0)
    return edited


def main() -> None:
    clip = HERE / "clip.mp4"
    write_video(clip_frames(), clip, FPS, overwrite=True)
    save_png(edit_first_frame(read_frame(clip, 0)), HERE / "clip_edit.png", overwrite=True)
    for path in (clip, HERE / "clip_edit.png"):
        print(f"{path.relative_to(HERE.parent)}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
