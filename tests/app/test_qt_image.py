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


def test_owns_its_pixels(qapp: object) -> None:
    px = np.zeros((4, 4, 3), np.float32)
    img = array_to_qimage(px)
    del px
    assert img.pixelColor(1, 1).red() == 0


def test_rejects_bad_shapes(qapp: object) -> None:
    with pytest.raises(ValueError):
        array_to_qimage(np.zeros((4, 4, 2), np.float32))
