"""Cross-task batching: analyses that run side by side in one worker process (``celery worker
--pool=threads --concurrency=N``) hand their decoded image to one model thread, which runs the
waiting images as one forward pass and hands each analysis its own result.

Why our own and not ``celery-batches``: its current release (0.11) requires ``celery<5.7`` (we pin
5.7), acknowledges a whole batch's messages together after the batch returns, never rejects them
when the worker dies, and runs the batch outside the task's own retry and time-limit handling.
Here every message stays one Celery task: it is acknowledged after its own results are stored
(``acks_late``), retries and claims stay per image, and a bad image fails alone — only the
forward pass is shared.

The model thread never waits for nobody: it waits (at most ``BATCH_WAIT_MS``) only while other
analyses in this process have announced that an image is coming (:meth:`ImageBatcher.slot`), so a
lone upload on an idle worker goes straight to the model.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

# Runs one batch: (captioner, decoded images) -> one result (or ImageError) per image.
RunBatch = Callable[[Any, list], list]


class ModelTimeout(Exception):
    """The model thread did not answer within the analysis' time limit."""


@dataclass(eq=False)
class _Job:
    captioner: Any
    image: Any
    queued: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    batch_size: int = 0
    wait_s: float = 0.0


class Slot:
    """One analysis' place in the batcher, from its start until its image is submitted."""

    def __init__(self, batcher: ImageBatcher):
        self._batcher = batcher
        self.open = True

    def run(self, captioner, image, timeout: float | None = None) -> tuple[Any, dict]:
        """The model's result for ``image`` (decoded) and ``{"batch": n, "batch_wait_s": s}``."""
        if not self.open:
            raise RuntimeError("this slot has already run an image")
        self.open = False
        return self._batcher.run(captioner, image, timeout, announced=True)


class ImageBatcher:
    """Collects decoded images from the analyses of one process into batches of at most
    ``max_batch`` for one model thread."""

    def __init__(self, run_batch: RunBatch, max_batch: int, max_wait: float):
        self.run_batch = run_batch
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait))
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._announced = 0
        self._thread: threading.Thread | None = None

    @contextmanager
    def slot(self) -> Iterator[Slot]:
        """Announce an image that is coming (while the analysis reads the database and the file),
        so that the model thread may wait for it; the announcement ends when the slot runs or the
        block exits."""
        slot = Slot(self)
        with self._cond:
            self._announced += 1
        try:
            yield slot
        finally:
            if slot.open:
                with self._cond:
                    self._announced -= 1
                    self._cond.notify_all()

    def run(self, captioner, image, timeout: float | None = None, *, announced: bool = False) -> tuple[Any, dict]:
        """Queue ``image`` for the next batch and wait for its result; the model's exception is
        raised here, in the analysis that owns the image."""
        job = _Job(captioner, image)
        with self._cond:
            if announced:
                self._announced -= 1
            self._pending.append(job)
            self._ensure_thread()
            self._cond.notify_all()
        if not job.done.wait(timeout):
            with self._cond:
                if job in self._pending:  # never started: take it back
                    self._pending.remove(job)
            raise ModelTimeout(f"no result from the model within {timeout:.0f} s")
        if job.error is not None:
            raise job.error
        return job.result, {"batch": job.batch_size, "batch_wait_s": round(job.wait_s, 4)}

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="hashtags-model", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            started = time.perf_counter()
            for job in batch:
                job.batch_size, job.wait_s = len(batch), started - job.queued
            self._run(batch)

    def _next_batch(self) -> list[_Job]:
        """The waiting jobs for one captioner, once ``max_batch`` are there, or nobody else has
        announced an image, or ``max_wait`` has passed since the first one arrived."""
        with self._cond:
            while not self._pending:
                self._cond.wait()
            deadline = self._pending[0].queued + self.max_wait
            while len(self._pending) < self.max_batch and self._announced > 0:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            captioner = self._pending[0].captioner
            batch = [job for job in self._pending if job.captioner is captioner][: self.max_batch]
            self._pending = [job for job in self._pending if job not in batch]
            return batch

    def _run(self, batch: list[_Job]) -> None:
        """One forward pass for the batch; if it raises, each image runs alone so that only the
        image that breaks the model gets the error."""
        try:
            results = self.run_batch(batch[0].captioner, [job.image for job in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            logger.warning("hashtags: a batch of %d failed (%s); running its images one by one", len(batch), exc)
            for job in batch:
                self._run([job])
            return
        for job, result in zip(batch, results):
            job.result = result
            job.done.set()


_batcher: dict[str, Any] = {"pid": None, "batcher": None}
_batcher_lock = threading.Lock()


def process_batcher(run_batch: RunBatch, max_batch: int, max_wait: float) -> ImageBatcher:
    """This process' batcher (a new one after a fork: threads do not survive it; and when the
    settings changed)."""
    with _batcher_lock:
        current = _batcher["batcher"]
        if (_batcher["pid"] != os.getpid() or current is None or current.max_batch != max(1, int(max_batch))
                or current.max_wait != max(0.0, float(max_wait)) or current.run_batch is not run_batch):
            current = ImageBatcher(run_batch, max_batch, max_wait)
            _batcher.update(pid=os.getpid(), batcher=current)
        return current
