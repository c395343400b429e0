"""Image I/O and the degradation shared by training, evaluation, the app and the docs."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

HR_SIZE = 128
MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression-bomb guard)


class ImageError(ValueError):
    """An image that cannot be used, with a reason fit to show to a person."""


def open_image(source: str | Path | bytes | Image.Image | np.ndarray, keep_alpha: bool = False) -> Image.Image:
    """Any image (path, bytes, PIL image, array of any dtype) as an upright 8-bit RGB or L image.

    EXIF orientation is applied; alpha is composited on white (or, with keep_alpha, kept: RGBA or LA);
    16-bit and float data are rescaled; grayscale stays grayscale. Unreadable, truncated or oversized
    files raise ImageError.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, keep_alpha)
    if isinstance(source, Image.Image):
        img = source
    else:
        try:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
        except OSError as e:
            raise ImageError(f"cannot read {source}: {e.strerror or e}") from e
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                if img.width * img.height > MAX_PIXELS:
                    raise ImageError(f"image is too large to decode safely ({img.width}x{img.height})")
                img.load()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError("image is too large to decode safely") from e
        except UnidentifiedImageError as e:
            raise ImageError("not an image file, or a format that cannot be read") from e
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"the image file is damaged or truncated ({e})") from e
    img = ImageOps.exif_transpose(img)
    return _to_8bit(img, keep_alpha)


def opaque(img: Image.Image) -> Image.Image:
    """An image already open as open_image returns it without keep_alpha (8-bit RGB or L, any alpha
    composited on white), without applying EXIF orientation again."""
    return _to_8bit(img)


def _to_8bit(img: Image.Image, keep_alpha: bool = False) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        return _from_array(np.asarray(img))
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("1", "LA") or (img.mode == "P" and img.palette and img.palette.mode == "L"):
        gray = img.convert("LA")
        return gray if keep_alpha and _has_alpha(img) else _flatten(gray).convert("L")
    rgba = img.convert("RGBA")
    return rgba if keep_alpha and _has_alpha(img) else _flatten(rgba).convert("RGB")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in img.info


def _flatten(img: Image.Image) -> Image.Image:
    """Composite on white, so transparent regions do not turn black."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba)


def _from_array(arr: np.ndarray, keep_alpha: bool = False) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be (h, w), (h, w, 3) or (h, w, 4), got {arr.shape}")
    if arr.dtype == np.uint16:
        arr = arr / 65535.0
    elif arr.dtype.kind == "f":
        arr = np.clip(arr, 0, 1)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255) / 255.0
    if arr.dtype != np.uint8:
        arr = (arr * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr)
    return _to_8bit(img, keep_alpha)


def center_square(img: Image.Image, size: int = HR_SIZE) -> Image.Image:
    """Largest centred square, resized (antialiased bicubic) to size x size."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img if img.size == (size, size) else img.resize((size, size), Image.BICUBIC)


def degrade(hr: Image.Image, scale: int) -> Image.Image:
    """The low-resolution face: PIL bicubic (antialiased) downscale by `scale`."""
    return hr.resize((hr.width // scale, hr.height // scale), Image.BICUBIC)


def bicubic_upscale(lr: Image.Image, scale: int) -> Image.Image:
    return lr.resize((lr.width * scale, lr.height * scale), Image.BICUBIC)
