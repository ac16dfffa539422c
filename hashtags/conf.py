"""One settings object for the app, read from ``settings.HASHTAGS`` (the DRF pattern).

``hashtags_settings.MAX_TAGS`` returns the project's value or the default below. The object is reset
on ``setting_changed`` so ``override_settings(HASHTAGS={...})`` works in tests. Keys not listed in
``DEFAULTS`` are rejected so that typos fail loudly.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from mlcore.thresholds import LOW_CAPTION_CONFIDENCE

DEFAULTS: dict[str, Any] = {
    # Image fields to watch, as "app_label.Model.field". Saving one of these models with a new image
    # enqueues an analysis.
    "WATCH": [],
    # Model artifact directory; None = the model shipped with mlcore. It serves (and is registered
    # as a ModelVersion automatically) until a version is promoted; a promoted version wins.
    "MODEL_DIR": None,
    # Seconds a process trusts its answer to "which model version serves?" before asking the
    # database again; every analysis task asks at its start anyway.
    "MODEL_CHECK_INTERVAL": 10,
    # Local ResNet50 ImageNet weights file for artifacts with a ResNet50 encoder (passed to
    # Captioner.load); None = $MLCORE_RESNET50_WEIGHTS if set, else Keras' own download.
    "RESNET50_WEIGHTS": None,
    # Decoding and hashtag extraction.
    "BEAM_WIDTH": None,  # None = the model's own default (the shipped model: 8)
    # Float type of the decoder's matrix products: "auto" = bfloat16 where the CPU (AMX /
    # AVX512-BF16) or GPU (compute capability 8+) has it natively, else "float32".
    "DECODER_PRECISION": "auto",
    # Image views whose tag-head probabilities are averaged (mlcore.views), each one encoder pass
    # per image and head; None = the model's own (the shipped model: ["plain"]).
    "TAG_VIEWS": None,
    # Also run the model's extra tag heads on other backbones (the shipped model: one on
    # EfficientNet-Lite2, ~1.8x the encoder work, dev P@5 0.451 vs 0.426 without it).
    "EXTRA_TAG_HEADS": True,
    # Fuse the encoders' own ImageNet classes into the hashtags (no extra CNN pass): #espresso
    # #coffee on a coffee photo that the Flickr8k-trained captioner calls a dog (model card).
    "CLASSIFIER_TAGS": True,
    "MAX_TAGS": 10,
    "MIN_SCORE": 0.05,
    # Captions whose confidence (agreement with the tag heads and the classifier, in [0, 1]) is
    # below this are shown as a guess ("Possibly: ..."), not as fact, in the admin, API and demo.
    "MIN_CAPTION_CONFIDENCE": LOW_CAPTION_CONFIDENCE,
    # Extra tags (with or without '#') that are never suggested, on top of mlcore's blocklist.
    "BLOCKLIST": [],
    # How analyses run: "celery" (a worker on QUEUE), "thread" (a background thread in this process,
    # for the demo / small sites), "sync" (inline, after commit) or an import string of a callable
    # ``f(app_label, model_name, pk, field_name, *, force=False)``.
    "EXECUTOR": "celery",
    # Celery queue for analyses; run GPU workers with ``-Q gpu``.
    "QUEUE": "gpu",
    # Seconds per analysis. The hard limit also sets the Redis visibility timeout
    # (hashtags.delivery.broker_transport_options) and when a running analysis counts as stuck.
    "TASK_SOFT_TIME_LIMIT": 120,
    "TASK_TIME_LIMIT": 180,
    # Transient errors (database, storage) are retried for this many minutes, countdowns growing
    # 2 s, 4 s, ... up to a minute: a database outage shorter than this loses nothing.
    "TASK_RETRY_MINUTES": 30,
    # Optional cap on the number of retries as well (None = only the time budget counts).
    "TASK_MAX_RETRIES": None,
    # How often Celery beat runs the reconciler (hashtags.reconcile: unsent, lost and stuck
    # analyses are sent again); seconds, or None for no periodic task. Workers also run it on start.
    "RECONCILE_EVERY": 120,
    # Load the model when a worker process starts (after fork) instead of on the first task.
    "WARM_WORKER": True,
    # Cross-task batching (hashtags.batching): analyses running side by side in one worker process
    # (``--pool=threads --concurrency=N``, N >= BATCH_MAX) share forward passes of at most
    # BATCH_MAX images; the model waits at most BATCH_WAIT_MS for images already on their way
    # (never for a lone upload). 16 suits a CPU; on a GPU try 64 (and --concurrency=64). 1 = off.
    "BATCH_MAX": 16,
    "BATCH_WAIT_MS": 20,
    # Load and run the model once when a web process starts (wsgi.py / asgi.py call
    # hashtags.inference.warm_for_server) if the site serves POST tag-image/: no cold first request.
    "WARM_AT_STARTUP": True,
    # Analyse new images automatically on save.
    "AUTO_TAG": True,
    # Suggestions scoring at least this much are accepted without a person (None = never).
    "AUTO_ACCEPT_SCORE": None,
    # Name of a django-taggit TaggableManager on the watched model that mirrors accepted tags.
    "TAGGIT_FIELD": None,
    # Field (a FK to the user model) naming a watched object's owner: owners review their posts and
    # owners who opted out are never analysed.
    "OWNER_FIELD": "owner",
    # DRF throttle rate for anonymous + authenticated calls of POST tag-image/ (None = unthrottled).
    "TAG_IMAGE_THROTTLE": "30/hour",
    # Rate of every hashtags API call per user (signed in) or client address (None = unthrottled),
    # and of sign-in attempts per client address in the demo's login views.
    "API_THROTTLE": "1000/hour",
    "LOGIN_THROTTLE": "10/minute",
    # How many reverse proxies of yours append to X-Forwarded-For in front of the app. 0: the
    # header is ignored and the client is REMOTE_ADDR (a client can write any X-Forwarded-For).
    "NUM_PROXIES": 0,
    # CACHES alias holding the throttle counters; use a shared cache (Redis) when several
    # processes serve the API, or each one counts on its own.
    "THROTTLE_CACHE": "default",
    # Largest image POST tag-image/ decodes (pixels): it answers synchronously, so it takes less
    # than a stored image may have (mlcore's limit, 40 megapixels).
    "TAG_IMAGE_MAX_PIXELS": 24_000_000,
    # Most images one POST tag-images/ takes (one batched forward pass; each image counts as one
    # call against TAG_IMAGE_THROTTLE and each may be MAX_UPLOAD_BYTES).
    "TAG_IMAGE_BATCH_MAX": 16,
    # Largest upload accepted by POST tag-image/ (bytes); a bigger request body is refused from
    # its Content-Length, before it is read.
    "MAX_UPLOAD_BYTES": 10 * 1024 * 1024,
    # Image file extensions hashtags.validators.validate_image_upload lets a platform store (the
    # demo's upload form and Post.image use it); the file's format must match its extension.
    "IMAGE_EXTENSIONS": ["jpg", "jpeg", "png", "webp", "gif"],
    # Largest stored image a worker reads (bytes); bigger files fail their analysis with a reason.
    "MAX_IMAGE_BYTES": 20 * 1024 * 1024,
    # Permission classes (import strings) for the public read endpoints (posts by tag, trending).
    "READ_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    # Permission classes of POST tag-image/ (synchronous model work): e.g.
    # ["rest_framework.permissions.IsAuthenticated"] to keep anonymous callers off it.
    "TAG_IMAGE_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    # Default window of GET trending/.
    "TRENDING_DAYS": 7,
    # Directory of the app's own trained files (the re-ranker). Keep it out of MEDIA_ROOT and
    # STATIC_ROOT: those take uploads and are published. None = $XDG_DATA_HOME/django-hashtags
    # (~/.local/share/django-hashtags).
    "DATA_DIR": None,
    # The feedback re-ranker (hashtags.reranker): where the trained model is saved and read as JSON
    # (None = DATA_DIR/reranker.json; no file = suggestions keep the captioner's order),
    # how many people's decisions it needs before it trains, and how often the Celery beat task
    # hashtags.train_reranker retrains it (seconds or a celery schedule; None = no periodic task).
    "RERANKER_PATH": None,
    "RERANKER_MIN_DECISIONS": 50,
    "RERANKER_SCHEDULE": None,
}

IMPORT_STRINGS = ("READ_PERMISSION_CLASSES", "TAG_IMAGE_PERMISSION_CLASSES")
BUILTIN_EXECUTORS = ("celery", "thread", "sync")


class HashtagsSettings:
    """Attribute access to ``settings.HASHTAGS`` with defaults; caches resolved values."""

    def __init__(self, defaults: dict[str, Any] | None = None):
        self.defaults = defaults or DEFAULTS
        self._cached: set[str] = set()
        self._user_settings: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user_settings is None:
            value = getattr(settings, "HASHTAGS", {}) or {}
            unknown = set(value) - set(self.defaults)
            if unknown:
                raise ImproperlyConfigured(
                    f"Unknown HASHTAGS setting(s): {', '.join(sorted(unknown))}. "
                    f"Known: {', '.join(sorted(self.defaults))}."
                )
            self._user_settings = value
        return self._user_settings

    def __getattr__(self, attr: str) -> Any:
        if attr not in self.defaults:
            raise AttributeError(f"Invalid hashtags setting: {attr!r}")
        value = self.user_settings.get(attr, self.defaults[attr])
        if attr in IMPORT_STRINGS:
            value = [import_string(item) if isinstance(item, str) else item for item in value]
        self._cached.add(attr)
        setattr(self, attr, value)
        return value

    def reload(self) -> None:
        for attr in self._cached:
            delattr(self, attr)
        self._cached.clear()
        self._user_settings = None

    # Helpers over raw values --------------------------------------------------------------------

    def watched(self) -> list[tuple[str, str, str]]:
        """``WATCH`` parsed into ``(app_label, model_name, field_name)`` triples."""
        triples = []
        for entry in self.WATCH:
            parts = entry.split(".")
            if len(parts) != 3 or not all(parts):
                raise ImproperlyConfigured(
                    f"HASHTAGS['WATCH'] entries look like 'app_label.Model.image_field', got {entry!r}."
                )
            triples.append((parts[0], parts[1], parts[2]))
        return triples


hashtags_settings = HashtagsSettings(DEFAULTS)


def reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == "HASHTAGS":
        hashtags_settings.reload()


setting_changed.connect(reload_settings)
