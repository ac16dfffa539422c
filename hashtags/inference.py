"""The per-process captioner cache.

The model is loaded lazily on first use in *this* process — in a Celery worker that is after the
fork (or eagerly in ``worker_process_init``), never in the parent — and reused for every task.

Which artifact to load comes from the model registry (:mod:`hashtags.versions`): the serving
version. Asking costs a database query, so the answer is kept for ``MODEL_CHECK_INTERVAL`` seconds
and asked afresh at every task start (``get_captioner(refresh=True)`` in
:func:`hashtags.analysis.run_analysis`); when the serving version (or the files of its artifact)
changed, the new model is loaded and the old one dropped — a promoted version reaches running
workers without a restart. Without a usable database (before ``migrate``, in code that may not touch
it) the configured ``MODEL_DIR`` / shipped model is used, as before the registry existed.
:func:`reset_captioner` forgets everything.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from django.db import connections, transaction
from django.urls import NoReverseMatch, reverse
from mlcore.artifact import MODEL_FILE, ArtifactError
from mlcore.images import DEFAULT_MAX_PIXELS, ImageError, load_image
from PIL import Image

from .batching import ImageBatcher, Slot, process_batcher
from .conf import hashtags_settings
from .extraction import extractor_config
from .versions import serving_switched, serving_target

logger = logging.getLogger(__name__)

_lock = threading.RLock()
# One inference at a time per process: bounds memory and keeps TF graphs happy under threads.
inference_lock = threading.Lock()
_cache: dict[str, Any] = {"key": None, "captioner": None, "target": None, "checked": None, "configured": None}


def _artifact_key(model_dir: str | None) -> str:
    if model_dir is None:
        return "<shipped>"
    path = Path(model_dir).expanduser().resolve()
    # Two stats, not one per file: artifacts are written by renaming into place (which moves the
    # directory's mtime) and an in-place change re-versions model.json atomically (which moves its own).
    stamps = []
    for item in (path, path / MODEL_FILE):
        try:
            stamps.append(item.stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return f"{path}@{stamps[0]}.{stamps[1]}"


def _serving_dir(refresh: bool) -> str | None:
    """The artifact directory this process should serve (None = the shipped model)."""
    configured = hashtags_settings.MODEL_DIR
    checked = _cache["checked"]
    fresh = (
        checked is not None
        and _cache["configured"] == configured
        and time.monotonic() - checked < hashtags_settings.MODEL_CHECK_INTERVAL
    )
    if fresh and not refresh:
        return _cache["target"]
    try:
        target = _ask_registry()
    except ArtifactError:
        raise  # the configured artifact is unusable: the caller reports it
    except Exception as exc:  # no database here (yet): keep what we serve, else follow the settings
        logger.debug("hashtags: model registry unavailable (%s)", exc)
        if checked is not None and _cache["configured"] == configured:
            return _cache["target"]
        target = configured
    _cache.update(target=target, checked=time.monotonic(), configured=configured)
    return target


def _ask_registry() -> str | None:
    """The serving version's directory; inside a caller's transaction in a savepoint, so that a
    failed query (no table before ``migrate``) does not break that transaction. A worker's task
    runs in autocommit, where a savepoint would cost a BEGIN and a COMMIT around every task's query."""
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return serving_target().path
    return serving_target().path


def serving_changed(sender=None, **kwargs) -> None:
    """Ask the registry again on the next :func:`get_captioner` call (the ``serving_switched``
    receiver: a promotion in this process; other processes notice within ``MODEL_CHECK_INTERVAL``
    or at their next task)."""
    _cache["checked"] = None


serving_switched.connect(serving_changed, dispatch_uid="hashtags.inference.serving_changed")


def _enable_memory_growth() -> None:
    """Let several processes share a GPU instead of each grabbing all of its memory."""
    try:
        import tensorflow as tf  # lazy: TensorFlow start-up stays out of web processes until a model loads

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except Exception as exc:  # already initialised or no TF GPU support: nothing to do
        logger.debug("memory growth not set: %s", exc)


def get_captioner(refresh: bool = False):
    """The process' :class:`mlcore.captioner.Captioner` for the serving model version.

    ``refresh=True`` asks the registry now instead of trusting an answer younger than
    ``MODEL_CHECK_INTERVAL`` seconds (task start)."""
    with _lock:
        model_dir = _serving_dir(refresh)
        precision = str(hashtags_settings.DECODER_PRECISION)
        tag_views = hashtags_settings.TAG_VIEWS
        extra_heads = bool(hashtags_settings.EXTRA_TAG_HEADS)
        classifier = bool(hashtags_settings.CLASSIFIER_TAGS)
        resnet50_weights = hashtags_settings.RESNET50_WEIGHTS or None
        key = f"{_artifact_key(model_dir)}|{precision}|{tag_views}|{extra_heads}|{classifier}|{resnet50_weights}"
        if _cache["captioner"] is not None and _cache["key"] == key:
            return _cache["captioner"]
        _enable_memory_growth()
        from mlcore.captioner import Captioner  # lazy: the captioner pulls in TensorFlow/keras; only loaded when a model is needed

        started = time.perf_counter()
        _cache.update(key=None, captioner=None)  # let the old model go before the new one loads
        captioner = Captioner.load(model_dir, precision=precision, tag_views=tag_views,
                                   extra_tag_heads=extra_heads, classifier=classifier,
                                   resnet50_weights=resnet50_weights)
        logger.info(
            "loaded captioner %s from %s (pid %s) in %.1fs", captioner.model_version, model_dir or "the shipped model",
            os.getpid(), time.perf_counter() - started,
        )
        _cache.update(key=key, captioner=captioner)
        return captioner


