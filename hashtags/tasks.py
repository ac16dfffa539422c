"""Celery tasks: analyse one watched image (:mod:`hashtags.analysis_task`), reconcile, retrain the
re-ranker. The analysis is routed to ``HASHTAGS["QUEUE"]`` (``gpu``) by
:func:`hashtags.dispatch.enqueue_analysis`.

Run a worker with::

    celery -A project worker -Q gpu --pool=threads --concurrency=16 --loglevel=info  # batching (BATCH_MAX 16)
    celery -A project worker -Q gpu --pool=solo --loglevel=info          # one model per worker
    celery -A project worker -Q gpu --concurrency=1 --loglevel=info      # prefork, 1 child
    celery -A project beat --loglevel=info                               # one: the reconciler's schedule

The analysis task's delivery (``acks_late``, retries) is described in :mod:`hashtags.analysis_task`.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import current_app, shared_task
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.signals import beat_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import connections

from .analysis_task import analyze_image, retry_or_give_up  # noqa: F401  (registered with Celery from here)
from .conf import hashtags_settings
from .delivery import warm_up_deadline
from .inference import get_captioner, warm_up
from .reconcile import reconcile as reconcile_now
from .reranker import NotEnoughFeedback, describe, train_and_save

logger = logging.getLogger(__name__)


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


@worker_ready.connect
def warm_thread_pool(sender=None, **kwargs) -> None:
    """The threads pool (``--pool=threads``, the batching worker) runs its tasks in this process,
    which never forks and gets no ``worker_process_init``: load and run the model here, in the
    background, while the first messages are fetched."""
    if not settings.configured or not hashtags_settings.WARM_WORKER:
        return
    if not isinstance(getattr(sender, "pool", None), ThreadTaskPool):
        return  # prefork children warm after their fork; the solo pool sends worker_process_init
    threading.Thread(target=_warm_quietly, name="hashtags-warm-up", daemon=True).start()


def _warm_quietly() -> None:
    warm_up()  # logs its own failure; the first task then loads the model and reports any error


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
