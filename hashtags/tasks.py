"""Celery task: analyse one watched image. Routed to ``HASHTAGS["QUEUE"]`` (``gpu``) by
:func:`hashtags.dispatch.enqueue_analysis`.

Run a worker with::

    celery -A project worker -Q gpu --pool=solo --loglevel=info          # one model per worker
    celery -A project worker -Q gpu --concurrency=1 --loglevel=info      # prefork, 1 child

``acks_late``: a worker that dies mid-task gets the message redelivered; the task is idempotent
(see :mod:`hashtags.analysis`). Transient errors retry with exponential backoff; bad images do not.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import beat_init, worker_process_init
from django.conf import settings
from django.db import connections

from .analysis import TRANSIENT_ERRORS, mark_gave_up, run_analysis
from .conf import hashtags_settings
from .delivery import warm_up_deadline
from .inference import get_captioner

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="hashtags.analyze_image",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def analyze_image(self, app_label: str, model_name: str, pk, field_name: str, force: bool = False):
    """Analyse ``app_label.model_name(pk).field_name`` and store its suggestions."""
    self.max_retries = hashtags_settings.TASK_MAX_RETRIES
    try:
        analysis = run_analysis(app_label, model_name, pk, field_name, force=force)
    except SoftTimeLimitExceeded:
        mark_gave_up(app_label, model_name, pk, field_name,
                     f"analysis timed out after {hashtags_settings.TASK_SOFT_TIME_LIMIT} s")
        raise
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            mark_gave_up(app_label, model_name, pk, field_name,
                         f"gave up after {self.request.retries} retries: {exc}")
        raise  # autoretry_for schedules the retry
    if analysis is None:
        return None
    return {"analysis": analysis.pk, "status": analysis.status}


@worker_process_init.connect
def warm_model(**kwargs) -> None:
    """Load the model in each freshly forked worker child, before the first task arrives.

    The load runs in a thread and the child waits for it at most :func:`warm_up_deadline` of
    Celery's ``worker_proc_alive_timeout``: a child that is not up in time is killed and replaced,
    and a load that is slow (a cold disk, a busy GPU) or hangs (a database that does not answer)
    would then kill every replacement too. Past the deadline the child reports up; the load goes on
    and the first task waits for it (:func:`hashtags.inference.get_captioner` holds a lock)."""
    if not settings.configured or not hashtags_settings.WARM_WORKER:
        return
    deadline = warm_up_deadline(current_app.conf.worker_proc_alive_timeout or 4.0)
    loader = threading.Thread(target=_load_model_quietly, name="hashtags-warm-up", daemon=True)
    started = time.monotonic()
    loader.start()
    loader.join(deadline)
    if loader.is_alive():
        logger.warning("hashtags: model still loading after %.0f s; this worker process starts anyway "
                       "and its first task waits for the model", time.monotonic() - started)


def _load_model_quietly() -> None:
    try:
        get_captioner()
    except Exception:  # the task reports the problem with a proper error; never kill the child
        logger.exception("hashtags: could not pre-load the model")
    finally:
        connections.close_all()  # this thread's connection; tasks open their own


# The feedback re-ranker ---------------------------------------------------------------------------

@shared_task(name="hashtags.train_reranker", ignore_result=True)
def train_reranker() -> dict:
    """Retrain the feedback re-ranker (:mod:`hashtags.reranker`) from every decision so far; with
    too little feedback it keeps the current state (no model, or the last one) and says why."""
    from .reranker import NotEnoughFeedback, describe, train_and_save

    try:
        reranker, path = train_and_save()
    except NotEnoughFeedback as exc:
        logger.info("hashtags: %s", exc)
        return {"trained": False, "reason": str(exc)}
    logger.info("hashtags: re-ranker saved to %s: %s", path, describe(reranker))
    return {"trained": True, "path": str(path), "held_out": reranker.metadata.get("held_out")}


def periodic_tasks() -> dict[str, dict]:
    """Celery beat entries the settings ask for: ``RERANKER_SCHEDULE`` (seconds or a schedule)."""
    every = hashtags_settings.RERANKER_SCHEDULE
    if not every:
        return {}
    return {"hashtags-train-reranker": {"task": "hashtags.train_reranker", "schedule": every}}


@beat_init.connect
def add_periodic_tasks(sender=None, **kwargs) -> None:
    """Give ``celery beat`` (or ``worker -B``) the app's periodic tasks; the project's own
    ``beat_schedule`` is left alone."""
    entries = periodic_tasks()
    if entries and sender is not None:
        sender.scheduler.update_from_dict(entries)
        logger.info("hashtags: periodic tasks scheduled: %s", ", ".join(sorted(entries)))
