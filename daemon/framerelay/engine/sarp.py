"""Smooth-area random perturbation (I2VEdit section 4.2, appendix A).

EDM inversion of perfectly flat regions drifts into saturated noise; a little Gaussian noise in
those regions, before encoding, keeps the inverted latents close to a Gaussian.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_gradient(frames: torch.Tensor) -> torch.Tensor:
    """|Gx| + |Gy| per channel, averaged over channels: (N, C, H, W) -> (N, 1, H, W).

    The frame is padded with zeros, as in the official code: a border pixel counts as smooth only
    where the frame is mid-grey there."""
    channels = frames.shape[1]
    kernel_x = _SOBEL_X.to(frames).expand(channels, 1, 3, 3)
    kernel_y = _SOBEL_X.t().to(frames).expand(channels, 1, 3, 3)
    grad_x = F.conv2d(frames, kernel_x, padding=1, groups=channels)
    grad_y = F.conv2d(frames, kernel_y, padding=1, groups=channels)
    return (grad_x.abs() + grad_y.abs()).mean(dim=1, keepdim=True)


def smooth_area_mask(frames: torch.Tensor, threshold: float) -> torch.Tensor:
    """True where the 3x3 neighbourhood is flat: gradient <= threshold (frames in [-1, 1])."""
    return sobel_gradient(frames) <= threshold


def perturb_smooth_areas(
    frames: torch.Tensor, threshold: float, alpha: float, generator: torch.Generator
) -> torch.Tensor:
    """Add alpha * N(0, 1) inside the smooth-area mask, then clamp to [-1, 1]."""
    if alpha == 0:
        return frames
    mask = smooth_area_mask(frames, threshold).to(frames.dtype)
    noise = torch.randn(frames.shape, generator=generator, dtype=torch.float32).to(frames)
    return (frames + alpha * noise * mask).clamp(-1.0, 1.0)
