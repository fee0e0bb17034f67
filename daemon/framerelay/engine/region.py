"""The optional edit mask: where the first frame was edited, carried along the source's motion.

The mask (white = edited) is fitted like the frames, then warped from frame to frame with dense
optical flow of the source clip (OpenCV DIS), so a region that moves keeps covering the same
content. Spatial attention matching multiplies its mask by the region: outside it, the source
attention is kept whole.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from framerelay.media import geometry, image


def load_region(path, fit: geometry.Fit) -> np.ndarray:
    """(H, W) float32 in [0, 1] at the model size; the padding counts as not edited."""
    mask = image.load_image(path).mean(axis=2, keepdims=True).repeat(3, axis=2)
    geometry.check_edit_aspect(
        mask.shape[1], mask.shape[0], fit.source_width, fit.source_height, what="mask"
    )
    mask_fit = geometry.fit_to(mask.shape[1], mask.shape[0], fit.target_width, fit.target_height)
    model = mask_fit.to_model(mask[None])[0, 0]  # [-1, 1], padding -1
    return ((model + 1.0) / 2.0).astype(np.float32)


def _grey(frame: np.ndarray) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> uint8 grey."""
    rgb = ((frame.transpose(1, 2, 0) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def propagate_region(first: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Warp `first` (the region of frames[0]) along the clip: (F, H, W) float32.

    frames: (F, 3, H, W) in [-1, 1]. For frame f the backward flow f -> f-1 says where each pixel
    came from, and the region is pulled from frame f-1 along it.
    """
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)  # type: ignore[attr-defined]
    height, width = first.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    regions = [first]
    previous = _grey(frames[0])
    for frame in frames[1:]:
        current = _grey(frame)
        backward = flow.calc(current, previous, None)
        warped = cv2.remap(
            regions[-1],
            xs + backward[..., 0],
            ys + backward[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        regions.append(warped)
        previous = current
    return np.stack(regions)


def latent_region(regions: np.ndarray, latent_hw: tuple[int, int]) -> torch.Tensor:
    """(F, H, W) -> (F, h, w) by area averaging."""
    tensor = torch.from_numpy(regions)[:, None]
    return F.adaptive_avg_pool2d(tensor, latent_hw)[:, 0]
