"""The one reading of a numeric DICOM value (imaging.dicom_values)."""

import math

import pytest
from pydicom.multival import MultiValue
from pydicom.valuerep import IS, DSfloat

from imaging.dicom_values import finite_float, first_float, first_value


@pytest.mark.parametrize(("value", "expected"), [
    (DSfloat("40.5"), 40.5), (IS("3"), 3.0), (2.5, 2.5), ("1.25", 1.25),
    (MultiValue(DSfloat, ["300", "400"]), 300.0), ([7, 8], 7.0),
    (None, None), ([], None), (b"1.5", None), ("abc", None), ("", None), (float("nan"), None),
    (float("inf"), None), (MultiValue(DSfloat, []), None),
])
def test_first_float(value, expected):
    assert first_float(value) == expected


def test_finite_float_does_not_pick_from_a_multi_value():
    assert finite_float([1.0, 2.0]) is None
    assert finite_float("2e3") == 2000.0 and finite_float(-math.inf) is None


def test_first_value_keeps_strings_whole():
    assert first_value("AXIAL") == "AXIAL" and first_value(["A", "B"]) == "A" and first_value(5) == 5
