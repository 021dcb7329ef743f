"""Preprocessing (Appendix C) and bad-input handling."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from biggan.data.preprocess import SkipSample, centre_square_resize, encode, load_image, to_rgb8


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "I;16", "1"])
def test_every_mode_becomes_8bit_rgb(tmp_path, mode):
    img = Image.new("RGB", (20, 10), (200, 100, 50)).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((10, 20), 65535, dtype=np.uint16))
    path = tmp_path / ("x.tif" if mode in ("I;16", "CMYK") else "x.png")
    img.save(path)
    out = load_image(path, 32)
    assert out.mode == "RGB" and out.size == (32, 32)
    if mode == "I;16":  # full-scale 16-bit white must become 255, not a clipped value
        assert np.asarray(out).min() == 255


def test_transparent_pixels_composite_on_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(to_rgb8(img)).min() == 255


def test_centre_crop_along_long_edge_then_area_resize():
    # Landscape 60x20: left/right thirds black, centre 20x20 square white -> all white.
    arr = np.zeros((20, 60, 3), dtype=np.uint8)
    arr[:, 20:40] = 255
    out = np.asarray(centre_square_resize(Image.fromarray(arr), 4))
    assert out.shape == (4, 4, 3) and out.min() == 255
    # Area resampling averages: a 2x2 checkerboard down to 1x1 is mid grey.
    checker = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).convert("RGB")
    assert abs(int(np.asarray(centre_square_resize(checker, 1))[0, 0, 0]) - 128) <= 1


def _jpeg_bytes():
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name,content,reason", [
    ("zero.jpg", b"", "zero-byte"),
    ("text.jpg", b"this is not an image at all", "not an image"),
    ("truncated.jpg", None, "corrupt or truncated"),
])
def test_bad_files_raise_skip_with_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content if content is not None else _jpeg_bytes()[:300])
    with pytest.raises(SkipSample, match=reason):
        load_image(path, 32)


def test_min_size_and_missing_and_unreadable(tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (50, 300)).save(small)
    with pytest.raises(SkipSample, match="short edge 50 px below min size 64"):
        load_image(small, 32, min_size=64)
    dangling = tmp_path / "gone.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(SkipSample, match="missing file"):
        load_image(dangling, 32)
    if os.geteuid() != 0:  # root reads files regardless of mode bits
        locked = tmp_path / "locked.png"
        Image.new("RGB", (8, 8)).save(locked)
        locked.chmod(0)
        with pytest.raises(SkipSample, match="unreadable"):
            load_image(locked, 32)


def test_png_encoding_is_lossless_and_jpeg_is_decodable():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode(img, "png")))), np.asarray(img))
    assert Image.open(io.BytesIO(encode(img, "jpg", 80))).size == (32, 32)
