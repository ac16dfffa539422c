"""Upload → task: watched models enqueue an analysis after commit when their image changed.

Like Wagtail's image renditions: the receiver sends only ``(app_label, model, pk, field)`` on
``transaction.on_commit``, never for raw fixture loads; the request itself is recorded in the
save's transaction (:mod:`hashtags.dispatch`). Each watched model gets its own receivers
(``post_init`` remembers the stored file name, ``post_save`` compares); they are reconnected when
``HASHTAGS`` changes (``override_settings``).
"""

from __future__ import annotations

import logging
from functools import partial

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete, post_init, post_save

from . import watched
from .conf import hashtags_settings
from .dispatch import request_analysis, send_analysis
from .models import AcceptedTag, AnalysisRequest, Hashtag, HashtagOptOut

logger = logging.getLogger(__name__)

ORIGINAL_ATTR = "_hashtags_original_files"
_connected: list[type] = []


def _remember_files(sender, instance, **kwargs) -> None:
    fields = watched.watched_fields(sender)
    instance.__dict__[ORIGINAL_ATTR] = {
        name: getattr(instance, name).name if name in instance.__dict__ else None for name in fields
    }


def _on_save(sender, instance, created: bool, raw: bool = False, using=None, **kwargs) -> None:
    originals = instance.__dict__.get(ORIGINAL_ATTR, {})
    fields = watched.watched_fields(sender)
    changed = []
    for name in fields:
        if name not in instance.__dict__:  # deferred and never loaded: it cannot have changed
            continue
        current = getattr(instance, name).name or None
        if current and (created or current != originals.get(name)):
            changed.append(name)
        originals[name] = current
    instance.__dict__[ORIGINAL_ATTR] = originals
    if raw or not changed or not hashtags_settings.AUTO_TAG:
        return

    if HashtagOptOut.is_opted_out(watched.owner_id(instance)):
        return
    meta = sender._meta
    for name in changed:
        # The request is part of the save's transaction (nothing owed is lost if the process dies
        # or the broker is down after the commit); it is sent once the transaction commits.
        request_analysis(meta.app_label, meta.model_name, instance.pk, name)
        transaction.on_commit(
            partial(send_analysis, meta.app_label, meta.model_name, instance.pk, name), using=using
        )


def _on_delete(sender, instance, **kwargs) -> None:
    """A deleted object loses its accepted tags (usage counts drop) and its unanswered analysis
    requests; analyses stay as history."""
    AnalysisRequest.objects.for_object(instance).delete()
    rows = AcceptedTag.objects.for_object(instance)
    hashtag_ids = list(rows.values_list("hashtag_id", flat=True))
    rows.delete()
    for hashtag in Hashtag.objects.filter(pk__in=hashtag_ids):
        hashtag.refresh_usage_count()


def connect_watched() -> None:
    """(Re)connect the receivers to the models named in ``HASHTAGS["WATCH"]``."""
    disconnect_watched()
    for model in watched.watched_models():
        post_init.connect(_remember_files, sender=model, weak=False, dispatch_uid=f"hashtags-init-{model._meta.label}")
        post_save.connect(_on_save, sender=model, weak=False, dispatch_uid=f"hashtags-save-{model._meta.label}")
        post_delete.connect(_on_delete, sender=model, weak=False, dispatch_uid=f"hashtags-delete-{model._meta.label}")
        _connected.append(model)


def disconnect_watched() -> None:
    while _connected:
        model = _connected.pop()
        post_init.disconnect(sender=model, dispatch_uid=f"hashtags-init-{model._meta.label}")
        post_save.disconnect(sender=model, dispatch_uid=f"hashtags-save-{model._meta.label}")
        post_delete.disconnect(sender=model, dispatch_uid=f"hashtags-delete-{model._meta.label}")


def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting == "HASHTAGS":
        watched.clear_cache()
        try:
            connect_watched()
        except ImproperlyConfigured as exc:  # reported by the system checks / first use
            disconnect_watched()
            logger.warning("hashtags: not watching any model: %s", exc)


setting_changed.connect(_settings_changed)
