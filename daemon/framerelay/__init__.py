"""framerelay: edit one frame, propagate the edit through the clip."""

__version__ = "0.1.0"
