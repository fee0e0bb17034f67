"""Colour: what a source's pixels mean, and the mapping to and from the model's RGB.

Three spaces are involved:

- **stored**: the codes in the file (Y'CbCr or RGB, limited or full range, 8 to 16 bits);
- **native**: the source's own non-linear R'G'B' in [0, 1] (its primaries and transfer), the
  space where kept pixels are composited and from which outputs are encoded;
- **model**: display-referred BT.709 R'G'B' in [0, 1] (BT.1886, gamma 2.4), what the model sees.

Native <-> stored is exact up to rounding (`yuv_to_rgb` / `rgb_to_yuv`). Native <-> model is the
identity for SDR BT.709/BT.601 footage. Wide-gamut SDR is converted through linear light. HDR (PQ,
HLG) is tone-mapped by `ToneMap`, which is strictly monotonic, so `from_model(to_model(x)) == x`
for every colour inside BT.709 and below the source's peak (see docs/footage-and-colour.md).
An optional per-job input transform (a 1D `.cube` LUT) replaces the transfer for log footage and is
inverted on the way back.

Tags use FFmpeg's enum values (`AVColorSpace`, `AVColorPrimaries`, `AVColorTransferCharacteristic`,
`AVColorRange`), which are also those of H.273.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from framerelay.errors import InvalidSpecError, SourceUnreadableError

# AVColorSpace (matrix)
MATRIX_RGB, MATRIX_BT709, MATRIX_UNSPECIFIED = 0, 1, 2
MATRIX_FCC, MATRIX_BT470BG, MATRIX_SMPTE170M, MATRIX_SMPTE240M = 4, 5, 6, 7
MATRIX_BT2020_NCL, MATRIX_BT2020_CL, MATRIX_ICTCP = 9, 10, 14
# AVColorPrimaries
PRIMARIES_BT709, PRIMARIES_UNSPECIFIED, PRIMARIES_BT470BG, PRIMARIES_SMPTE170M = 1, 2, 5, 6
PRIMARIES_SMPTE240M, PRIMARIES_BT2020, PRIMARIES_P3_D65 = 7, 9, 12
# AVColorTransferCharacteristic
TRC_BT709, TRC_UNSPECIFIED, TRC_GAMMA22, TRC_GAMMA28, TRC_SMPTE170M = 1, 2, 4, 5, 6
TRC_SMPTE240M, TRC_LINEAR, TRC_SRGB, TRC_BT2020_10, TRC_BT2020_12 = 7, 8, 13, 14, 15
TRC_PQ, TRC_HLG = 16, 18
# AVColorRange
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2

# (Kr, Kb) of each Y'CbCr matrix
MATRIX_COEFFICIENTS: dict[int, tuple[float, float]] = {
    MATRIX_BT709: (0.2126, 0.0722),
    MATRIX_FCC: (0.30, 0.11),
    MATRIX_BT470BG: (0.299, 0.114),
    MATRIX_SMPTE170M: (0.299, 0.114),
    MATRIX_SMPTE240M: (0.212, 0.087),
    MATRIX_BT2020_NCL: (0.2627, 0.0593),
}
# xy chromaticities of R, G, B (all with the D65 white point)
PRIMARIES_XY: dict[int, tuple[tuple[float, float], ...]] = {
    PRIMARIES_BT709: ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060)),
    PRIMARIES_BT470BG: ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060)),
    PRIMARIES_SMPTE170M: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070)),
    PRIMARIES_SMPTE240M: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070)),
    PRIMARIES_BT2020: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046)),
    PRIMARIES_P3_D65: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),
}
D65 = (0.3127, 0.3290)
# Primaries NLEs show as they are (the small 601/709 difference is not converted, as players do).
SDR_PRIMARIES = (PRIMARIES_BT709, PRIMARIES_BT470BG, PRIMARIES_SMPTE170M, PRIMARIES_SMPTE240M)
WIDE_PRIMARIES = (PRIMARIES_BT2020, PRIMARIES_P3_D65)
SDR_TRANSFERS = (
    TRC_BT709,
    TRC_GAMMA22,
    TRC_GAMMA28,
    TRC_SMPTE170M,
    TRC_SMPTE240M,
    TRC_SRGB,
    TRC_BT2020_10,
    TRC_BT2020_12,
)
HDR_TRANSFERS = (TRC_PQ, TRC_HLG)

NAMES = {
    "matrix": {0: "RGB", 1: "BT.709", 4: "FCC", 5: "BT.601 (625)", 6: "BT.601 (525)",
               7: "SMPTE 240M", 8: "YCgCo", 9: "BT.2020 NCL", 10: "BT.2020 CL", 14: "ICtCp"},
    "primaries": {1: "BT.709", 5: "BT.601 (625)", 6: "BT.601 (525)", 7: "SMPTE 240M",
                  9: "BT.2020", 11: "DCI-P3", 12: "Display P3"},
    "transfer": {1: "BT.709", 4: "gamma 2.2", 5: "gamma 2.8", 6: "BT.601", 7: "SMPTE 240M",
                 8: "linear", 13: "sRGB", 14: "BT.2020", 15: "BT.2020", 16: "PQ", 18: "HLG"},
    "range": {1: "limited", 2: "full"},
}  # fmt: skip

BT1886_GAMMA = 2.4
HDR_REFERENCE_WHITE_NITS = 203.0  # BT.2408: HDR reference (diffuse) white maps to SDR 100 %
PQ_PEAK_NITS = 10000.0
HLG_PEAK_NITS = 1000.0  # BT.2100 nominal peak of the HLG reference display
HLG_SYSTEM_GAMMA = 1.2
TONE_KNEE = 0.75  # SDR linear level up to which HDR is passed unchanged (1.0 = reference white)
_UNSUPPORTED_HINT = (
    "Transcode it to BT.709 (SDR) or BT.2100 PQ/HLG (HDR) in your editor, or give an input "
    "transform (--input-lut)."
)


@dataclass(frozen=True)
class ColourSpace:
    """A source's colour tags, with unspecified ones resolved (`assumed` lists which)."""

    matrix: int = MATRIX_BT709
    primaries: int = PRIMARIES_BT709
    transfer: int = TRC_BT709
    range: int = RANGE_LIMITED
    assumed: tuple[str, ...] = ()

    @property
    def is_hdr(self) -> bool:
        return self.transfer in HDR_TRANSFERS

    @property
    def is_rgb(self) -> bool:
        return self.matrix == MATRIX_RGB

    @property
    def full_range(self) -> bool:
        return self.range == RANGE_FULL

    def describe(self) -> str:
        parts = [
            f"{key} {NAMES[key].get(getattr(self, key), getattr(self, key))}"
            for key in ("matrix", "primaries", "transfer", "range")
        ]
        text = ", ".join(parts)
        return f"{text} (assumed: {', '.join(self.assumed)})" if self.assumed else text


