"""How a heat-map looks (issue 18): one colour map for the viewer's overlay, its legend and the evaluation page's
gallery, so all three read alike. No Django.

The colour map is matplotlib's "turbo" (an improved "jet", the usual Grad-CAM look): blue for little, red for the
most. Where the map is 0 the overlay is transparent, and its opacity grows with the value
(``alpha = opacity × value / 255``), so the grey image stays readable where the ensemble saw nothing.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np

COLORMAP = "turbo"


@functools.lru_cache(maxsize=1)
def lut() -> np.ndarray:
    """(256, 3) uint8: the colour of each map value 0..255."""
    import matplotlib

    return np.rint(matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def png(image: np.ndarray) -> bytes:
    """A 2-D uint8 image (grey) or (H, W, 3) uint8 (RGB) as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")   # optimize: 6× the time, on a request
    return buffer.getvalue()


def png_base64(image: np.ndarray) -> str:
    return base64.b64encode(png(image)).decode("ascii")


def overlay(crop: np.ndarray, heat: np.ndarray, *, opacity: float = 0.6) -> np.ndarray:
    """The crop in grey with the map over it, as the viewer draws it: (S, S) uint8 ×2 → (S, S, 3) uint8."""
    crop = np.asarray(crop, dtype=np.float64)
    heat = np.asarray(heat)
    if crop.shape != heat.shape or crop.ndim != 2:
        raise ValueError(f"overlay: crop {crop.shape} and map {heat.shape} must be the same 2-D size")
    colour = lut()[heat].astype(np.float64)
    alpha = (opacity * heat.astype(np.float64) / 255.0)[..., None]
    out = crop[..., None] * (1.0 - alpha) + colour * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def legend_stops(n: int = 5) -> list[dict]:
    """Evenly spaced colours of the map for a legend: [{"value": 0..1, "rgb": "#rrggbb"}]."""
    table = lut()
    stops = []
    for value in np.linspace(0.0, 1.0, n):
        r, g, b = (int(v) for v in table[int(round(value * 255))])
        stops.append({"value": float(value), "rgb": f"#{r:02x}{g:02x}{b:02x}"})
    return stops
