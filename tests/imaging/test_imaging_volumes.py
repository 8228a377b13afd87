"""Viewer volumes (uint16 LE + JSON metadata) and 8-bit windowing (METHOD §3)."""

import json

import numpy as np
import pydicom
import pytest

from imaging.phantoms import write_phantom_cohort
from imaging.volumes import (
    Window,
    decode_volume,
    encode_series_datasets,
    encode_volume,
    percentile_window,
    series_to_uint8,
    series_window,
    slice_order,
    voi_window,
    window_to_uint8,
)

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _positions(n: int, spacing: float = 5.0) -> np.ndarray:
    return np.array([[-100.0, -80.0, 10.0 + spacing * k] for k in range(n)])


def test_encoding_round_trips_pixels_and_metadata_is_json():
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 4096, size=(5, 7, 9), dtype=np.uint16)
    volume = encode_volume(stored, pixel_spacing=(0.8, 0.9), slice_positions=_positions(5), orientation=AXIAL,
                           slice_thickness=4.0)
    assert len(volume.data) == stored.size * 2
    assert volume.data[:2] == int(stored[0, 0, 0]).to_bytes(2, "little")  # little-endian, C order
    meta = json.loads(json.dumps(volume.meta))
    assert np.array_equal(decode_volume(volume.data, meta), stored)
    assert meta["shape"] == [5, 7, 9] and meta["pixel_spacing"] == [0.8, 0.9]
    assert meta["slice_spacing"] == pytest.approx(5.0) and meta["slice_thickness"] == 4.0
    assert meta["slice_locations"] == [10.0, 15.0, 20.0, 25.0, 30.0]
    assert meta["window"]["source"] == "percentile" and meta["temporal_positions"] is None


def test_signed_values_are_shifted_and_the_intercept_keeps_real_values():
    stored = np.array([[[-1000, 0], [500, 2000]]], dtype=np.int16)
    volume = encode_volume(stored, pixel_spacing=(1, 1), slice_positions=_positions(1), orientation=AXIAL,
                           rescale_slope=2.0, rescale_intercept=-5.0)
    values = decode_volume(volume.data, volume.meta).astype(np.float64)
    rescale = volume.meta["rescale"]
    assert values.min() == 0
    assert np.allclose(values * rescale["slope"] + rescale["intercept"], stored * 2.0 - 5.0)
    assert volume.meta["value_range"] == [-2005.0, 3995.0]


def test_float_modality_values_are_stored_losslessly_or_quantised():
    whole = np.array([[[-3.0, 0.0], [12.0, 4000.0]]] * 2, np.float32)  # e.g. dicom_read output
    volume = encode_volume(whole, pixel_spacing=(1, 1), slice_positions=_positions(2), orientation=AXIAL)
    rescale = volume.meta["rescale"]
    restored = decode_volume(volume.data, volume.meta) * rescale["slope"] + rescale["intercept"]
    assert rescale["slope"] == 1.0 and np.array_equal(restored, whole)
    fractional = np.linspace(0.0, 1.5e-3, 2 * 3 * 3).reshape(2, 3, 3)  # an ADC map in mm²/s
    volume = encode_volume(fractional, pixel_spacing=(1, 1), slice_positions=_positions(2), orientation=AXIAL)
    rescale = volume.meta["rescale"]
    restored = decode_volume(volume.data, volume.meta) * rescale["slope"] + rescale["intercept"]
    assert np.abs(restored - fractional).max() <= rescale["slope"] / 2 + 1e-12
    assert volume.meta["value_range"] == pytest.approx([0.0, 1.5e-3])


def test_voi_window_is_used_when_present_else_percentiles():
    stored = np.arange(1000, dtype=np.uint16).reshape(10, 10, 10)
    with_voi = encode_volume(stored, pixel_spacing=(1, 1), slice_positions=_positions(10), orientation=AXIAL,
                             voi=voi_window("400", "200"))
    assert with_voi.meta["window"] == {"center": 400.0, "width": 200.0, "source": "voi"}
    window = series_window(stored, slope=1.5, intercept=10.0)
    low, high = np.percentile(stored * 1.5 + 10.0, [0.5, 99.5])
    assert window.source == "percentile"
    assert window.low == pytest.approx(low, rel=1e-5) and window.high == pytest.approx(high, rel=1e-5)


@pytest.mark.parametrize("center, width, expected", [
    ([40, 80], [400, 800], Window(40.0, 400.0, "voi")), (None, 400, None), ("x", 400, None), (40, 0, None),
])
def test_voi_window_parsing(center, width, expected):
    assert voi_window(center, width) == expected


