"""Helpers for the hashtags tests: photo-like images, an executor that records enqueues, and an
event receiver that records to a file (for a worker process)."""

from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hashtags.events import analysis_finished

# Filled by :func:`record` when HASHTAGS["EXECUTOR"] = "tests.hashtags.support.record".
recorded: list[tuple] = []


def record(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False) -> None:
    """A real executor (the EXECUTOR import-string extension point) that only remembers the job."""
    recorded.append((app_label, model_name, pk, field_name, force))


def real_photo() -> np.ndarray:
    """A real photograph (scikit-image's bundled cat picture) when available, else a synthetic scene."""
    try:
        from skimage import data

        return data.chelsea()
    except Exception:
        return synthetic_photo_array()


def synthetic_photo_array(seed: int = 0, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A photo-like scene: sky/grass gradients, a blurred blob 'animal', sensor noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    y = np.linspace(0, 1, height)[:, None]
    sky = np.stack([90 + 80 * y, 140 + 60 * y, 220 - 40 * y], axis=-1) * np.ones((1, width, 1))
    grass = np.stack([40 + 30 * y, 120 + 50 * y, 40 + 10 * y], axis=-1) * np.ones((1, width, 1))
    horizon = int(height * 0.55)
    scene = np.concatenate([sky[:horizon], grass[horizon:]], axis=0)
    image = Image.fromarray(scene.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy = int(width * (0.3 + 0.4 * rng.random())), int(height * 0.65)
    draw.ellipse([cx - 50, cy - 25, cx + 50, cy + 25], fill=(30 + seed % 50, 25, 20))
    draw.ellipse([cx + 35, cy - 45, cx + 70, cy - 10], fill=(35, 30, 25))
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    array = np.asarray(image).astype(np.float32) + rng.normal(0, 6, (height, width, 3))
    return array.clip(0, 255).astype(np.uint8)


def jpeg_bytes(array: np.ndarray | None = None, quality: int = 90, **kwargs) -> bytes:
    if array is None:
        array = synthetic_photo_array(**kwargs)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo_array(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


# Events recorded to a file, for a receiver that runs in another process (the worker test starts
# ``celery worker --include=tests.hashtags.support`` with this variable set).
EVENTS_FILE_ENV = "HASHTAGS_TEST_EVENTS_FILE"


def write_analysis_finished(sender, instance, analysis, suggestions, ok, error, **kwargs) -> None:
    """An ``analysis_finished`` receiver: one JSON line per event, with the process that sent it."""
    line = {"sender": sender._meta.label_lower, "object_id": str(getattr(instance, "pk", "")),
            "analysis": analysis.pk, "ok": ok, "error": error,
            "tags": [s.hashtag.name for s in suggestions], "pid": os.getpid()}
    with open(os.environ[EVENTS_FILE_ENV], "a") as handle:
        handle.write(json.dumps(line) + "\n")


if os.environ.get(EVENTS_FILE_ENV):
    analysis_finished.connect(write_analysis_finished, dispatch_uid="tests.support.write_analysis_finished")
