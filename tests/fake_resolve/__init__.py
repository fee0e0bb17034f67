"""A project-owned fake of DaVinci Resolve's scripting API (see model.py for what it encodes)."""

from .model import FakeResolve, FakeTimeline, frames_to_tc, tc_to_frames
from .profiles import PROFILES, PYTHON_PROFILES, Profile

__all__ = [
    "PROFILES",
    "PYTHON_PROFILES",
    "FakeResolve",
    "FakeTimeline",
    "Profile",
    "frames_to_tc",
    "tc_to_frames",
]
