"""System checks: catch a bad ``HASHTAGS`` setting at start-up, not in the first task."""

from pathlib import Path

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from mlcore.precision import requested_precision
from mlcore.tag_head import check_head_views

from .conf import BUILTIN_EXECUTORS, hashtags_settings
from .reranker import reranker_path


@checks.register()
def check_settings(app_configs=None, **kwargs):
    errors = []
    try:
        from .registry import watched_models

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
                id="hashtags.W001")]
    return []


def _is_fraction(value: object) -> bool:
    """A real number in [0, 1] (not a bool, a string or NaN, which would compare wrongly later)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