def resolve(
    matrix: int,
    primaries: int,
    transfer: int,
    colour_range: int,
    *,
    width: int,
    height: int,
    rgb: bool = False,
    full_range_format: bool = False,
) -> ColourSpace:
    """Fill unspecified tags as players and NLEs do: BT.709 for HD and larger, BT.601 for SD.

    `rgb`: the stored pixels are R'G'B' (no matrix). `full_range_format`: a yuvj* format.
    """
    hd = width >= 1280 or height >= 720
    assumed = []
    if rgb:
        matrix = MATRIX_RGB
    elif matrix in (MATRIX_UNSPECIFIED, 3):
        matrix = MATRIX_BT709 if hd else MATRIX_SMPTE170M
        assumed.append("matrix")
    if primaries in (PRIMARIES_UNSPECIFIED, 3, 0):
        sd_primaries = PRIMARIES_BT470BG if height in (576, 288) else PRIMARIES_SMPTE170M
        primaries = PRIMARIES_BT709 if hd else sd_primaries
        assumed.append("primaries")
    if transfer in (TRC_UNSPECIFIED, 3, 0):
        transfer = TRC_SRGB if rgb else TRC_BT709
        assumed.append("transfer")
    if colour_range not in (RANGE_LIMITED, RANGE_FULL):
        colour_range = RANGE_FULL if (rgb or full_range_format) else RANGE_LIMITED
        assumed.append("range")
    return ColourSpace(matrix, primaries, transfer, colour_range, tuple(assumed))


