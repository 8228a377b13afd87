"""DICOM element values as plain numbers: one reading rule for the reader, the sequence rules and the window.

pydicom hands a numeric element over as a DSfloat / IS / float, a MultiValue of them, a string when the VR is
unknown, or nothing. Three modules each had their own "first value as a finite float"; this is the one.
"""

from __future__ import annotations

import math
from typing import Any


def first_value(value: Any) -> Any:
    """The first item of a multi-valued element, a single value as it is, None for an empty one."""
    if value is None or isinstance(value, (str, bytes)):
        return value
    try:
        return value[0] if len(value) else None
    except TypeError:
        return value


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, raw bytes, not a number, NaN or infinite)."""
    if value is None or isinstance(value, bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def first_float(value: Any) -> float | None:
    """The first number of a (possibly multi-valued) element as a finite float, or None."""
    return finite_float(first_value(value))
