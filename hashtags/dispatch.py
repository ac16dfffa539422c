"""Ask for an analysis and send it to whatever runs them (``HASHTAGS["EXECUTOR"]``).

Asking writes an :class:`~hashtags.models.AnalysisRequest` (the outbox, in the caller's
transaction); sending hands it to the executor. The database, not the broker, is the record of
what is owed: a send that fails (broker down) is logged and left for the reconciler
(:mod:`hashtags.reconcile`), never raised into the request that saved the post.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.module_loading import import_string

from .analysis import run_analysis
from .analysis_task import analyze_image
from .conf import hashtags_settings
from .inprocess import submit
from .models import AnalysisRequest
from .watched import content_type_for

logger = logging.getLogger(__name__)

# A save waits at most about a second for a broker that does not answer (Celery's default policy
# retries for up to ~3 s): the request is recorded anyway and the reconciler sends it later.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


def _request_rows(app_label: str, model_name: str, pk, field_name: str):
    model = apps.get_model(app_label, model_name)
    return AnalysisRequest.objects.for_field(model, pk, field_name)


def request_analysis(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False) -> None:
    """Record that ``app_label.model_name(pk).field_name`` needs analysing (idempotent: one row per
    object and field; asking again moves its time forward and marks it unsent)."""
    changes: dict[str, Any] = {"requested": timezone.now(), "sent": None, "last_error": ""}
    if force:
        changes["force"] = True
    rows = _request_rows(app_label, model_name, pk, field_name)
    if rows.update(**changes):
        return
    model = apps.get_model(app_label, model_name)
    try:
        with transaction.atomic():
            AnalysisRequest.objects.create(
                content_type=content_type_for(model), object_id=str(pk), field_name=field_name, **changes
            )
    except IntegrityError:  # asked concurrently
        rows.update(**changes)


def send_analysis(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False) -> Any:
    """Hand a requested analysis to the executor. With Celery, a broker error is logged and kept on
    the request (the reconciler sends it later) instead of raised."""
    executor = hashtags_settings.EXECUTOR
    args = (app_label, model_name, pk, field_name)
    rows = _request_rows(*args)
    rows.update(sent=Now(), sends=F("sends") + 1)  # before sending: a fast worker deletes the row
    if executor == "celery":
        try:
            return analyze_image.apply_async(
                args=args,
                kwargs={"force": force},
                queue=hashtags_settings.QUEUE,
                soft_time_limit=hashtags_settings.TASK_SOFT_TIME_LIMIT,
                time_limit=hashtags_settings.TASK_TIME_LIMIT,
                retry_policy=SEND_RETRY_POLICY,
            )
        except Exception as exc:  # broker down or unreachable: the request stays, unsent
            logger.warning("hashtags: could not send the analysis of %s.%s %s (%s); the reconciler "
                           "will send it", app_label, model_name, pk, exc)
            rows.update(sent=None, last_error=f"send failed: {exc}"[:2000])
            return None
    if executor == "thread":
        return submit(*args, force=force)
    if executor == "sync":
        return run_analysis(*args, force=force)
    return import_string(executor)(*args, force=force)


def enqueue_analysis(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False) -> Any:
    """Request and send the analysis of one image field. Call after the transaction commits (the
    post-save signal instead records the request inside the transaction, then sends on commit)."""
    request_analysis(app_label, model_name, pk, field_name, force=force)
    return send_analysis(app_label, model_name, pk, field_name, force=force)
