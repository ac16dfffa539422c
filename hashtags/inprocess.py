"""A tiny in-process executor: analyses run in one background thread of the web process.

Used by the demo (``HASHTAGS["EXECUTOR"] = "thread"``) so it needs no broker and no worker
process. One thread = one model in memory and one inference at a time. Jobs live in memory: ones
queued when the process stops are lost, and ``manage.py hashtags_backfill`` picks them up again.
Not for production; use Celery there.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import close_old_connections, connections

from .analysis import TRANSIENT_ERRORS, mark_gave_up, run_analysis

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_pending: set[Future] = set()
RETRIES = 3


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hashtags-analysis")
        return _executor


def _job(app_label: str, model_name: str, pk, field_name: str, force: bool) -> None:
    close_old_connections()
    claim = uuid.uuid4().hex  # one delivery: its retries may take its claim back
    try:
        for attempt in range(RETRIES + 1):
            try:
                run_analysis(app_label, model_name, pk, field_name, force=force, claim=claim)
                return
            except TRANSIENT_ERRORS as exc:
                if attempt == RETRIES:
                    mark_gave_up(app_label, model_name, pk, field_name, f"gave up after {RETRIES} retries: {exc}")
                    raise
                logger.warning("hashtags: transient error (%s); retrying", exc)
                close_old_connections()
                time.sleep(2 ** attempt)
    except Exception:
        logger.exception("hashtags: analysis of %s.%s %s failed", app_label, model_name, pk)
    finally:
        connections.close_all()


def submit(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False) -> Future:
    future = _get_executor().submit(_job, app_label, model_name, pk, field_name, force)
    with _lock:
        _pending.add(future)
    future.add_done_callback(lambda f: _pending.discard(f))
    return future


def wait_idle(timeout: float | None = None) -> bool:
    """Block until queued analyses finished (tests, management commands). True if idle."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _lock:
            futures = list(_pending)
        if not futures:
            return True
        for future in futures:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.result(timeout=remaining)
            except TimeoutError:
                return False
            except Exception:
                pass
