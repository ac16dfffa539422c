"""Image views for the tag head: what each one shows, determinism, and clear errors."""

import numpy as np
import pytest
from PIL import Image

from mlcore.views import CORNER_SIDE, apply_view, check_view, check_views, view_window


def _image(seed: int = 0, size: int = 224) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_plain_and_flipped():
    image = _image()
    assert apply_view(image, "plain") is image
    np.testing.assert_array_equal(apply_view(image, "flipped"), image[:, ::-1])


@pytest.mark.parametrize("corner, top, left, mirrored", [
    (0, 0, 0, False), (1, 0, 1, True), (2, 1, 0, True), (3, 1, 1, False)])
def test_corner_views_are_resized_corner_crops(corner, top, left, mirrored):
    image = _image(1)
    side = round(224 * CORNER_SIDE)
    y, x = (224 - side) * top, (224 - side) * left
    expected = np.asarray(Image.fromarray(image[y:y + side, x:x + side]).resize((224, 224),
                                                                                Image.BICUBIC))
    view = apply_view(image, f"corner{corner}")
    assert view.shape == image.shape and view.dtype == np.uint8
    np.testing.assert_array_equal(view, expected[:, ::-1] if mirrored else expected)


def test_random_crops_depend_only_on_the_view_and_the_pixels():
    image, other = _image(2), _image(3)
    first = apply_view(image, "crop0")
    assert first.shape == image.shape
    np.testing.assert_array_equal(first, apply_view(image.copy(), "crop0"))  # cache-safe
    assert not np.array_equal(first, apply_view(image, "crop1"))
    assert not np.array_equal(first, image) and not np.array_equal(first, image[:, ::-1])
    # another photo draws other random numbers: another window, not one fixed crop for all
    assert view_window(other, "crop0") != view_window(image, "crop0")
    windows = [view_window(_image(seed, 64), "crop0") for seed in range(10)]
    assert len(set(windows)) == 10
    for left, top, width, height, _ in windows:
        assert 0.5 <= width * height / 64 ** 2 <= 1.0 and left + width <= 64 and top + height <= 64


def test_random_crops_keep_most_of_the_photo():
    # a photo whose left half is black and right half white: any crop of >= 55 % of the area
    # with the aspect ratio change bounded keeps both colours
    image = np.zeros((224, 224, 3), np.uint8)
    image[:, 112:] = 255
    for index in range(20):
        view = apply_view(image, f"crop{index}")
        assert view.min() < 30 and view.max() > 225, index


@pytest.mark.parametrize("bad", ["mirror", "corner4", "crop", "crop-1", "", None, 3])
def test_unknown_views_fail_clearly(bad):
    with pytest.raises(ValueError, match="unknown image view"):
        check_view(bad)
    with pytest.raises(ValueError):
        apply_view(_image(), bad)


def test_view_lists():
    assert check_views(["plain", "corner2"]) == ("plain", "corner2")
    with pytest.raises(ValueError, match="at least one"):
        check_views([])
    with pytest.raises(ValueError, match="twice"):
        check_views(["plain", "plain"])
    with pytest.raises(ValueError, match="not the string"):
        check_views("plain")
