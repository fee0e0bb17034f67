"""The I2VEdit engine on Stable Video Diffusion.

Importing this package imports nothing heavy: torch, diffusers and peft are imported by the
sub-modules that need them (`framerelay.engine.params` and `.request` stay torch-free so the daemon
and the CLI can build requests without them).
"""
