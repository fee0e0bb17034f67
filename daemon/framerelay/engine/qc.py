"""A quality report per take, computed frame by frame as the take is written.

All measures work on the model's canvas (the content area, padding cut off), scaled down so the
longest side is `QC_SIZE` pixels, in [0, 1]:

* temporal consistency: the flow-warp error between consecutive frames. The flow is the
  *source's* (OpenCV DIS, frame t to frame t-1), and the same measure on the source is the
  yardstick: a take that follows the source's motion has about the source's warp error, a
  flickering one more. Frames where the source's own warp error is large (occlusions, cuts) count
  for neither.
* unedited-region fidelity (with a mask): PSNR and SSIM of the model's output to the source where
  the region says nothing was edited, before the source's own pixels are put back.
* first-frame fidelity: PSNR and SSIM of the take's frame k to the edited frame.
* embedding consistency: the cosine similarity of consecutive frames' embeddings by the
  pipeline's own image encoder (the paper's CLIP consistency), against the same on the source.
* drift per window (engine/drift.py), with and without the anchoring.

A one-line verdict names what to look at and the worst frames, by source frame number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

QC_SIZE = 320  # longest side of the frames the measures run on
OCCLUSION_LEVEL = 0.12  # a source warp error above this (of 1) marks an occluded pixel
EMBED_BATCH = 8
REPORT_VERSION = 1

# Verdict thresholds
FLICKER_RATIO = 1.5  # warp error against the source's
FLICKER_FLOOR = 0.004  # ... and at least this much above it (of 1), so static clips do not alarm
UNEDITED_PSNR_LOW = 30.0  # dB
FIRST_FRAME_PSNR_LOW = 25.0  # dB
EMBEDDING_DROP = 0.05  # below the source's consistency
WORST_FRAMES = 3

Embed = Callable[[np.ndarray], np.ndarray]  # (N, 3, H, W) in [-1, 1] -> (N, D)


# -- the measures -------------------------------------------------------------------------------


def to_qc(frame: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (h, w, 3) float32 in [0, 1], content only, longest side QC_SIZE."""
    image = np.ascontiguousarray(frame.transpose(1, 2, 0), dtype=np.float32)
    if box is not None:
        left, top, right, bottom = box
        image = image[top:bottom, left:right]
    image = np.clip((image + 1.0) * 0.5, 0.0, 1.0)
    return _shrink(image)