def check_supported(space: ColourSpace, name: str, has_input_transform: bool) -> None:
    """Refuse what would give wrong pixels: one line naming the tag and a hint."""
    if not space.is_rgb and space.matrix not in MATRIX_COEFFICIENTS:
        label = NAMES["matrix"].get(space.matrix, f"#{space.matrix}")
        raise SourceUnreadableError(
            f"{name} uses the {label} colour matrix, which framerelay cannot convert",
            _UNSUPPORTED_HINT,
        )
    if has_input_transform:
        return  # the LUT defines what the codes mean
    if space.transfer not in (*SDR_TRANSFERS, *HDR_TRANSFERS, TRC_LINEAR):
        label = NAMES["transfer"].get(space.transfer, f"#{space.transfer}")
        raise SourceUnreadableError(
            f"{name} uses the {label} transfer function (log or unknown), which is not "
            "display-referred",
            "Give an input transform that maps it to BT.709: --input-lut FILE.cube (a 1D LUT).",
        )
    if space.primaries not in (*SDR_PRIMARIES, *WIDE_PRIMARIES):
        label = NAMES["primaries"].get(space.primaries, f"#{space.primaries}")
        raise SourceUnreadableError(
            f"{name} has {label} primaries, which framerelay cannot convert", _UNSUPPORTED_HINT
        )


# -- stored codes <-> native R'G'B' ---------------------------------------------------------------


def _levels(bits: int, full: bool) -> tuple[float, float, float, float]:
    """(luma offset, luma scale, chroma offset, chroma scale) for codes of `bits` bits."""
    if full:
        top = float(2**bits - 1)
        return 0.0, top, float(2 ** (bits - 1)), top
    unit = float(2 ** (bits - 8))
    return 16 * unit, 219 * unit, 128 * unit, 224 * unit


def yuv_to_rgb(
    y: np.ndarray, cb: np.ndarray, cr: np.ndarray, space: ColourSpace, bits: int
) -> np.ndarray:
    """Full-resolution Y'CbCr codes -> float32 (H, W, 3) native R'G'B' (not clipped)."""
    y0, ys, c0, cs = _levels(bits, space.full_range)
    kr, kb = MATRIX_COEFFICIENTS[space.matrix]
    kg = 1.0 - kr - kb
    luma = (y.astype(np.float32) - y0) / ys
    pb = (cb.astype(np.float32) - c0) / cs
    pr = (cr.astype(np.float32) - c0) / cs
    rgb = np.empty((*luma.shape, 3), np.float32)
    rgb[..., 0] = luma + (2 - 2 * kr) * pr
    rgb[..., 2] = luma + (2 - 2 * kb) * pb
    rgb[..., 1] = (luma - kr * rgb[..., 0] - kb * rgb[..., 2]) / kg
    return rgb