def test_windowing_maps_the_window_to_0_255_and_clips():
    window = Window(center=100.0, width=200.0, source="voi")
    out = window_to_uint8(np.array([-50.0, 0.0, 100.0, 200.0, 900.0]), window)
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 128, 255, 255]
    ramp = window_to_uint8(np.linspace(0, 200, 50), window)
    assert np.all(np.diff(ramp.astype(int)) >= 0)


def test_series_windowing_uses_one_percentile_window_for_all_slices():
    stored = np.stack([np.full((4, 4), 100, np.uint16), np.full((4, 4), 3000, np.uint16)])
    eight_bit, window = series_to_uint8(stored)
    assert window.source == "percentile"
    assert eight_bit[0].max() == 0 and eight_bit[1].min() == 255  # not windowed slice by slice
    flat = percentile_window(np.full((3, 3), 7.0))
    assert flat.width == 1.0 and flat.center == 7.0


def test_slice_order_sorts_phases_then_position():
    positions = np.array([[0, 0, 20.0], [0, 0, 10.0], [0, 0, 20.0], [0, 0, 10.0]])
    order = slice_order(positions, AXIAL, temporal_positions=[2, 2, 1, 1])
    assert order.tolist() == [3, 2, 1, 0]
    sagittal = [0, 1, 0, 0, 0, -1]  # normal points to the patient's right (-x)
    assert slice_order(np.array([[5.0, 0, 0], [-5.0, 0, 0]]), sagittal).tolist() == [0, 1]


@pytest.mark.parametrize("kwargs, message", [
    ({"stored": np.full((2, 3, 3), np.nan, np.float32)}, "NaN"),
    ({"stored": np.zeros((2, 3, 3), bool)}, "expected numbers"),
    ({"stored": np.zeros((3, 3), np.uint16)}, "frames, rows, cols"),
    ({"slice_positions": _positions(3)}, "3 positions for 2 frames"),
    ({"pixel_spacing": (0, 1)}, "pixel_spacing"),
    ({"orientation": [1, 0, 0, 1, 0, 0]}, "parallel"),
    ({"stored": np.array([[[-40000, 40000]]] * 2, np.int32)}, "16 bits"),
])
def test_bad_inputs_get_clear_errors(kwargs, message):
    args = {"stored": np.zeros((2, 3, 3), np.uint16), "pixel_spacing": (1, 1),
            "slice_positions": _positions(2), "orientation": AXIAL, **kwargs}
    with pytest.raises(ValueError, match=message):
        encode_volume(**args)


def test_decode_checks_format_and_length():
    volume = encode_volume(np.zeros((1, 2, 2), np.uint16), pixel_spacing=(1, 1),
                           slice_positions=_positions(1), orientation=AXIAL)
    with pytest.raises(ValueError, match="expected 8"):
        decode_volume(volume.data[:-2], volume.meta)
    with pytest.raises(ValueError, match="unknown format"):
        decode_volume(volume.data, {**volume.meta, "format": "png"})


def test_phantom_series_encode_in_slice_order(tmp_path):
    # Seed 1: dynamic series and a Philips-style site (RescaleSlope != 1) among 4 patients.
    summary = write_phantom_cohort(tmp_path / "c", patients=4, sarcoma_fraction=0.5, seed=1, slice_size=32,
                                   slices_per_series=5)
    checked_dynamic, slopes = False, set()
    for folder in sorted(summary.dicom_dir.glob("*/S*")):
        files = sorted(folder.glob("*.dcm"))
        datasets = [pydicom.dcmread(p) for p in reversed(files)]  # deliberately shuffled
        first = datasets[-1]
        if len({tuple(d.ImageOrientationPatient) for d in datasets}) > 1:
            continue  # the three-plane localizer is not a volume
        volume = encode_series_datasets(datasets)
        stored = decode_volume(volume.data, volume.meta)
        assert stored.shape == (len(files), 32, 32)
        if "TemporalPositionIdentifier" in first:
            checked_dynamic = True
            assert volume.meta["temporal_positions"] == sorted(volume.meta["temporal_positions"])
            assert len(set(volume.meta["temporal_positions"])) == 4
        else:
            assert np.all(np.diff(volume.meta["slice_locations"]) > 0)
            assert np.array_equal(stored[0], pydicom.dcmread(files[0]).pixel_array)
        if "WindowCenter" in first:
            assert volume.meta["window"]["source"] == "voi"
            assert volume.meta["window"]["center"] == float(first.WindowCenter)
        slope = float(first.get("RescaleSlope", 1.0))
        assert volume.meta["rescale"]["slope"] == slope
        slopes.add(slope)
    assert checked_dynamic and len(slopes) > 1