def region_to_qc(region: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    if box is not None:
        left, top, right, bottom = box
        region = region[top:bottom, left:right]
    return _shrink(np.ascontiguousarray(region, dtype=np.float32))


def _shrink(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = QC_SIZE / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((image * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)


class FlowWarp:
    """Warps the previous frame onto the current one along the source's motion."""

    def __init__(self):
        preset = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
        self._flow = cv2.DISOpticalFlow_create(preset)  # type: ignore[attr-defined]

    def backward(self, current: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """(h, w, 2): for each pixel of `current`, the offset to where it was in `previous`."""
        return self._flow.calc(_grey(current), _grey(previous), None)

    @staticmethod
    def warp(previous: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`previous` pulled along `flow`, and where the sample fell inside the frame."""
        height, width = flow.shape[:2]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
        warped = cv2.remap(previous, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
        return warped, inside


def warp_errors(
    output: np.ndarray,
    previous_output: np.ndarray,
    source: np.ndarray,
    previous_source: np.ndarray,
    flow: np.ndarray,
) -> tuple[float, float]:
    """Mean absolute warp error of the output and of the source, on the same pixels."""
    warped_source, inside = FlowWarp.warp(previous_source, flow)
    warped_output, _ = FlowWarp.warp(previous_output, flow)
    source_error = np.abs(source - warped_source).mean(axis=2)
    output_error = np.abs(output - warped_output).mean(axis=2)
    valid = inside & (source_error <= OCCLUSION_LEVEL)
    if not valid.any():
        return 0.0, 0.0
    return float(output_error[valid].mean()), float(source_error[valid].mean())


def psnr(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    """In dB for images in [0, 1]; over the pixels where `weights` > 0.5. None: no pixels;
    inf: identical."""
    squared = ((a - b) ** 2).mean(axis=2)
    if weights is not None:
        keep = weights > 0.5
        if not keep.any():
            return None
        squared = squared[keep]
    mse = float(squared.mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03), per channel."""
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    index = (numerator / denominator).mean(axis=2)
    if weights is not None:
        keep = weights > 0.5
        if not keep.any():
            return None
        index = index[keep]
    return float(index.mean())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denominator) if denominator > 0 else 1.0


# -- the report ---------------------------------------------------------------------------------


@dataclass
class FrameRecord:
    frame: int  # the source's frame number
    warp_error: float | None = None  # to the previous frame; None for the first
    source_warp_error: float | None = None
    unedited_psnr: float | None = None
    unedited_ssim: float | None = None
    embedding_similarity: float | None = None  # to the previous frame
    source_embedding_similarity: float | None = None


@dataclass
class WindowDrift:
    half: str  # "forward from frame k" / "backward from frame k"
    window: int  # 1-based within the half
    frames: tuple[int, int]  # first and last source frame numbers
    before: float  # 8-bit levels from the anchor's statistics
    after: float | None  # with the anchoring; None when it is off


@dataclass
class QcAccumulator:
    """Fed each finished frame of one take in source order (`add`), then `report`."""

    first_number: int  # the source frame number of the range's frame 0
    edited: dict[int, np.ndarray]  # range index -> the edited frame (3, H, W) in [-1, 1]
    box: tuple[int, int, int, int] | None = None  # the canvas' content area
    embed: Embed | None = None
    drift_strength: float = 0.0
    drift_region: str = ""
    frames: list[FrameRecord] = field(default_factory=list)
    first_frame: list[dict[str, Any]] = field(default_factory=list)
    drift: list[WindowDrift] = field(default_factory=list)
    _flow: FlowWarp = field(default_factory=FlowWarp)
    _previous: tuple[np.ndarray, np.ndarray] | None = None  # output, source at QC size
    _pending: list[tuple[FrameRecord, np.ndarray, np.ndarray]] = field(default_factory=list)
    _embedding: tuple[np.ndarray, np.ndarray] | None = None  # the previous output's, source's

    def add(self, index: int, output: np.ndarray, source: np.ndarray, region: np.ndarray | None):
        """One frame of the take, on the canvas: (3, H, W) in [-1, 1], region (H, W) or None."""
        record = FrameRecord(self.first_number + index)
        out, src = to_qc(output, self.box), to_qc(source, self.box)
        if self._previous is not None:
            flow = self._flow.backward(src, self._previous[1])
            record.warp_error, record.source_warp_error = warp_errors(
                out, self._previous[0], src, self._previous[1], flow
            )
        if region is not None:
            unedited = 1.0 - region_to_qc(region, self.box)
            record.unedited_psnr = psnr(out, src, unedited)
            record.unedited_ssim = ssim(out, src, unedited)
        if index in self.edited:
            target = to_qc(self.edited[index], self.box)
            self.first_frame.append(
                {"frame": record.frame, "psnr": psnr(out, target), "ssim": ssim(out, target)}
            )
        self._previous = (out, src)
        self.frames.append(record)
        if self.embed is not None:
            self._pending.append((record, output, source))
            if len(self._pending) >= EMBED_BATCH:
                self._embed_pending()

    def _embed_pending(self) -> None:
        if not self._pending or self.embed is None:
            return
        outputs = np.stack([o for _, o, _ in self._pending])
        sources = np.stack([s for _, _, s in self._pending])
        embedded = self.embed(np.concatenate([outputs, sources]))
        count = len(self._pending)
        for i, (record, _, _) in enumerate(self._pending):
            current = (embedded[i], embedded[count + i])
            if self._embedding is not None:
                record.embedding_similarity = cosine(self._embedding[0], current[0])
                record.source_embedding_similarity = cosine(self._embedding[1], current[1])
            self._embedding = current
        self._pending.clear()

    def add_drift(self, drift: WindowDrift) -> None:
        self.drift.append(drift)

    def report(self) -> dict[str, Any]:
        self._embed_pending()
        return build_report(self)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(present)) if present else None


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: identical pictures report PSNR as None with `identical` set."""
    return value if value is None or math.isfinite(value) else None


def build_report(qc: QcAccumulator) -> dict[str, Any]:
    records = qc.frames
    out_warp = _mean([r.warp_error for r in records])
    src_warp = _mean([r.source_warp_error for r in records])
    ratio = None
    if out_warp is not None and src_warp is not None:
        ratio = out_warp / src_warp if src_warp > 1e-6 else (1.0 if out_warp < 1e-6 else math.inf)
    unedited = None
    if any(r.unedited_psnr is not None for r in records):
        finite = [r.unedited_psnr for r in records if r.unedited_psnr is not None]
        finite = [p for p in finite if math.isfinite(p)]
        unedited = {
            "psnr": _mean(finite),  # over the frames that differ at all
            "ssim": _mean([r.unedited_ssim for r in records]),
            "identical": not finite,
        }
    embedding = None
    if any(r.embedding_similarity is not None for r in records):
        embedding = {
            "consistency": _mean([r.embedding_similarity for r in records]),
            "source_consistency": _mean([r.source_embedding_similarity for r in records]),
        }
    first_frame = [
        {**f, "psnr": _finite(f["psnr"]), "identical": f["psnr"] == math.inf}
        for f in qc.first_frame
    ]
    worst = worst_frames(records)
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "frames": [records[0].frame, records[-1].frame] if records else [],
        "temporal": {
            "warp_error": out_warp,
            "source_warp_error": src_warp,
            "ratio": _finite(ratio),
        },
        "unedited": unedited,
        "first_frame": first_frame,
        "embedding": embedding,
        "drift": {
            "strength": qc.drift_strength,
            "region": qc.drift_region,
            "windows": [
                {
                    "half": d.half,
                    "window": d.window,
                    "frames": list(d.frames),
                    "before": d.before,
                    "after": d.after,
                }
                for d in qc.drift
            ],
        },
        "worst_frames": worst,
        "per_frame": [
            {
                "frame": r.frame,
                "warp_error": r.warp_error,
                "source_warp_error": r.source_warp_error,
                "unedited_psnr": _finite(r.unedited_psnr),
                "unedited_ssim": r.unedited_ssim,
                "embedding_similarity": r.embedding_similarity,
                "source_embedding_similarity": r.source_embedding_similarity,
            }
            for r in records
        ],
    }
    report["verdict"] = verdict(report, ratio)
    return report


def worst_frames(records: list[FrameRecord], count: int = WORST_FRAMES) -> list[int]:
    """The frames whose warp error exceeds the source's most, then the largest embedding drops."""

    def excess(r: FrameRecord) -> float:
        warp = (r.warp_error or 0.0) - (r.source_warp_error or 0.0)
        drop = 0.0
        if r.embedding_similarity is not None and r.source_embedding_similarity is not None:
            drop = r.source_embedding_similarity - r.embedding_similarity
        return warp + 0.1 * drop

    scored = [r for r in records if r.warp_error is not None or r.embedding_similarity is not None]
    ranked = sorted(scored, key=lambda r: (-excess(r), r.frame))
    return [r.frame for r in ranked[:count] if excess(r) > 0]


def verdict(report: dict[str, Any], ratio: float | None) -> str:
    problems = []
    temporal = report["temporal"]
    if (
        ratio is not None
        and ratio > FLICKER_RATIO
        and (temporal["warp_error"] or 0) - (temporal["source_warp_error"] or 0) > FLICKER_FLOOR
    ):
        shown = "far more" if math.isinf(ratio) else f"{ratio:.1f}×"
        problems.append(f"flickers ({shown} the source's frame-to-frame warp error)")
    unedited = report["unedited"]
    if unedited and unedited["psnr"] is not None and unedited["psnr"] < UNEDITED_PSNR_LOW:
        problems.append(f"changes outside the mask ({unedited['psnr']:.1f} dB)")
    for first in report["first_frame"]:
        if first["psnr"] is not None and first["psnr"] < FIRST_FRAME_PSNR_LOW:
            problems.append(
                f"frame {first['frame']} departs from the edit ({first['psnr']:.1f} dB)"
            )
    embedding = report["embedding"]
    consistency = embedding["consistency"] if embedding else None
    if consistency is not None and consistency < (
        (embedding["source_consistency"] or 1.0) - EMBEDDING_DROP
    ):
        problems.append(
            f"content changes between frames (consistency {consistency:.2f}, "
            f"source {embedding['source_consistency']:.2f})"
        )
    drifts = [w for w in report["drift"]["windows"] if w["before"] is not None]
    if drifts:
        worst = max(drifts, key=lambda w: w["after"] if w["after"] is not None else w["before"])
        left = worst["after"] if worst["after"] is not None else worst["before"]
        if left > 8.0:
            problems.append(
                f"colour drifts by {left:.0f} levels by frames {worst['frames'][0]}–"
                f"{worst['frames'][1]}"
            )
    frames = report["worst_frames"]
    where = f"; worst frames {', '.join(str(f) for f in frames)}" if frames else ""
    if not problems:
        steady = ""
        if ratio is not None and math.isfinite(ratio):
            steady = f": motion as steady as the source (warp error {ratio:.2f}× the source's)"
        return f"OK{steady}{where}."
    return f"Check: {'; '.join(problems)}{where}."


def sidecar_path(output: Path) -> Path:
    """Next to the take: `take.mov.qc.json`, or `frames.qc.json` beside a PNG folder."""
    return output.with_name(output.name + ".qc.json")


def write_sidecar(output: Path, report: dict[str, Any]) -> Path:
    """Written atomically: a reader sees the whole report or none."""
    from framerelay.files import write_atomic

    text = json.dumps(report, indent=1, allow_nan=False)
    return write_atomic(sidecar_path(output), text.encode("utf-8"))


def summary(report: dict[str, Any], sidecar: Path | None) -> dict[str, Any]:
    """What the finished event carries: the verdict, the worst frames and the headline numbers."""
    unedited = report.get("unedited") or {}
    embedding = report.get("embedding") or {}
    first = report.get("first_frame") or []
    windows = report["drift"]["windows"]
    return {
        "verdict": report["verdict"],
        "worst_frames": list(report["worst_frames"]),
        "warp_error": report["temporal"]["warp_error"],
        "source_warp_error": report["temporal"]["source_warp_error"],
        "unedited_psnr": unedited.get("psnr"),
        "unedited_ssim": unedited.get("ssim"),
        "first_frame_psnr": min((f["psnr"] for f in first if f["psnr"] is not None), default=None),
        "first_frame_ssim": min((f["ssim"] for f in first if f["ssim"] is not None), default=None),
        "embedding_consistency": embedding.get("consistency"),
        "source_embedding_consistency": embedding.get("source_consistency"),
        "drift_before": max((w["before"] for w in windows), default=None),
        "drift_after": max((w["after"] for w in windows if w["after"] is not None), default=None),
        "sidecar": str(sidecar) if sidecar else "",
    }
