"""Training crops: square around the tumour box with a margin, padded, resized (METHOD §3)."""

import math

import numpy as np
import pytest

from imaging.crops import crop_window, extract_square, tumour_crop


def test_default_crop_is_224_uint8_grey():
    image = np.zeros((128, 128), np.uint8)
    out = tumour_crop(image, (40, 50, 70, 90))
    assert out.shape == (224, 224) and out.dtype == np.uint8
    assert tumour_crop(image, (40, 50, 70, 90), size=96).shape == (96, 96)


def test_window_is_centred_square_with_15_percent_margin_each_side():
    window = crop_window((40, 50, 70, 90))  # 30 wide, 40 high
    assert window.side == math.ceil(40 * 1.3)
    assert window.left + window.side / 2 == pytest.approx(55, abs=1) and window.top + window.side / 2 == \
        pytest.approx(70, abs=1)
    assert crop_window((40, 50, 70, 90), margin=0.5).side == 80


def test_the_whole_box_is_always_inside_the_window():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        x0, y0 = rng.uniform(-20, 200, size=2)
        w, h = rng.uniform(0.3, 120, size=2)
        margin = float(rng.choice([0.0, 0.05, 0.15, 0.4]))
        window = crop_window((x0, y0, x0 + w, y0 + h), margin=margin)
        assert window.left <= x0 and window.top <= y0
        assert window.left + window.side >= x0 + w and window.top + window.side >= y0 + h
        assert window.side <= math.ceil(max(w, h) * (1 + 2 * margin)) + 2


def test_tumour_pixels_land_where_the_box_maps_in_the_output():
    image = np.full((100, 100), 10, np.uint8)
    box = (30, 40, 50, 70)
    image[40:70, 30:50] = 250
    out = tumour_crop(image, box, margin=0.15, size=224)
    window = crop_window(box, margin=0.15)
    bx0, by0, bx1, by1 = window.box_in_output(box, 224)
    inner = out[int(by0) + 3:int(by1) - 3, int(bx0) + 3:int(bx1) - 3]
    assert inner.min() > 240
    assert out[:int(by0) - 3].max() < 20 and out[int(by1) + 3:].max() < 20  # margin shows the background
    assert 0 <= bx0 < bx1 <= 224 and 0 <= by0 < by1 <= 224


def test_boxes_at_the_border_are_padded_not_shifted():
    image = np.full((64, 64), 200, np.uint8)
    out = tumour_crop(image, (0, 0, 20, 20), size=64, fill=0)
    window = crop_window((0, 0, 20, 20))
    assert window.left < 0 and window.top < 0
    assert out[0, 0] == 0 and out[-1, -1] == 200  # padding top-left, image bottom-right
    square = extract_square(image, window, fill=7)
    pad = -window.left
    assert (square[:pad] == 7).all() and (square[pad:, pad:] == 200).all()


def test_crop_at_native_size_is_an_exact_copy():
    image = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    window = crop_window((10, 10, 30, 30), margin=0.0)
    out = tumour_crop(image, (10, 10, 30, 30), margin=0.0, size=window.side)
    assert np.array_equal(out, image[10:30, 10:30])


@pytest.mark.parametrize("image, box, kwargs, message", [
    (np.zeros((10, 10), np.uint16), (1, 1, 5, 5), {}, "uint8"),
    (np.zeros((10, 10, 3), np.uint8), (1, 1, 5, 5), {}, "one grey slice"),
    (np.zeros((10, 10), np.uint8), (5, 1, 5, 5), {}, "x1 > x0"),
    (np.zeros((10, 10), np.uint8), (1, 2, 3), {}, "four numbers"),
    (np.zeros((10, 10), np.uint8), (20, 20, 30, 30), {}, "outside"),
    (np.zeros((10, 10), np.uint8), (1, 1, 5, 5), {"margin": -0.1}, "margin"),
    (np.zeros((10, 10), np.uint8), (1, 1, 5, 5), {"size": 0}, "size"),
])
def test_bad_inputs_are_refused_with_the_reason(image, box, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tumour_crop(image, box, **kwargs)
