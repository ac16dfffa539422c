"""Image loading: every bad upload becomes a readable ImageError, every good one an RGB square.

All images are made in the test with Pillow (or taken from scikit-image's bundled photos).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from mlcore.images import ImageError, load_image, load_images

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cat_jpeg() -> bytes:
    return encode(Image.fromarray(skimage_data.chelsea()), "JPEG", quality=90)


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb's first bytes."""
    small = encode(Image.new("1", (8, 8)), "PNG")
    start = small.index(b"IHDR")
    header = bytearray(small[start : start + 17])
    header[4:12] = struct.pack(">II", width, height)
    return small[:start] + bytes(header) + struct.pack(">I", zlib.crc32(bytes(header))) + small[start + 21 :]


# --- good input -------------------------------------------------------------------------------


def test_jpeg_becomes_a_uint8_rgb_square(cat_jpeg: bytes) -> None:
    pixels = load_image(cat_jpeg)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert load_image(cat_jpeg, size=64).shape == (64, 64, 3)
    # Aspect is not kept (like the training data): the whole 451x300 photo is squashed in.
    expected = np.asarray(Image.open(io.BytesIO(cat_jpeg)).convert("RGB").resize((224, 224), Image.BILINEAR))
    assert np.abs(pixels.astype(int) - expected.astype(int)).mean() < 3


def test_paths_bytes_and_file_objects_give_the_same_pixels(cat_jpeg: bytes, tmp_path: Path) -> None:
    path = tmp_path / "cat.jpg"
    path.write_bytes(cat_jpeg)
    reference = load_image(cat_jpeg)
    with open(path, "rb") as handle:
        from_open_file = load_image(handle)
    for source in (str(path), path, bytearray(cat_jpeg), memoryview(cat_jpeg), io.BytesIO(cat_jpeg)):
        np.testing.assert_array_equal(load_image(source), reference)
    np.testing.assert_array_equal(from_open_file, reference)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored landscape: left half red, right half blue. Orientation 6 = "rotate 90° clockwise to
    # display", so the displayed picture is portrait with red on top and blue below.
    stored = Image.new("RGB", (80, 40), RED)
    stored.paste(BLUE, (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = load_image(encode(stored, "JPEG", quality=95, exif=exif.tobytes()), size=32)
    top, bottom = pixels[:12].reshape(-1, 3).mean(axis=0), pixels[-12:].reshape(-1, 3).mean(axis=0)
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    without_exif = load_image(encode(stored, "JPEG", quality=95), size=32)
    assert without_exif[:, :12, 0].mean() > 200 and without_exif[:, -12:, 2].mean() > 200


@pytest.mark.parametrize(
    "mode, color, expected",
    [
        ("L", 128, (128, 128, 128)),
        ("1", 1, WHITE),
        ("CMYK", (0, 255, 255, 0), RED),
        ("RGBA", (255, 0, 0, 0), WHITE),  # fully transparent red → the white page behind it
        ("RGBA", (0, 0, 255, 255), BLUE),
        ("LA", (0, 128), (127, 127, 127)),  # half-transparent black over white
    ],
)
def test_any_mode_becomes_rgb(mode: str, color, expected: tuple[int, int, int]) -> None:
    image_format = "JPEG" if mode == "CMYK" else "PNG"
    pixels = load_image(encode(Image.new(mode, (20, 10), color), image_format), size=8)
    assert pixels.shape == (8, 8, 3)
    np.testing.assert_allclose(pixels.reshape(-1, 3).mean(axis=0), expected, atol=3)


def test_palette_images_with_and_without_transparency() -> None:
    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    opaque = load_image(encode(palette, "PNG"), size=4)
    assert (opaque == (0, 200, 0)).all()
    transparent = load_image(encode(palette, "PNG", transparency=1), size=4)
    assert (transparent == WHITE).all()
    gif = load_image(encode(palette, "GIF"), size=4)
    assert (gif == (0, 200, 0)).all()


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    ramp = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    image = Image.fromarray(ramp)  # mode I;16
    assert image.mode.startswith("I;16")
    pixels = load_image(encode(image, "PNG"), size=4)
    np.testing.assert_allclose(pixels[0, :, 0], [0, 64, 128, 255], atol=2)
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (10, 10), RED), Image.new("RGB", (10, 10), BLUE)]
    animated = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pixels = load_image(animated, size=4)
    assert pixels[..., 0].min() > 200 and pixels[..., 2].max() < 60


def test_load_images_keeps_good_ones_and_reports_each_bad_one(cat_jpeg: bytes, tmp_path: Path) -> None:
    batch, errors = load_images([cat_jpeg, b"not an image", tmp_path / "gone.jpg", cat_jpeg], size=32)
    assert batch is not None and batch.shape == (2, 32, 32, 3) and batch.dtype == np.uint8
    assert errors[0] is None and errors[3] is None
    assert isinstance(errors[1], ImageError) and "not an image file" in str(errors[1])
    assert isinstance(errors[2], ImageError) and "file not found" in str(errors[2])
    none_loaded, all_errors = load_images([b""], size=32)
    assert none_loaded is None and str(all_errors[0]) == "empty file"


