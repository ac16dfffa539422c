"""Views of an image for the tag head: mirrored and cropped copies, named so they can be cached.

The tag head is a multi-label classifier trained on only 6,000 photos, so two cheap tricks from
image classification pay off (model card): it is *trained* on random crops of every photo as well
as the photo itself, and at *test* time its probabilities are averaged over a few fixed views of
the upload (itself, its mirror image and four corner crops). The captioner's LSTM always reads
the plain image; only the tag head sees the other views.

View names:

* ``"plain"`` and ``"flipped"``: the image and its mirror image.
* ``"corner0"`` … ``"corner3"``: the top-left, top-right, bottom-left and bottom-right
  ``CORNER_SIDE`` share of each side, resized back to the input size; 1 and 2 are mirrored, so
  that the four corners and the two mirror states are balanced.
* ``"crop0"``, ``"crop1"``, …: a random crop (``CROP_AREA`` of the image, aspect ratio within
  ``CROP_LOG_ASPECT``, mirrored half of the time) whose random numbers come from the view's number
  and the image's pixels — so the same photo always gets the same crop and a feature cache keyed
  by image content stays valid. Used for training only.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["CORNER_SIDE", "DEFAULT_TEST_VIEWS", "DEFAULT_TRAIN_VIEWS", "apply_view", "check_view",
           "check_views", "view_window"]

#: Side of a corner crop, as a share of the image side (196 of 224 pixels).
CORNER_SIDE = 0.875
#: Area of a random training crop, as a share of the image.
CROP_AREA = (0.55, 1.0)
#: Natural log of the largest aspect-ratio change of a random crop.
CROP_LOG_ASPECT = 0.2

#: Views the shipped tag head averages at test time.
DEFAULT_TEST_VIEWS: tuple[str, ...] = ("plain", "flipped", "corner0", "corner1", "corner2",
                                       "corner3")
#: Views the shipped tag head was trained on.
DEFAULT_TRAIN_VIEWS: tuple[str, ...] = ("plain", "flipped", "crop0", "crop1", "crop2", "crop3")

_VIEW = re.compile(r"^(plain|flipped|corner[0-3]|crop\d{1,3})$")


def check_view(view: str) -> str:
    """``view`` if it is a known view name, else ``ValueError`` listing the valid ones."""
    if not isinstance(view, str) or not _VIEW.match(view):
        raise ValueError(f"unknown image view {view!r}: use 'plain', 'flipped', 'corner0'-"
                         "'corner3' or 'crop0', 'crop1', ...")
    return view


def check_views(views: Sequence[str]) -> tuple[str, ...]:
    """A non-empty list of distinct view names as a tuple (``ValueError`` otherwise)."""
    if isinstance(views, str):
        raise ValueError(f"views must be a list of view names, not the string {views!r}")
    views = tuple(check_view(view) for view in views)
    if not views:
        raise ValueError("at least one image view is needed")
    if len(set(views)) != len(views):
        raise ValueError(f"image views listed twice: {', '.join(views)}")
    return views


def view_window(image: np.ndarray, view: str) -> tuple[int, int, int, int, bool]:
    """``(left, top, width, height, mirrored)``: the part of ``image`` that ``view`` shows."""
    check_view(view)
    height, width = image.shape[:2]
    if view in ("plain", "flipped"):
        return 0, 0, width, height, view == "flipped"
    if view.startswith("corner"):
        corner = int(view[len("corner"):])
        crop_height, crop_width = round(height * CORNER_SIDE), round(width * CORNER_SIDE)
        return ((width - crop_width) * (corner % 2), (height - crop_height) * (corner // 2),
                crop_width, crop_height, corner in (1, 2))
    rng = np.random.default_rng([int(view[len("crop"):]), zlib.crc32(image.tobytes())])
    area = rng.uniform(*CROP_AREA)
    aspect = float(np.exp(rng.uniform(-CROP_LOG_ASPECT, CROP_LOG_ASPECT)))
    crop_width = min(width, round(width * np.sqrt(area * aspect)))
    crop_height = min(height, round(height * np.sqrt(area / aspect)))
    left = int(rng.integers(0, width - crop_width + 1))
    top = int(rng.integers(0, height - crop_height + 1))
    return left, top, crop_width, crop_height, bool(rng.random() < 0.5)


def apply_view(image: np.ndarray, view: str) -> np.ndarray:
    """The ``view`` of one ``(H, W, 3)`` uint8 image, at the same size."""
    left, top, crop_width, crop_height, mirrored = view_window(image, view)
    height, width = image.shape[:2]
    if (crop_width, crop_height) == (width, height):
        result = image
    else:
        crop = Image.fromarray(np.ascontiguousarray(image)).crop(
            (left, top, left + crop_width, top + crop_height))
        result = np.asarray(crop.resize((width, height), Image.BICUBIC))
    return result[:, ::-1] if mirrored else result
