"""Per-image preprocessing (Appendix C): decode any mode to 8-bit RGB, crop the long edge to a
centred square, area-resize to the target size, encode losslessly (PNG) or as JPEG."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Decompression bombs are bad input too: PIL warns, we turn it into a counted skip.
warnings.simplefilter("error", Image.DecompressionBombWarning)


class SkipSample(Exception):
    """A source that cannot be used; `str(err)` is the reason stored in dataset.json."""


def to_rgb8(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (grayscale, CMYK, palette, RGBA, 16-bit, float)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit grayscale: PIL's convert("L") clips instead of scaling, so scale by hand.
        arr = np.asarray(img).astype(np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when palette transparency is dropped directly
    if img.mode in ("RGBA", "LA", "PA"):
        # Composite on white so transparent regions do not turn into arbitrary colours.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def centre_square_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Appendix C: crop along the long edge to a centred square, then area (box) resize."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    # One call does crop + box filter, without materialising the cropped copy.
    return img.resize((resolution, resolution), Image.BOX, box=(left, top, left + side, top + side))


def load_image(path: Path, resolution: int, min_size: int | None = None) -> Image.Image:
    """Open, validate and preprocess one source image; raises SkipSample with the reason."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise SkipSample("zero-byte file")
        with Image.open(path) as img:
            img.load()  # forces full decode: truncated/corrupt data raises here, not later
            if min_size is not None and min(img.size) < min_size:
                raise SkipSample(f"short edge {min(img.size)} px below min size {min_size}")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated GIF/PNG: first frame
            rgb = to_rgb8(img)
            return centre_square_resize(rgb, resolution)
    except SkipSample:
        raise
    except UnidentifiedImageError:
        raise SkipSample("not an image (unidentified format)") from None
    except PermissionError as err:
        raise SkipSample(f"unreadable: {err.strerror or err}") from None
    except FileNotFoundError:
        raise SkipSample("missing file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated", "broken data
        # stream"), SyntaxError (bad PNG chunks) or ValueError.
        raise SkipSample(f"corrupt or truncated image: {err}") from None


def encode(img: Image.Image, fmt: str, jpeg_quality: int = 95) -> bytes:
    """Encode the pre-resized sample. PNG is lossless and deterministic for a given PIL."""
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", compress_level=6)
    elif fmt == "jpg":
        img.save(buf, format="JPEG", quality=jpeg_quality, subsampling=0 if jpeg_quality >= 90 else 2)
    else:
        raise ValueError(f"unknown sample format {fmt!r}; use png or jpg")
    return buf.getvalue()
