"""The tray icon, drawn rather than shipped: its colour says what the daemon does and a ring shows
the running job's progress."""

from __future__ import annotations

import enum

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap

SIZE = 64


class Look(enum.Enum):
    offline = QColor(110, 110, 110)
    idle = QColor(45, 85, 140)
    running = QColor(30, 120, 200)
    paused = QColor(200, 140, 20)
    failed = QColor(190, 40, 40)


def draw(look: Look, fraction: float | None = None, size: int = SIZE) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    margin = size * 0.06
    box = QRectF(margin, margin, size - 2 * margin, size - 2 * margin)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(look.value)
    painter.drawRoundedRect(box, size * 0.18, size * 0.18)
    if fraction is not None:
        ring = box.adjusted(size * 0.08, size * 0.08, -size * 0.08, -size * 0.08)
        painter.setPen(QPen(QColor(255, 255, 255, 90), size * 0.07))
        painter.drawEllipse(ring)
        painter.setPen(QPen(QColor("white"), size * 0.07))
        painter.drawArc(ring, 90 * 16, -round(360 * 16 * max(0.0, min(fraction, 1.0))))
    font = QFont()
    font.setBold(True)
    font.setPixelSize(round(size * 0.34))
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "fr")
    painter.end()
    return pixmap


def icon(look: Look, fraction: float | None = None) -> QIcon:
    return QIcon(draw(look, fraction))