def reset_captioner() -> None:
    """Forget the cached model and the registry's answer (tests)."""
    with _lock:
        _cache.update(key=None, captioner=None, target=None, checked=None, configured=None)


def suggest(image, captioner=None, *, max_pixels: int | None = None) -> Any:
    """Run the captioner (default: the serving one) on one image: a ``mlcore`` CaptionResult or
    ImageError (never raised)."""
    return suggest_many([image], captioner, max_pixels=max_pixels)[0]


def suggest_many(images: list, captioner=None, *, max_pixels: int | None = None) -> list:
    """:func:`suggest` for several images in one batched forward pass; a bad image gets its own
    ImageError in its place and does not fail the others.

    Images are decoded *before* taking :data:`inference_lock` (with at most ``max_pixels``
    pixels, default mlcore's limit): a large upload costs its own request CPU time, not every
    other request's wait for the model."""
    captioner = captioner or get_captioner()
    results: list = [decode(image, captioner, max_pixels=max_pixels) for image in images]
    positions = [position for position, item in enumerate(results) if not isinstance(item, ImageError)]
    if positions:
        found = suggest_decoded(captioner, [results[position] for position in positions])
        for position, result in zip(positions, found):
            results[position] = result
    return results


@dataclasses.dataclass(frozen=True)
class Decoded:
    """An image ready for the encoder, and what decoding it cost."""

    pixels: Any
    load_s: float


def decode(image, captioner, *, max_pixels: int | None = None) -> Decoded | ImageError:
    """``image`` (bytes, path or file) resized for ``captioner``'s encoder, or its ImageError."""
    started = time.perf_counter()
    try:
        pixels = load_image(image, size=captioner.encoder.spec.input_size,
                            max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    except ImageError as error:
        return error
    return Decoded(pixels, time.perf_counter() - started)


def suggest_decoded(captioner, images: list[Decoded]) -> list:
    """One forward pass of ``captioner`` over decoded images (under :data:`inference_lock`)."""
    with inference_lock:
        found = captioner.suggest([image.pixels for image in images], beam_width=hashtags_settings.BEAM_WIDTH,
                                  config=extractor_config())
    return [result if isinstance(result, ImageError)
            else dataclasses.replace(result, timings={**(result.timings or {}), "load_s": image.load_s})
            for image, result in zip(images, found)]


def batcher() -> ImageBatcher:
    """This process' cross-task batcher (``BATCH_MAX``, ``BATCH_WAIT_MS``)."""
    return process_batcher(suggest_decoded, hashtags_settings.BATCH_MAX, hashtags_settings.BATCH_WAIT_MS / 1000)


def suggest_in_batch(image, captioner, slot: Slot, *, timeout: float | None = None) -> Any:
    """:func:`suggest` for an analysis holding a batcher ``slot``: the image is decoded here, in
    the analysis' own thread (while the model works on other images), then runs in the next batch
    with the images of the analyses beside it. The result's timings say the batch size and the
    wait. ``BATCH_MAX`` 1 runs it alone, at once."""
    decoded = decode(image, captioner)
    if isinstance(decoded, ImageError):
        return decoded
    if hashtags_settings.BATCH_MAX <= 1:
        return suggest_decoded(captioner, [decoded])[0]
    result, batch = slot.run(captioner, decoded, timeout)
    if isinstance(result, ImageError):
        return result
    return dataclasses.replace(result, timings={**(result.timings or {}), **batch})


def warm_up() -> bool:
    """Load the serving model and run it once on a small blank image, so that the first real
    request pays neither the load nor TensorFlow's first-call tracing. False (logged) when the
    model cannot load here; the process starts anyway and requests report the problem."""
    started = time.perf_counter()
    blank = io.BytesIO()
    Image.new("RGB", (64, 64), (127, 127, 127)).save(blank, format="PNG")
    try:
        result = suggest(blank.getvalue(), get_captioner(refresh=True))
    except Exception:
        logger.exception("hashtags: could not warm the model up at start-up; the first request loads it")
        return False
    finally:
        connections.close_all()  # the start-up thread's registry query; requests open their own
    if isinstance(result, ImageError):
        logger.warning("hashtags: warm-up image refused (%s)", result)
        return False
    logger.info("hashtags: model warmed up at start-up in %.1fs (pid %s)", time.perf_counter() - started, os.getpid())
    return True


def serves_tag_image() -> bool:
    """The site's URLconf routes ``POST tag-image/`` (the synchronous endpoint that needs the model)."""
    try:
        reverse("hashtags-api:tag-image")
    except NoReverseMatch:
        return False
    return True


def warm_for_server() -> bool:
    """Call from ``wsgi.py`` / ``asgi.py`` after the application is made: warms the model when
    ``HASHTAGS["WARM_AT_STARTUP"]`` is on and the site serves ``tag-image/``.

    Not in ``AppConfig.ready()``: that also runs for every ``manage.py`` command, the test suite and
    the Celery parent, which must not load TensorFlow before it forks (workers warm after the fork,
    :func:`hashtags.tasks.warm_model`). ``wsgi.py`` / ``asgi.py`` are imported by the serving
    processes only (gunicorn/uvicorn workers, and ``runserver`` through ``WSGI_APPLICATION``), before
    they accept a request. Under ``gunicorn --preload`` they run in the master before the fork: turn
    the setting off there."""
    if not hashtags_settings.WARM_AT_STARTUP or not serves_tag_image():
        return False
    return warm_up()