def rgb_to_yuv(
    rgb: np.ndarray, space: ColourSpace, bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float (H, W, 3) native R'G'B' -> float32 Y', Cb, Cr in code units (not yet rounded)."""
    y0, ys, c0, cs = _levels(bits, space.full_range)
    kr, kb = MATRIX_COEFFICIENTS[space.matrix]
    kg = 1.0 - kr - kb
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    luma = kr * r + kg * g + kb * b
    pb = (b - luma) / (2 - 2 * kb)
    pr = (r - luma) / (2 - 2 * kr)
    return luma * ys + y0, pb * cs + c0, pr * cs + c0


def rgb_levels(bits: int, full: bool) -> tuple[float, float]:
    """(offset, scale) of R'G'B' codes: full range, or limited (16..235 at 8 bits)."""
    y0, ys, _, _ = _levels(bits, full)
    return y0, ys


def quantize(values: np.ndarray, bits: int) -> np.ndarray:
    """Round code values to the nearest integer and clip them to the container's range."""
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.clip(np.floor(values + 0.5), 0, 2**bits - 1).astype(dtype)


# -- transfer functions ---------------------------------------------------------------------------

_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_HLG_A = 0.17883277
_HLG_B = 1 - 4 * _HLG_A
_HLG_C = 0.5 - _HLG_A * math.log(4 * _HLG_A)


def pq_eotf(code: np.ndarray) -> np.ndarray:
    """PQ signal in [0, 1] -> display light in nits (SMPTE ST 2084)."""
    e = np.clip(code, 0, 1) ** (1 / _PQ_M2)
    return PQ_PEAK_NITS * (np.maximum(e - _PQ_C1, 0) / (_PQ_C2 - _PQ_C3 * e)) ** (1 / _PQ_M1)


def pq_inverse_eotf(nits: np.ndarray) -> np.ndarray:
    y = (np.clip(nits, 0, PQ_PEAK_NITS) / PQ_PEAK_NITS) ** _PQ_M1
    return ((_PQ_C1 + _PQ_C2 * y) / (1 + _PQ_C3 * y)) ** _PQ_M2


def hlg_inverse_oetf(code: np.ndarray) -> np.ndarray:
    """HLG signal in [0, 1] -> scene light in [0, 1] (BT.2100)."""
    e = np.clip(code, 0, 1)
    low = e * e / 3
    high = (np.exp((np.maximum(e, 0.5) - _HLG_C) / _HLG_A) + _HLG_B) / 12
    return np.where(e <= 0.5, low, high)


def hlg_oetf(scene: np.ndarray) -> np.ndarray:
    s = np.clip(scene, 0, 1)
    low = np.sqrt(3 * s)
    high = _HLG_A * np.log(np.maximum(12 * s - _HLG_B, 1e-12)) + _HLG_C
    return np.where(s <= 1 / 12, low, high)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded, for linear sources (EXR, 32-bit PSD)."""
    x = np.clip(linear, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def srgb_decode(code: np.ndarray) -> np.ndarray:
    x = np.clip(code, 0, 1)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4))


def _bt1886_decode(code: np.ndarray) -> np.ndarray:
    return np.power(np.clip(code, 0, None), BT1886_GAMMA)


def _bt1886_encode(linear: np.ndarray) -> np.ndarray:
    return np.power(np.clip(linear, 0, None), 1 / BT1886_GAMMA)


def _luminance(rgb: np.ndarray, primaries: int) -> np.ndarray:
    weights = _rgb_to_xyz(primaries)[1]
    return rgb @ weights.astype(np.float32)


# -- primaries ------------------------------------------------------------------------------------


def _rgb_to_xyz(primaries: int) -> np.ndarray:
    xy = np.array(PRIMARIES_XY[primaries], np.float64)
    xyz = np.stack([xy[:, 0] / xy[:, 1], np.ones(3), (1 - xy.sum(axis=1)) / xy[:, 1]])
    wx, wy = D65
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return xyz * np.linalg.solve(xyz, white)


def primaries_matrix(source: int, target: int) -> np.ndarray:
    """3x3 matrix taking linear RGB in `source` primaries to `target` primaries."""
    return np.linalg.solve(_rgb_to_xyz(target), _rgb_to_xyz(source))


def _apply(matrix: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    return rgb @ matrix.T.astype(np.float32)


# -- HDR tone mapping -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ToneMap:
    """Max-RGB roll-off: identity up to `knee`, then an extended-Reinhard shoulder to 1 at `peak`.

    Values are linear light with 1.0 = HDR reference white (203 nits). Above the knee k, with
    y = (m - k) / (1 - k) and Y = (peak - k) / (1 - k), the curve is k + (1 - k)·y(1 + y/Y²)/(1 + y):
    C1 at the knee, strictly increasing, and exactly 1 at the peak, so the inverse (a quadratic)
    exists for every SDR value and float precision holds up to the peak. Scaling R, G and B by the
    same factor keeps hue and saturation.
    """

    knee: float = TONE_KNEE
    peak: float = PQ_PEAK_NITS / HDR_REFERENCE_WHITE_NITS

    def forward(self, rgb: np.ndarray) -> np.ndarray:
        peak = np.max(rgb, axis=-1, keepdims=True)
        return rgb * _ratio(self._curve(np.minimum(peak, self.peak)), peak)

    def inverse(self, rgb: np.ndarray) -> np.ndarray:
        peak = np.max(rgb, axis=-1, keepdims=True)
        return rgb * _ratio(self._inverse_curve(np.minimum(peak, 1.0)), peak)

    @property
    def _span(self) -> float:
        return (self.peak - self.knee) / (1 - self.knee)

    def _curve(self, m: np.ndarray) -> np.ndarray:
        k, big = self.knee, self._span
        m = np.asarray(m, np.float64)
        y = (np.maximum(m, k) - k) / (1 - k)
        shoulder = k + (1 - k) * y * (1 + y / big**2) / (1 + y)
        return np.where(m <= k, m, shoulder)

    def _inverse_curve(self, f: np.ndarray) -> np.ndarray:
        k, big = self.knee, self._span
        f = np.asarray(f, np.float64)
        g = (np.maximum(f, k) - k) / (1 - k)
        a = 1 / big**2
        y = (-(1 - g) + np.sqrt((1 - g) ** 2 + 4 * a * g)) / (2 * a)
        return np.where(f <= k, f, k + (1 - k) * y)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 1e-12, denominator, 1.0)
    return np.where(denominator > 1e-12, numerator / safe, 1.0).astype(np.float32)


# -- input transform ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Lut1D:
    """A per-channel 1D LUT (`.cube`): native codes -> BT.709 display codes, and back."""

    path: Path
    domain: tuple[np.ndarray, np.ndarray]  # (min, max) per channel
    table: np.ndarray  # (N, 3)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        out = np.empty(rgb.shape, np.float32)
        for c in range(3):
            grid = np.linspace(self.domain[0][c], self.domain[1][c], len(self.table))
            out[..., c] = np.interp(rgb[..., c], grid, self.table[:, c])
        return out

    def invert(self, rgb: np.ndarray) -> np.ndarray:
        out = np.empty(rgb.shape, np.float32)
        for c in range(3):
            grid = np.linspace(self.domain[0][c], self.domain[1][c], len(self.table))
            column = self.table[:, c]
            if column[0] > column[-1]:
                out[..., c] = np.interp(rgb[..., c], column[::-1], grid[::-1])
            else:
                out[..., c] = np.interp(rgb[..., c], column, grid)
        return out

    @property
    def name(self) -> str:
        return self.path.name


def _three_floats(values: list[str]) -> list[float]:
    if len(values) != 3:
        raise ValueError("three values expected")
    return [float(v) for v in values]


def load_cube(path: str | Path) -> Lut1D:
    """Read a 1D `.cube` LUT (Resolve/Adobe); refuse 3D LUTs and curves that cannot be inverted."""
    path = Path(path)
    hint = "Export the input transform as a 1D LUT in .cube format (LUT_1D_SIZE)."
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise InvalidSpecError(
            f"cannot read the input LUT {path}: {error.strerror}", hint
        ) from error
    size, low, high, rows = None, [0.0] * 3, [1.0] * 3, []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("TITLE"):
            continue
        key, *values = line.split()
        if key == "LUT_3D_SIZE":
            raise InvalidSpecError(
                f"{path.name} is a 3D LUT; the input transform must be a 1D LUT", hint
            )
        try:  # the message never quotes the line: the file may be anything the caller names
            if key == "LUT_1D_SIZE":
                size = int(values[0])
            elif key == "DOMAIN_MIN":
                low = _three_floats(values)
            elif key == "DOMAIN_MAX":
                high = _three_floats(values)
            elif key == "LUT_1D_INPUT_RANGE":
                low, high = [float(values[0])] * 3, [float(values[1])] * 3
            elif key[0].isdigit() or key[0] in "-.":
                rows.append([float(v) for v in (key, *values)])
        except (ValueError, IndexError):
            raise InvalidSpecError(
                f"{path.name} is not a valid 1D .cube LUT (line {number} cannot be read)", hint
            ) from None
    if size is None or size < 2 or len(rows) != size or any(len(r) != 3 for r in rows):
        raise InvalidSpecError(
            f"{path.name} is not a valid 1D .cube LUT (LUT_1D_SIZE {size}, {len(rows)} rows)", hint
        )
    table = np.asarray(rows, np.float32)
    for c in range(3):
        steps = np.diff(table[:, c])
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise InvalidSpecError(
                f"{path.name}: the curve of channel {'RGB'[c]} is not strictly monotonic, so the "
                "output cannot be written back in the source's encoding",
                "Use a strictly increasing 1D LUT (no flat or clipped segments).",
            )
    domain = (np.asarray(low, np.float32), np.asarray(high, np.float32))
    return Lut1D(path, domain, table)


# -- native <-> model -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ModelMapping:
    """Native R'G'B' of one source <-> the model's BT.709 display R'G'B'."""

    space: ColourSpace
    lut: Lut1D | None = None
    tone: ToneMap = field(default_factory=ToneMap)

    @property
    def identity(self) -> bool:
        return (
            self.lut is None
            and self.space.transfer in SDR_TRANSFERS
            and self.space.primaries in SDR_PRIMARIES
        )

    def describe(self) -> str:
        if self.lut is not None:
            return f"input transform {self.lut.name}"
        if self.space.is_hdr:
            name = NAMES["transfer"][self.space.transfer]
            return f"{name} tone-mapped to SDR BT.709 (knee {self.tone.knee})"
        if self.space.transfer == TRC_LINEAR:
            return "linear light encoded with the sRGB curve"
        if self.space.primaries in WIDE_PRIMARIES:
            return f"{NAMES['primaries'][self.space.primaries]} gamut converted to BT.709"
        return "none (SDR BT.709/BT.601 is shown as stored)"

    def to_model(self, native: np.ndarray) -> np.ndarray:
        """float (..., 3) native -> float32 model R'G'B' in [0, 1]."""
        rgb = native.astype(np.float32, copy=False)
        if self.lut is not None:
            rgb = self.lut.apply(rgb)
        elif self.space.is_hdr:
            light = self._hdr_to_relative(rgb)
            light = _apply(primaries_matrix(self.space.primaries, PRIMARIES_BT709), light)
            rgb = _bt1886_encode(self.tone.forward(np.clip(light, 0, None)))
        elif self.space.transfer == TRC_LINEAR:
            rgb = srgb_encode(rgb)
        elif self.space.primaries in WIDE_PRIMARIES:
            light = _apply(
                primaries_matrix(self.space.primaries, PRIMARIES_BT709), _bt1886_decode(rgb)
            )
            rgb = _bt1886_encode(light)
        return np.clip(rgb, 0, 1).astype(np.float32, copy=False)

    def to_native(self, model: np.ndarray) -> np.ndarray:
        """float (..., 3) model R'G'B' -> float32 native (the inverse of `to_model`)."""
        rgb = np.clip(model.astype(np.float32, copy=False), 0, 1)
        if self.lut is not None:
            return self.lut.invert(rgb)
        if self.space.is_hdr:
            light = self.tone.inverse(_bt1886_decode(rgb))
            light = _apply(primaries_matrix(PRIMARIES_BT709, self.space.primaries), light)
            return self._relative_to_hdr(np.clip(light, 0, None)).astype(np.float32)
        if self.space.transfer == TRC_LINEAR:
            return srgb_decode(rgb).astype(np.float32)
        if self.space.primaries in WIDE_PRIMARIES:
            light = _apply(
                primaries_matrix(PRIMARIES_BT709, self.space.primaries), _bt1886_decode(rgb)
            )
            return _bt1886_encode(light).astype(np.float32)
        return rgb

    def _hdr_to_relative(self, rgb: np.ndarray) -> np.ndarray:
        """HDR signal -> linear display light in the source primaries, 1.0 = 203 nits."""
        if self.space.transfer == TRC_PQ:
            nits = pq_eotf(rgb)
        else:
            scene = hlg_inverse_oetf(rgb)
            ys = np.clip(_luminance(scene, self.space.primaries), 0, None)[..., None]
            nits = HLG_PEAK_NITS * np.power(ys, HLG_SYSTEM_GAMMA - 1) * scene
        return (nits / HDR_REFERENCE_WHITE_NITS).astype(np.float32)

    def _relative_to_hdr(self, light: np.ndarray) -> np.ndarray:
        nits = light * HDR_REFERENCE_WHITE_NITS
        if self.space.transfer == TRC_PQ:
            return pq_inverse_eotf(nits)
        # the inverse OOTF: display = peak · Ys^(γ-1) · scene, and Yd = peak · Ys^γ
        yd = np.clip(_luminance(nits, self.space.primaries), 0, None)[..., None] / HLG_PEAK_NITS
        gain = np.power(np.power(yd, 1 / HLG_SYSTEM_GAMMA), HLG_SYSTEM_GAMMA - 1)
        safe = np.where(gain > 1e-12, gain, 1.0)
        scene = np.where(gain > 1e-12, nits / HLG_PEAK_NITS / safe, 0.0)
        return hlg_oetf(scene)


def mapping_for(space: ColourSpace, lut: Lut1D | None = None) -> ModelMapping:
    tone = ToneMap()
    if space.transfer == TRC_HLG:
        tone = replace(tone, peak=HLG_PEAK_NITS / HDR_REFERENCE_WHITE_NITS)
    return ModelMapping(space, lut, tone)
