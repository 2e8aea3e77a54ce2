from __future__ import annotations

import numpy as np
import pytest

from app.qt_image import array_to_qimage, qimage_to_array


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels,alpha", [(3, False), (1, False), (3, True), (1, True)])
def test_roundtrip(qapp: object, bits: int, channels: int, alpha: bool) -> None:
    rng = np.random.default_rng(1)
    top = 255 if bits == 8 else 65535
    px = (rng.integers(0, top + 1, (7, 5, channels)) / top).astype(np.float32)
    a = (rng.integers(0, top + 1, (7, 5)) / top).astype(np.float32) if alpha else None
    img = array_to_qimage(px, a, bits)
    assert (img.width(), img.height()) == (5, 7)
    back, back_a, back_bits = qimage_to_array(img)
    assert back_bits == bits
    # Gray with alpha travels as RGBA (Qt has no gray+alpha format), so it comes back as RGB.
    expect = np.repeat(px, 3, axis=2) if (channels == 1 and alpha) else px
    assert back.shape == expect.shape
    np.testing.assert_allclose(back, expect, atol=0.5 / top)
    if alpha:
        np.testing.assert_allclose(back_a, a, atol=0.5 / top)
    else:
        assert back_a is None


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_owns_its_pixels(qapp: object, dtype: type) -> None:
    """The QImage keeps its own copy: changing or freeing the caller's array leaves it intact."""
    rng = np.random.default_rng(2)
    levels = rng.integers(1, 255, (16, 24, 3), dtype=np.uint8)
    px = levels.copy() if dtype is np.uint8 else levels.astype(np.float32) / 255.0
    img = array_to_qimage(px)
    px[...] = 0  # a view of the caller's buffer would now read zeros
    del px
    churn = [np.full((16, 24, 3), 7, dtype) for _ in range(64)]  # reuse freed memory
    back = np.array([[[c.red(), c.green(), c.blue()] for c in (img.pixelColor(x, y) for x in range(24))]
                     for y in range(16)], dtype=np.uint8)
    np.testing.assert_array_equal(back, levels)
    del churn


def test_rejects_bad_shapes(qapp: object) -> None:
    with pytest.raises(ValueError):
        array_to_qimage(np.zeros((4, 4, 2), np.float32))
