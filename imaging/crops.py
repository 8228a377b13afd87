"""Training crops: a square around the tumour box, resized to the network input (METHOD §3).

The crop keeps the whole tumour box in view plus a margin on every side (default 15% of the box's
longer side, configurable), is padded with ``fill`` where it runs past the image border, and is
resized to ``size`` × ``size`` (default 224) with bilinear interpolation (Pillow). The result is
one grey uint8 channel; the repeat into 3 channels for MobileNetV2 happens in the training
pipeline, not here, so the cohort store stays three times smaller.

Boxes are ``(x0, y0, x1, y1)`` in pixels of the slice: x = column, y = row, x1 and y1 exclusive
(the pixels ``image[y0:y1, x0:x1]``), the convention of the phantom ``boxes.csv`` too.
No Django import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.constants import INPUT_SIZE

DEFAULT_MARGIN = 0.15


@dataclass(frozen=True)
class CropWindow:
    """A square in slice pixels: top-left corner (may be negative, i.e. outside) and side length."""

    left: int
    top: int
    side: int

    def box_in_output(self, box: Sequence[float], size: int) -> tuple[float, float, float, float]:
        """Where a slice box lands in the resized ``size`` × ``size`` crop (float pixels)."""
        scale = size / self.side
        x0, y0, x1, y1 = (float(v) for v in box)
        return ((x0 - self.left) * scale, (y0 - self.top) * scale, (x1 - self.left) * scale,
                (y1 - self.top) * scale)


def _check_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box: expected four numbers (x0, y0, x1, y1), got {box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box: coordinates must be finite, got {box!r}")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box: needs x1 > x0 and y1 > y0, got {box!r}")
    return x0, y0, x1, y1


def crop_window(box: Sequence[float], *, margin: float = DEFAULT_MARGIN) -> CropWindow:
    """The square around ``box``, centred on it, side = longer box side × (1 + 2 × margin), rounded up
    so the whole box always fits."""
    if not 0.0 <= margin <= 2.0:
        raise ValueError(f"margin: must lie in [0, 2] (fraction of the box's longer side), not {margin!r}")
    x0, y0, x1, y1 = _check_box(box)
    longer = max(x1 - x0, y1 - y0)
    side = max(1, math.ceil(longer * (1.0 + 2.0 * margin) - 1e-9))
    left = math.floor((x0 + x1) / 2.0 - side / 2.0)
    top = math.floor((y0 + y1) / 2.0 - side / 2.0)
    # Rounding can leave the box poking out by less than a pixel: grow the square to cover it.
    side = max(side, math.ceil(x1) - left, math.ceil(y1) - top)
    return CropWindow(left=left, top=top, side=side)


def extract_square(image: np.ndarray, window: CropWindow, *, fill: int = 0) -> np.ndarray:
    """The ``window`` region of a 2-D image at full resolution, padded with ``fill`` outside the image."""
    rows, cols = image.shape
    out = np.full((window.side, window.side), fill, dtype=image.dtype)
    r0, c0 = max(window.top, 0), max(window.left, 0)
    r1, c1 = min(window.top + window.side, rows), min(window.left + window.side, cols)
    if r1 > r0 and c1 > c0:
        out[r0 - window.top:r1 - window.top, c0 - window.left:c1 - window.left] = image[r0:r1, c0:c1]
    return out


def tumour_crop(image: np.ndarray, box: Sequence[float], *, margin: float = DEFAULT_MARGIN,
                size: int = INPUT_SIZE, fill: int = 0) -> np.ndarray:
    """Square crop around the tumour ``box`` of an 8-bit slice (rows, cols), resized to (size, size) uint8.

    Raises ValueError for a non-2-D or non-uint8 image, a malformed box, or a box outside the image.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image: expected one grey slice (rows, cols), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 (window the slice first), got {image.dtype}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size: must be a whole number of at least 8 pixels, not {size!r}")
    if not 0 <= fill <= 255:
        raise ValueError(f"fill: must be a grey value 0..255, not {fill!r}")
    x0, y0, x1, y1 = _check_box(box)
    rows, cols = image.shape
    if x1 <= 0 or y1 <= 0 or x0 >= cols or y0 >= rows:
        raise ValueError(f"box {box!r} lies outside the {cols}×{rows} image")
    window = crop_window((x0, y0, x1, y1), margin=margin)
    square = extract_square(image, window, fill=fill)
    if window.side == size:
        return square
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
