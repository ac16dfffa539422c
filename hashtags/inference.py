"""The per-process captioner cache.

The model is loaded lazily on first use in *this* process — in a Celery worker that is after the
fork (or eagerly in ``worker_process_init``), never in the parent — and reused for every task. The
cache is keyed by the configured artifact so a changed ``MODEL_DIR`` (or, later, a promoted model
version) loads the new model; :func:`reset_captioner` drops it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from .conf import hashtags_settings

logger = logging.getLogger(__name__)

_lock = threading.RLock()
# One inference at a time per process: bounds memory and keeps TF graphs happy under threads.
inference_lock = threading.Lock()
_cache: dict[str, Any] = {"key": None, "captioner": None}


def _artifact_key() -> str:
    model_dir = hashtags_settings.MODEL_DIR
    if model_dir is None:
        return "<shipped>"
    path = Path(model_dir).expanduser().resolve()
    # The artifact's files change when a new model is written in place; include their mtime.
    try:
        stamp = max((p.stat().st_mtime_ns for p in path.iterdir()), default=0)
    except OSError:
        stamp = 0
    return f"{path}@{stamp}"


def _enable_memory_growth() -> None:
    """Let several processes share a GPU instead of each grabbing all of its memory."""
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except Exception as exc:  # already initialised or no TF GPU support: nothing to do
        logger.debug("memory growth not set: %s", exc)


def get_captioner():
    """The process' :class:`mlcore.captioner.Captioner` for the configured artifact."""
    key = _artifact_key()
    captioner = _cache["captioner"]
    if captioner is not None and _cache["key"] == key:
        return captioner
    with _lock:
        if _cache["captioner"] is not None and _cache["key"] == key:
            return _cache["captioner"]
        if hashtags_settings.RESNET50_WEIGHTS:
            os.environ["MLCORE_RESNET50_WEIGHTS"] = str(hashtags_settings.RESNET50_WEIGHTS)
        _enable_memory_growth()
        from mlcore.captioner import Captioner

        started = time.perf_counter()
        captioner = Captioner.load(hashtags_settings.MODEL_DIR)
        logger.info(
            "loaded captioner %s (pid %s) in %.1fs", captioner.model_version, os.getpid(),
            time.perf_counter() - started,
        )
        _cache.update(key=key, captioner=captioner)
        return captioner


def reset_captioner() -> None:
    """Forget the cached model (tests; a promoted model version)."""
    with _lock:
        _cache.update(key=None, captioner=None)


def extractor_config():
    """mlcore's ExtractorConfig from the app settings (blocklist merged with mlcore's)."""
    from mlcore.extractor import DEFAULT_BLOCKLIST, ExtractorConfig

    extra = {str(t).strip().lstrip("#").lower() for t in hashtags_settings.BLOCKLIST if str(t).strip()}
    return ExtractorConfig(
        max_tags=hashtags_settings.MAX_TAGS,
        min_score=hashtags_settings.MIN_SCORE,
        blocklist=type(DEFAULT_BLOCKLIST)(set(DEFAULT_BLOCKLIST) | extra) if extra else DEFAULT_BLOCKLIST,
    )


def suggest(image) -> Any:
    """Run the captioner on one image: a ``mlcore`` Suggestion or ImageError (never raised)."""
    captioner = get_captioner()
    with inference_lock:
        return captioner.suggest(
            [image], beam_width=hashtags_settings.BEAM_WIDTH, config=extractor_config()
        )[0]