# --- bad input: only ImageError, with a message for people ------------------------------------


def test_truncated_jpeg(cat_jpeg: bytes) -> None:
    with pytest.raises(ImageError, match="^image is truncated or corrupt$"):
        load_image(cat_jpeg[: len(cat_jpeg) // 2])


def test_corrupt_images(cat_jpeg: bytes) -> None:
    png = encode(Image.fromarray(skimage_data.chelsea()), "PNG")
    scrambled_png = png[:100] + bytes(len(png) - 100)
    damaged_jpeg_header = cat_jpeg[:4] + bytes(200)
    for damaged in (scrambled_png, damaged_jpeg_header, png[: len(png) // 3]):
        with pytest.raises(ImageError, match="^image is truncated or corrupt$"):
            load_image(damaged)


def test_non_image_bytes(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^not an image file \(cannot identify the format of uploaded data\)$"):
        load_image(b"Dear diary, today I uploaded a text file.")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ImageError, match=r"not an image file \(.*notes\.txt\)"):
        load_image(notes)


def test_missing_file_directory_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=f"^file not found: {tmp_path}/missing.jpg$"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="^not a file: "):
        load_image(tmp_path)
    empty = tmp_path / "empty.jpg"
    empty.touch()
    for source in (empty, b"", io.BytesIO()):
        with pytest.raises(ImageError, match="^empty file$"):
            load_image(source)


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match=r"^image is too large: 20000x20000 pixels \(limit 40 megapixels\)$"):
        load_image(png_claiming_size(20000, 20000))
    moderate = encode(Image.new("RGB", (100, 50)), "PNG")
    with pytest.raises(ImageError, match=r"image is too large: 100x50 pixels \(limit 0.004 megapixels\)"):
        load_image(moderate, max_pixels=4000)
    assert load_image(moderate, max_pixels=5000).shape == (224, 224, 3)


def test_pillow_bomb_guard_also_becomes_an_image_error(monkeypatch) -> None:
    # Pillow's own process-wide limit fires inside Image.open when our limit is looser than it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match=r"image is too large: 100x100 pixels \(limit 0.002 megapixels\)"):
        load_image(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=10**9)


def test_too_many_bytes_is_refused_before_reading(cat_jpeg: bytes, tmp_path: Path) -> None:
    path = tmp_path / "cat.jpg"
    path.write_bytes(cat_jpeg)
    for source in (cat_jpeg, path, io.BytesIO(cat_jpeg)):
        with pytest.raises(ImageError, match=r"^file is too large \(limit 0.0 MB"):
            load_image(source, max_bytes=1000)


def test_wrong_source_types(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unsupported image source type int"):
        load_image(42)  # type: ignore[arg-type]
    text_file = tmp_path / "text.txt"
    text_file.write_text("abc")
    with open(text_file, encoding="utf-8") as handle, pytest.raises(ImageError, match="binary mode"):
        load_image(handle)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size must be a positive int"):
        load_image(b"whatever", size=0)


# Bounded decoding (issue 17): big images are reduced before any mode conversion ----------------

@pytest.mark.parametrize("mode", ["I;16", "F", "RGBA", "RGB", "CMYK"])
def test_large_images_are_reduced_first_and_look_the_same(mode: str) -> None:
    """A 2000x1800 image (reduced by 4 before conversion now) gives what converting the full
    image and resizing gives, within rounding."""
    ramp = np.outer(np.linspace(0, 1, 1800, dtype=np.float32), np.linspace(0, 1, 2000, dtype=np.float32))
    if mode == "I;16":
        image, grey = Image.fromarray((ramp * 65535).astype(np.uint16)), ramp * 255
    elif mode == "F":
        image, grey = Image.fromarray(ramp), ramp * 255
    else:
        rgb = Image.fromarray(np.repeat((ramp * 255).astype(np.uint8)[..., None], 3, axis=2))
        image, grey = (rgb.convert(mode) if mode != "RGB" else rgb), ramp * 255
    data = encode(image, "TIFF") if mode in ("F", "CMYK") else encode(image, "PNG")
    loaded = load_image(data, size=64)
    expected = np.asarray(Image.fromarray(np.round(grey).astype(np.uint8)).resize((64, 64), Image.Resampling.BILINEAR))
    assert loaded.shape == (64, 64, 3) and loaded.dtype == np.uint8
    difference = np.abs(loaded.astype(int) - expected[..., None].astype(int))
    assert difference.mean() < 1.5 and difference.max() <= 6


def test_a_decoded_array_passes_through_and_a_wrong_one_is_refused(cat_jpeg: bytes) -> None:
    pixels = load_image(cat_jpeg, size=32)
    assert load_image(pixels, size=32) is pixels
    with pytest.raises(ValueError, match=r"\(32, 32, 3\) uint8"):
        load_image(pixels.astype(np.float32), size=32)
