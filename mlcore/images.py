"""Turn whatever users upload into the ``(size, size, 3)`` uint8 RGB arrays the encoders take.

Why so defensive: uploads are untrusted. A worker must never crash (or run out of memory) on a
corrupt, truncated, gigantic or non-image file, and the post owner must see a readable reason, so
every failure here becomes an ``ImageError`` with a short message meant for end users.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ImageError",
    "ImageSource",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_BYTES",
    "load_image",
    "load_images",
]

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
WHITE = (255, 255, 255)

# Leading bytes of the formats users upload: a file that starts like an image but cannot be
# identified is a damaged image ("truncated or corrupt"), not "not an image file".
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


class ImageError(ValueError):
    """An image could not be used; the message is written for end users."""


def _format_bytes(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"


def _too_large(max_bytes: int, actual: int | None = None) -> ImageError:
    got = f", got {_format_bytes(actual)}" if actual is not None else ""
    return ImageError(f"file is too large (limit {_format_bytes(max_bytes)}{got})")


def _read_source(source: ImageSource, max_bytes: int) -> tuple[bytes, str]:
    """Return the raw bytes and a short description of where they came from (for messages)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _too_large(max_bytes, len(data))
        return data, "uploaded data"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            size = os.stat(path).st_size
            if os.path.isdir(path):
                raise ImageError(f"not a file: {path}")
            if size > max_bytes:
                raise _too_large(max_bytes, size)
            with open(path, "rb") as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError:
            raise ImageError(f"file not found: {path}") from None
        except PermissionError:
            raise ImageError(f"permission denied: {path}") from None
        except IsADirectoryError:
            raise ImageError(f"not a file: {path}") from None
        except OSError as error:
            raise ImageError(f"cannot read file {path}: {error.strerror or error}") from None
        if len(data) > max_bytes:  # the file grew between stat and read
            raise _too_large(max_bytes)
        return data, os.path.basename(path) or path
    read = getattr(source, "read", None)
    if callable(read):
        try:
            data = read(max_bytes + 1)
        except OSError as error:
            raise ImageError(f"cannot read uploaded file: {error}") from None
        if isinstance(data, str):
            raise ImageError("file object must be opened in binary mode")
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(f"file object returned {type(data).__name__}, not bytes")
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        name = getattr(source, "name", None)
        return bytes(data), os.path.basename(name) if isinstance(name, str) else "uploaded file"
    raise ImageError(
        f"unsupported image source type {type(source).__name__}: give a path, bytes or a binary file object"
    )


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file header alone, via Pillow's format plugins.

    ``Image.open`` runs Pillow's decompression-bomb check right after parsing the header; the plugin
    classes parse the same header without it, so a refused image can still be described exactly.
    """
    Image.init()
    prefix = data[:16]
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        try:
            if accept and not accept(prefix):
                continue
            width, height = factory(io.BytesIO(data), "").size
            return int(width), int(height)
        except Exception:
            continue
    return None


def _pillow_bomb_error(data: bytes, error: Exception, max_pixels: int) -> ImageError:
    """Pillow's process-wide guard (``Image.MAX_IMAGE_PIXELS``) fired before our own check could.

    It is left in place as a second line of defence; report the size like our own check does.
    """
    limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
    size = _header_size(data)
    if size is not None:
        width, height = size
        return ImageError(f"image is too large: {width}x{height} pixels (limit {limit / 1e6:g} megapixels)")
    found = re.search(r"\((\d+) pixels\)", str(error))
    pixels = f": {int(found.group(1)) / 1e6:g} megapixels" if found else ""
    return ImageError(f"image is too large{pixels} (limit {limit / 1e6:g} megapixels)")


def _open(data: bytes, origin: str, max_pixels: int) -> Image.Image:
    """Identify the format and check the pixel count *before* decoding anything."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data.startswith(IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise ImageError("image is truncated or corrupt") from None
        raise ImageError(f"not an image file (cannot identify the format of {origin})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _pillow_bomb_error(data, error, max_pixels) from None
    except Exception:
        raise ImageError("image is truncated or corrupt") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"image is too large: {width}x{height} pixels (limit {max_pixels / 1e6:g} megapixels)"
        )
    if width == 0 or height == 0:
        raise ImageError("image is truncated or corrupt")
    return image


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float greyscale → 8-bit L by scaling, not clipping (Pillow clips to white).

    float32, in place: one copy of the (already reduced) image, not the float64 temporaries that
    made a 40-megapixel 16-bit PNG cost a gigabyte."""
    pixels = np.array(image, dtype=np.float32)
    if image.mode == "F":
        peak = float(np.nanmax(pixels)) if pixels.size else 0.0
        scale = 255.0 if peak <= 1.0 else 255.0 / 65535.0 if peak > 255.0 else 1.0
    else:  # I;16, I;16B, I;16L, I (PNG and TIFF 16-bit greyscale land here)
        scale = 255.0 / 65535.0
    pixels *= scale
    np.nan_to_num(pixels, copy=False)
    np.clip(pixels, 0, 255, out=pixels)
    np.round(pixels, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8), mode="L")


# EXIF orientation → the transpose that shows the photo upright (as ImageOps.exif_transpose).
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Modes Image.reduce handles; others (P, 1, I;16*) are reduced after a cheap conversion.
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F"}


def _reduce(image: Image.Image, size: int) -> Image.Image:
    """Shrink by a whole factor that keeps both sides at least ``2 * size`` (box filter, cheap),
    *before* any mode conversion, so conversions work on a small image. The final resize to
    ``size`` is unchanged, so small images come out exactly as before."""
    factor = min(image.size) // (2 * size)
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("I")  # 4 bytes/pixel for a moment; reduce has no I;16 kernel
    elif image.mode not in _REDUCIBLE:
        return image  # palette / bilevel images: 1 byte per pixel or less, converted as they are
    return image.reduce(factor)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB; transparency is composited on white (how pages show such images)."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _high_bit_depth_to_l(image).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(
    source: ImageSource,
    size: int = 224,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Decode one image into a ``(size, size, 3)`` uint8 RGB array. Raises only ``ImageError``.

    EXIF orientation is applied, any mode becomes RGB, and the image is squashed to a square with
    antialiased bilinear resampling (aspect not kept, like the training data). Animated images use
    their first frame.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int; got {size!r}")
    if isinstance(source, np.ndarray):  # already decoded by this function (e.g. outside a lock)
        if source.shape != (size, size, 3) or source.dtype != np.uint8:
            raise ValueError(f"a decoded image must be a ({size}, {size}, 3) uint8 array; got "
                             f"{source.shape} {source.dtype}")
        return source
    data, origin = _read_source(source, max_bytes)
    if not data:
        raise ImageError("empty file")
    image = _open(data, origin, max_pixels)
    try:
        # JPEG only: decode at a reduced DCT scale that still covers `size` - huge photos load fast.
        image.draft(None, (size, size))
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _pillow_bomb_error(data, error, max_pixels) from None
    except Exception:  # OSError("image file is truncated"), SyntaxError, struct.error, ...
        raise ImageError("image is truncated or corrupt") from None
    try:
        orientation = image.getexif().get(_ORIENTATION)
    except Exception:
        orientation = None  # a broken EXIF block should not cost the user their image; keep it unrotated
    try:
        image = _reduce(image, size)  # before rotating and converting: both copy the image
    except Exception:
        raise ImageError(f"unsupported image mode {image.mode}") from None
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    try:
        rgb = _to_rgb(image)
        resized = rgb.resize((size, size), Image.Resampling.BILINEAR)
    except Exception:
        raise ImageError(f"unsupported image mode {image.mode}") from None
    return np.asarray(resized, dtype=np.uint8).copy()


def load_images(
    sources: Iterable[ImageSource],
    size: int = 224,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[np.ndarray | None, list[ImageError | None]]:
    """Load many images; one bad image never fails the others.

    Returns ``(batch, errors)``: ``batch`` stacks the images that loaded, in order, as
    ``(n_good, size, size, 3)`` uint8 (``None`` if none did); ``errors[i]`` is the ``ImageError`` for
    ``sources[i]`` or ``None`` when it loaded.
    """
    good: list[np.ndarray] = []
    errors: list[ImageError | None] = []
    for source in sources:
        try:
            good.append(load_image(source, size=size, max_pixels=max_pixels, max_bytes=max_bytes))
            errors.append(None)
        except ImageError as error:
            errors.append(error)
    return (np.stack(good) if good else None), errors
