"""Celery task: analyse one watched image. Routed to ``HASHTAGS["QUEUE"]`` (``gpu``) by
:func:`hashtags.dispatch.enqueue_analysis`.

Run a worker with::

    celery -A project worker -Q gpu --pool=solo --loglevel=info          # one model per worker
    celery -A project worker -Q gpu --concurrency=1 --loglevel=info      # prefork, 1 child
    celery -A project beat --loglevel=info                               # one: the reconciler's schedule

``acks_late``: a worker that dies mid-task gets the message redelivered (after the broker's
visibility timeout on Redis, :mod:`hashtags.delivery`); the task is idempotent and claims its
analysis before the model runs (see :mod:`hashtags.analysis`). Transient errors retry with a
growing countdown for ``TASK_RETRY_MINUTES``; bad images do not.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import beat_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import connections

from .analysis import TRANSIENT_ERRORS, mark_gave_up, run_analysis
from .conf import hashtags_settings
from .delivery import retry_countdown, warm_up_deadline
from .inference import get_captioner
from .reconcile import reconcile as reconcile_now

logger = logging.getLogger(__name__)


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
    except SoftTimeLimitExceeded:
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


# The reconciler ------------------------------------------------------------------------------------

@shared_task(name="hashtags.reconcile", ignore_result=True)
def reconcile() -> dict:
    """Send again the analyses that are stuck, unrequested, unsent or overdue (:mod:`hashtags.reconcile`)."""
    return reconcile_now().as_dict()


@worker_ready.connect
def reconcile_on_start(sender=None, **kwargs) -> None:
    """A worker that (re)starts repairs what its predecessor left: stuck runs, unsent requests.
    Runs in the worker's main process before it consumes; its database connection is closed again
    so that prefork children forked later do not share it."""
    if not settings.configured or hashtags_settings.EXECUTOR != "celery":
        return
    try:
        report = reconcile_now()
        logger.info("hashtags: reconciled on worker start: %s", report)
    except Exception:  # the database may be down; beat and the next start try again
        logger.exception("hashtags: could not reconcile on worker start")
    finally:
        connections.close_all()


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
    """Celery beat entries the settings ask for: ``RECONCILE_EVERY`` (default 120 s; on the
    analysis queue, which every worker of the app consumes) and ``RERANKER_SCHEDULE`` (seconds or a
    schedule)."""
    entries = {}
    if hashtags_settings.RECONCILE_EVERY:
        entries["hashtags-reconcile"] = {"task": "hashtags.reconcile", "schedule": hashtags_settings.RECONCILE_EVERY,
                                         "options": {"queue": hashtags_settings.QUEUE}}
    if hashtags_settings.RERANKER_SCHEDULE:
        entries["hashtags-train-reranker"] = {"task": "hashtags.train_reranker",
                                              "schedule": hashtags_settings.RERANKER_SCHEDULE}
    return entries


@beat_init.connect
def add_periodic_tasks(sender=None, **kwargs) -> None:
    """Give ``celery beat`` (or ``worker -B``) the app's periodic tasks; the project's own
    ``beat_schedule`` is left alone."""
    entries = periodic_tasks()
    if entries and sender is not None:
        sender.scheduler.update_from_dict(entries)
        logger.info("hashtags: periodic tasks scheduled: %s", ", ".join(sorted(entries)))
