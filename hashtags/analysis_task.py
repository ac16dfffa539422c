"""The Celery task that analyses one watched image (re-exported by :mod:`hashtags.tasks`, where
Celery's autodiscovery finds it). Its own module so that the request outbox (:mod:`hashtags.dispatch`)
can send it without importing the reconciler's tasks, which send through the outbox.

``acks_late``: a worker that dies mid-task gets the message redelivered (after the broker's
visibility timeout on Redis, :mod:`hashtags.delivery`); the task is idempotent and claims its
analysis before the model runs (see :mod:`hashtags.analysis`). Transient errors retry with a
growing countdown for ``TASK_RETRY_MINUTES``; bad images do not.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from .analysis import TRANSIENT_ERRORS, mark_gave_up, run_analysis
from .batching import ModelTimeout
from .conf import hashtags_settings
from .delivery import retry_countdown

logger = logging.getLogger("hashtags.tasks")


@shared_task(
    bind=True,
    name="hashtags.analyze_image",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # bounded in time instead: TASK_RETRY_MINUTES
    ignore_result=True,
)
def analyze_image(self, app_label: str, model_name: str, pk, field_name: str, force: bool = False,
                  first_try: float | None = None):
    """Analyse ``app_label.model_name(pk).field_name`` and store its suggestions.

    ``first_try`` (epoch seconds) is set by the retries: transient errors are retried until
    ``TASK_RETRY_MINUTES`` have passed since it, however many retries that takes."""
    first_try = first_try or time.time()
    try:
        analysis = run_analysis(app_label, model_name, pk, field_name, force=force,
                                claim=self.request.id or None)
    except (SoftTimeLimitExceeded, ModelTimeout):  # the prefork pool's limit, or the batch's
        mark_gave_up(app_label, model_name, pk, field_name,
                     f"analysis timed out after {hashtags_settings.TASK_SOFT_TIME_LIMIT} s")
        raise
    except TRANSIENT_ERRORS as exc:
        raise retry_or_give_up(self, exc, (app_label, model_name, pk, field_name), force, first_try)
    if analysis is None:
        return None
    return {"analysis": analysis.pk, "status": analysis.status}


def retry_or_give_up(task, exc: Exception, target: tuple, force: bool, first_try: float) -> Exception:
    """The exception ``analyze_image`` raises after a transient error: a retry (a countdown that
    grows with a floor, :func:`hashtags.delivery.retry_countdown`) while the time budget lasts,
    else the error itself once the failure is recorded. A failure that cannot be recorded (the
    database is down) is retried again rather than acknowledged as done."""
    retries = task.request.retries
    limit = hashtags_settings.TASK_TIME_LIMIT
    countdown = retry_countdown(retries, limit)
    spent = time.time() - first_try
    budget_spent = spent + countdown > 60 * float(hashtags_settings.TASK_RETRY_MINUTES)
    cap = hashtags_settings.TASK_MAX_RETRIES
    if budget_spent or (cap is not None and retries >= cap):
        if mark_gave_up(*target, f"gave up after {retries} retries in {spent:.0f} s: {exc}"):
            return exc
        logger.error("hashtags: %s.%s %s: retries spent and the failure cannot be recorded (%s); retrying",
                     target[0], target[1], target[2], exc)
        countdown = retry_countdown(retries + 10, limit)  # the longest wait
    else:
        logger.warning("hashtags: %s.%s %s: %s; retry %d in %.0f s", target[0], target[1], target[2], exc,
                       retries + 1, countdown)
    return task.retry(exc=exc, countdown=countdown, max_retries=None,
                      kwargs={"force": force, "first_try": first_try})
