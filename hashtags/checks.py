"""System checks: catch a bad ``HASHTAGS`` setting at start-up, not in the first task."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from mlcore.precision import requested_precision
from mlcore.tag_head import check_head_views

from .conf import BUILTIN_EXECUTORS, hashtags_settings


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
    return errors


def _is_fraction(value: object) -> bool:
    """A real number in [0, 1] (not a bool, a string or NaN, which would compare wrongly later)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
