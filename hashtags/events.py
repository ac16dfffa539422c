"""Signals for the host site: connect to these to notify the poster, update a search index or
audit model changes, instead of polling the API.

Every signal is sent **after the transaction that made the change commits** (never when it rolls
back), **once per object and transaction** however many rows changed in it, and in the process that
made the change: ``analysis_finished`` in the Celery worker (or the web process with the ``thread`` /
``sync`` executors), the others where the person decided or promoted. The arguments describe the
state as committed, read when the signal is sent. A receiver that raises is logged and does not
affect the change or the other receivers (``send_robust``).

``analysis_finished``
    sender: the watched model class. ``instance`` (the watched object; None when it was deleted
    meanwhile), ``analysis`` (:class:`~hashtags.models.ImageAnalysis`), ``suggestions`` (its
    suggestions in rank order; empty when it failed), ``ok`` (True when done, False when failed),
    ``error`` (the reason when it failed, else ``""``).
``accepted_tags_changed``
    sender: the model class of the object. ``instance`` (the object), ``tags`` (the names of the
    object's accepted tags now, sorted; ``["beach", "dog"]``).
``model_promoted``
    sender: :class:`~hashtags.models.ModelVersion`. ``version`` (the row that serves now),
    ``previous`` (the row that served before, or None), ``reason`` (``promoted`` or ``rollback``).

``model_promoted`` is kept apart from :data:`hashtags.versions.serving_switched`: that one is the
app's internal cache hook, sent also when the configured ``MODEL_DIR`` takes over automatically and
carrying no arguments; this one is the public contract, for the decisions a person made.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Hashable

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

analysis_finished = Signal()
accepted_tags_changed = Signal()
model_promoted = Signal()


class _AfterCommit:
    """One pending send, registered with ``transaction.on_commit``; ``key`` lets later changes in
    the same transaction find it instead of registering a second send."""

    def __init__(self, key: Hashable, send: Callable[[], None]):
        self.key, self._send, self.done = key, send, False

    def __call__(self) -> None:
        self.done = True
        self._send()


def send_on_commit(key: Hashable, send: Callable[[], None], using: str = DEFAULT_DB_ALIAS) -> None:
    """Run ``send`` once after the current transaction commits (at once outside a transaction).
    A send already pending for ``key`` in this transaction stands for this one; a savepoint that
    rolls back drops its sends (Django's own ``on_commit`` bookkeeping), so a later change registers
    again."""
    connection = connections[using]
    for entry in connection.run_on_commit:
        callback = entry[1]
        if isinstance(callback, _AfterCommit) and callback.key == key and not callback.done:
            return
    transaction.on_commit(_AfterCommit(key, send), using=using)


def _send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error("hashtags: receiver %r of a hashtags event failed", receiver,
                         exc_info=(type(result), result, result.__traceback__))


def send_analysis_finished(analysis) -> None:
    """``analysis_finished`` for this analysis (a row or its pk) after commit, if it is done or
    failed by then."""
    pk = getattr(analysis, "pk", analysis)
    send_on_commit(("analysis_finished", pk), lambda: _analysis_finished_now(pk))


def _analysis_finished_now(pk) -> None:
    ImageAnalysis = apps.get_model("hashtags", "ImageAnalysis")
    analysis = ImageAnalysis.objects.select_related("content_type").filter(pk=pk).first()
    if analysis is None or analysis.status not in ("done", "failed"):
        return
    ok = analysis.status == "done"
    suggestions = list(analysis.suggestions.select_related("hashtag").order_by("rank", "pk")) if ok else []
    _send(analysis_finished, analysis.content_type.model_class(), instance=analysis.content_object,
          analysis=analysis, suggestions=suggestions, ok=ok, error=analysis.error)


def send_accepted_tags_changed(obj) -> None:
    """``accepted_tags_changed`` for ``obj`` after commit (None: nothing to send)."""
    if obj is None:
        return
    model, pk = type(obj), obj.pk
    send_on_commit(("accepted_tags_changed", model._meta.label_lower, str(pk)),
                   lambda: _accepted_tags_changed_now(model, pk))


def _accepted_tags_changed_now(model, pk) -> None:
    instance = model._default_manager.filter(pk=pk).first()
    if instance is None:
        return
    AcceptedTag = apps.get_model("hashtags", "AcceptedTag")
    tags = sorted(AcceptedTag.objects.for_object(instance).values_list("hashtag__name", flat=True))
    _send(accepted_tags_changed, model, instance=instance, tags=tags)


def send_model_promoted(version, previous=None, *, reason: str) -> None:
    """``model_promoted`` for the version that now serves, after commit."""
    previous_pk = getattr(previous, "pk", None)
    send_on_commit(("model_promoted", version.pk), lambda: _model_promoted_now(version.pk, previous_pk, reason))


def _model_promoted_now(pk, previous_pk, reason: str) -> None:
    ModelVersion = apps.get_model("hashtags", "ModelVersion")
    version = ModelVersion.objects.filter(pk=pk).first()
    if version is None:
        return
    previous = ModelVersion.objects.filter(pk=previous_pk).first() if previous_pk else None
    _send(model_promoted, ModelVersion, version=version, previous=previous, reason=str(reason))
