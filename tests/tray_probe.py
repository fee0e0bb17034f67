"""Run by test_tray_host.py under Xvfb with a real tray host (trayer): starts the tray app on
Qt's xcb platform against the daemon whose config folder is argv[1], waits for the icon, and
prints what the icon shows as one JSON line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "xcb"

from PySide6.QtWidgets import QSystemTrayIcon

from framerelay_tray.app import TrayApp
from tests.tray_support import pump, qt_application, tray_options


def main() -> int:
    qt_application()
    available = bool(pump(QSystemTrayIcon.isSystemTrayAvailable, timeout=15))
    app = TrayApp(tray_options(Path(sys.argv[1]).parent, use_tray=True))
    app.start()
    tray = app.tray
    assert tray is not None, "the tray app made no icon although a tray is available"

    def settled() -> bool:
        running = app.model.state.running()
        return (
            app.status is not None
            and len(app.model.rows()) == 2
            and running is not None
            and running.phase != ""
            and tray.icon.isVisible()
        )

    pump(settled, timeout=20)
    result = {
        "available": available,
        "visible": tray.icon.isVisible(),
        "geometry": tray.icon.geometry().getRect(),
        "tooltip": tray.icon.toolTip(),
        "menu": [a.text() for a in tray.menu.actions() if a.isVisible() and a.text()],
        "window_before_click": app.window.isVisible(),
    }
    tray.icon.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    pump(app.window.isVisible, timeout=5)
    result["window_after_click"] = app.window.isVisible()
    app.shutdown()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
