"""Video and image I/O: frame-accurate decode, pad-to-fit geometry, atomic writers. No torch."""
