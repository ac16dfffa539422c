"""System checks: catch a bad ``HASHTAGS`` setting at start-up, not in the first task."""

from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from mlcore.precision import requested_precision
from mlcore.tag_head import check_head_views

from .conf import BUILTIN_EXECUTORS, hashtags_settings
from .delivery import MIN_PROC_ALIVE_TIMEOUT, visibility_timeout, warm_up_deadline
from .watched import watched_models
from .reranker import reranker_path

REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel")


@checks.register()
def check_settings(app_configs=None, **kwargs):
    errors = []
    try:
        watched_models()
    except ImproperlyConfigured as exc:
        errors.append(checks.Error(str(exc), id="hashtags.E001"))
    executor = hashtags_settings.EXECUTOR
    if executor not in BUILTIN_EXECUTORS and "." not in str(executor):
        errors.append(
            checks.Error(
                f"HASHTAGS['EXECUTOR'] is {executor!r}; use one of {BUILTIN_EXECUTORS} or an import string.",
                id="hashtags.E002",
            )
        )
    score = hashtags_settings.AUTO_ACCEPT_SCORE
    if score is not None and not 0 <= float(score) <= 1:
        errors.append(checks.Error("HASHTAGS['AUTO_ACCEPT_SCORE'] must be None or within [0, 1].", id="hashtags.E003"))
    try:
        requested_precision(hashtags_settings.DECODER_PRECISION)
    except ValueError as error:
        errors.append(checks.Error(f"HASHTAGS['DECODER_PRECISION']: {error}", id="hashtags.E004"))
    tag_views = hashtags_settings.TAG_VIEWS
    if tag_views is not None:
        try:
            check_head_views(tag_views)
        except (TypeError, ValueError) as error:
            errors.append(checks.Error(f"HASHTAGS['TAG_VIEWS']: {error}", id="hashtags.E005"))
    for name, error_id in (("EXTRA_TAG_HEADS", "hashtags.E006"), ("CLASSIFIER_TAGS", "hashtags.E008")):
        if not isinstance(getattr(hashtags_settings, name), bool):
            errors.append(checks.Error(f"HASHTAGS['{name}'] must be True or False.", id=error_id))
    if not _is_fraction(hashtags_settings.MIN_CAPTION_CONFIDENCE):
        errors.append(checks.Error(
            f"HASHTAGS['MIN_CAPTION_CONFIDENCE'] must be a number within [0, 1], "
            f"got {hashtags_settings.MIN_CAPTION_CONFIDENCE!r}.", id="hashtags.E007"))
    for name, low in (("BATCH_MAX", 1), ("BATCH_WAIT_MS", 0)):
        value = getattr(hashtags_settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            errors.append(checks.Error(f"HASHTAGS['{name}'] must be a whole number >= {low}, got {value!r}.",
                                       id="hashtags.E009"))
    errors.extend(check_reranker_location())
    return errors


def check_reranker_location() -> list[checks.CheckMessage]:
    """The re-ranker decides what every analysis suggests: it must not live where uploads go or
    what the web server publishes."""
    path = reranker_path().resolve()
    for name in ("MEDIA_ROOT", "STATIC_ROOT"):
        root = getattr(settings, name, None)
        if root and path.is_relative_to(Path(root).resolve()):
            return [checks.Warning(
                f"The re-ranker file {path} is inside {name}: anyone who can upload there or download from "
                f"there can replace or read it.", hint="Set HASHTAGS['DATA_DIR'] (or RERANKER_PATH) outside it.",
                id="hashtags.W003")]
    return []


def _is_fraction(value: object) -> bool:
    """A real number in [0, 1] (not a bool, a string or NaN, which would compare wrongly later)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


@checks.register()
def check_delivery(app_configs=None, **kwargs):
    """Celery settings under which analyses get stuck: a Redis broker (the task is ``acks_late``)
    without a visibility timeout that covers a run, and a child start-up allowance the model's
    warm-up cannot meet."""
    if hashtags_settings.EXECUTOR != "celery":
        return []
    conf = current_app.conf
    warnings = []
    broker = str(conf.broker_url or "")
    if broker.split(":", 1)[0] in REDIS_SCHEMES:
        timeout = (conf.broker_transport_options or {}).get("visibility_timeout")
        needed = visibility_timeout(hashtags_settings.TASK_TIME_LIMIT)
        if timeout is None or float(timeout) < needed:
            shown = "not set (kombu's default: 3600 s)" if timeout is None else f"{timeout} s"
            warnings.append(checks.Warning(
                f"The Redis broker's visibility_timeout is {shown}; analyses are acks_late, so a message "
                f"of a killed worker comes back only after it, and one shorter than a run "
                f"({needed} s for TASK_TIME_LIMIT={hashtags_settings.TASK_TIME_LIMIT}) is delivered twice.",
                hint=f"CELERY_BROKER_TRANSPORT_OPTIONS = "
                     f"hashtags.delivery.broker_transport_options({hashtags_settings.TASK_TIME_LIMIT})",
                id="hashtags.W001",
            ))
    alive = float(conf.worker_proc_alive_timeout or 0)
    if hashtags_settings.WARM_WORKER and alive < MIN_PROC_ALIVE_TIMEOUT:
        warnings.append(checks.Warning(
            f"worker_proc_alive_timeout is {alive:g} s: a prefork child loads the model before it reports "
            f"up (4-7 s measured) and Celery kills children that are not up in time, so the warm-up stops "
            f"waiting after {warm_up_deadline(alive):g} s and each new child's first task waits for the model "
            f"inside its time limit.",
            hint="CELERY_WORKER_PROC_ALIVE_TIMEOUT = 60",
            id="hashtags.W002",
        ))
    return warnings
