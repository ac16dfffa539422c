"""System checks: catch a bad ``HASHTAGS`` setting at start-up, not in the first task."""

import os

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from mlcore.precision import ENVIRONMENT_VARIABLE as PRECISION_VARIABLE
from mlcore.precision import PRECISIONS

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
    precision = hashtags_settings.DECODER_PRECISION
    if precision is not None and str(precision).lower() not in PRECISIONS:
        errors.append(checks.Error(
            f"HASHTAGS['DECODER_PRECISION'] is {precision!r}; use 'auto', 'float32' or 'bfloat16'.",
            id="hashtags.E004"))
    elif str(precision or "auto").lower() == "auto":
        from_environment = os.environ.get(PRECISION_VARIABLE, "auto").lower() or "auto"
        if from_environment not in PRECISIONS:
            errors.append(checks.Error(
                f"${PRECISION_VARIABLE} is {from_environment!r} and DECODER_PRECISION is 'auto'; "
                "use 'auto', 'float32' or 'bfloat16'.", id="hashtags.E004"))
    return errors
