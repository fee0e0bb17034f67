"""framerelay's tray app: the daemon's queue at a glance, and the controls to steer it.

Qt (PySide6) and the daemon's gRPC client only: it starts without torch.
"""
