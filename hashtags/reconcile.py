"""The database is the record of what is owed; the reconciler makes the broker agree with it.

A message can be lost (Redis restarted without persistence, a send while the broker was down, a
process that died between commit and send) and a run can be abandoned (a killed worker whose
analysis stays ``running``). :func:`reconcile` repairs all of these without an operator, and is
safe to run any time, from anywhere, as often as you like (every delivery claims its analysis, so
a duplicate send costs one cheap task):

1. **Stuck analyses**: ``running`` (or ``pending``) for longer than a run can last
   (:func:`hashtags.delivery.claim_expires_after`) are requested and sent again; one abandoned
   :data:`~hashtags.delivery.MAX_ATTEMPTS` times is marked failed.
2. **Images nobody asked about**: watched objects whose current image has no analysis and no
   request (saved before the app was installed, by ``QuerySet.update`` or ``bulk_create``, or
   while ``AUTO_TAG`` was off) are requested and sent. Images are matched on content: an analysis
   of the same bytes under an older file name counts, and its name is brought up to date.
3. **Unsent and overdue requests**: never sent (broker down), or sent longer ago than
   :func:`hashtags.delivery.resend_after` (the message may be lost) are sent again.

It runs from Celery beat (task ``hashtags.reconcile``, every ``RECONCILE_EVERY`` seconds), when
a worker starts, and as ``manage.py hashtags_reconcile``. :func:`health` gives the counts the
admin shows.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db.models import CharField, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Cast, Coalesce, Now
from django.utils import timezone

from . import events
from .analysis import abandoned_before, content_hash, read_image_bytes
from .conf import hashtags_settings
from .delivery import MAX_ATTEMPTS, resend_after, visibility_timeout
from .dispatch import request_analysis, send_analysis
from .models import AnalysisRequest, AnalysisStatus, HashtagOptOut, ImageAnalysis
from .watched import content_type_for, watched_models

logger = logging.getLogger(__name__)

# A request recorded by a save is sent when the transaction commits; give that send this long
# before the reconciler counts the request as unsent.
SEND_GRACE = timedelta(seconds=10)


@dataclass
class Reconciled:
    """What one :func:`reconcile` run did."""

    stuck: int = 0  # abandoned analyses sent again
    given_up: int = 0  # abandoned too often: marked failed
    unrequested: int = 0  # images without analysis or request, requested and sent
    matched_by_content: int = 0  # images whose bytes were analysed under another file name
    resent: int = 0  # unsent or overdue requests sent (again)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in self.as_dict().items())


def images_without_analysis(model, field_name: str, *, version: str | None = None,
                            statuses: list[str] | None = None) -> QuerySet:
    """Objects of ``model`` with a file in ``field_name`` that has no analysis recorded under its
    current file name (by ``version`` and in ``statuses`` when given), by primary key. The name
    match is the cheap first pass; :func:`matches_by_content` is the second."""
    analyses = ImageAnalysis.objects.filter(
        content_type=content_type_for(model), object_id=OuterRef("object_pk_text"), field_name=field_name,
        image_name=OuterRef(field_name),
    )
    if version is not None:
        analyses = analyses.filter(model_version=version)
    if statuses is not None:
        analyses = analyses.filter(status__in=statuses)
    return (
        model._default_manager.exclude(**{field_name: ""}).exclude(**{f"{field_name}__isnull": True})
        .annotate(object_pk_text=Cast("pk", output_field=CharField()))
        .annotate(analysed=Exists(analyses)).filter(analysed=False)
        .order_by("pk")
    )


def matches_by_content(obj, field_name: str, *, version: str | None = None,
                       statuses: list[str] | None = None) -> bool:
    """True when the object's current image bytes already have an analysis (the same bytes
    uploaded again under a new file name); that analysis then takes the current name, so the next
    :func:`images_without_analysis` finds it by name. An unreadable file is no match."""
    fieldfile = getattr(obj, field_name)
    try:
        data = read_image_bytes(fieldfile, hashtags_settings.MAX_IMAGE_BYTES)
    except Exception:  # missing, empty, too large, storage down: the analysis will say so
        return False
    analyses = ImageAnalysis.objects.for_field(obj, obj.pk, field_name).filter(image_sha256=content_hash(data))
    if version is not None:
        analyses = analyses.filter(model_version=version)
    if statuses is not None:
        analyses = analyses.filter(status__in=statuses)
    return bool(analyses.update(image_name=fieldfile.name))


def without_opted_out(model, queryset: QuerySet) -> QuerySet:
    """``queryset`` minus the objects of owners who opted out (when the model has the owner field)."""
    owner_field = hashtags_settings.OWNER_FIELD
    if not owner_field or not any(f.name == owner_field for f in model._meta.get_fields()):
        return queryset
    return queryset.exclude(**{f"{owner_field}__in": HashtagOptOut.objects.values("user_id")})


def stuck_analyses() -> QuerySet:
    """Analyses ``running`` or ``pending`` for longer than a run can last: their worker died, or
    their message was lost."""
    expired = abandoned_before()
    return (
        ImageAnalysis.objects.filter(status__in=[AnalysisStatus.PENDING, AnalysisStatus.RUNNING])
        .annotate(since=Coalesce("started", "created")).filter(since__lt=expired)
    )


def overdue_requests() -> QuerySet:
    """Requests never sent (past :data:`SEND_GRACE`) or sent at least a visibility timeout ago
    (the finer, per-request :func:`resend_after` is applied by :func:`reconcile`)."""
    now = timezone.now()
    oldest_resend = now - timedelta(seconds=visibility_timeout(hashtags_settings.TASK_TIME_LIMIT))
    return AnalysisRequest.objects.filter(
        Q(sent__isnull=True, requested__lt=now - SEND_GRACE) | Q(sent__lt=oldest_resend)
    )


def reconcile(*, limit: int = 1000) -> Reconciled:
    """Send again what is stuck, unrequested, unsent or overdue (at most ``limit`` of each)."""
    report = Reconciled()
    watched = {content_type_for(model).pk: model for model in watched_models()}
    resent: set[tuple] = set()

    for analysis in stuck_analyses().order_by("pk")[:limit]:
        if analysis.attempts >= MAX_ATTEMPTS:
            ImageAnalysis.objects.filter(pk=analysis.pk, status=analysis.status).update(
                status=AnalysisStatus.FAILED, finished=Now(),
                error=f"gave up after {analysis.attempts} attempts: the worker died or exceeded the time limit each time")
            events.send_analysis_finished(analysis)
            report.given_up += 1
            continue
        model = watched.get(analysis.content_type_id)
        if model is None:
            continue
        target = (model._meta.app_label, model._meta.model_name, analysis.object_id, analysis.field_name)
        if target not in resent:
            request_analysis(*target)
            send_analysis(*target)
            resent.add(target)
            report.stuck += 1

    for model, fields in watched_models().items():
        ct = content_type_for(model)
        for field_name in fields:
            requested = AnalysisRequest.objects.filter(content_type=ct, object_id=OuterRef("object_pk_text"),
                                                       field_name=field_name)
            missing = without_opted_out(
                model, images_without_analysis(model, field_name).annotate(requested=Exists(requested))
                .filter(requested=False))
            for obj in missing[:limit]:
                if matches_by_content(obj, field_name):
                    report.matched_by_content += 1
                    continue
                target = (model._meta.app_label, model._meta.model_name, str(obj.pk), field_name)
                request_analysis(*target)
                send_analysis(*target)
                resent.add(target)
                report.unrequested += 1

    time_limit = hashtags_settings.TASK_TIME_LIMIT
    now = timezone.now()
    for request in overdue_requests().order_by("requested", "pk")[:limit]:
        if request.sent is not None and now - request.sent < timedelta(seconds=resend_after(time_limit, request.sends)):
            continue
        model = watched.get(request.content_type_id)
        if model is None:
            request.delete()  # no longer watched: nothing will ever answer it
            continue
        target = (model._meta.app_label, model._meta.model_name, request.object_id, request.field_name)
        if target in resent:
            continue
        send_analysis(*target, force=request.force)
        report.resent += 1
    if any(report.as_dict().values()):
        logger.info("hashtags: reconciled: %s", report)
    return report


def health() -> dict[str, int]:
    """Counts an operator watches: requests not yet answered (``pending``; ``unsent`` of them never
    reached the broker), analyses ``running`` now, ``stuck`` ones (see :func:`stuck_analyses`) and
    ``failed`` ones."""
    return {
        "pending": AnalysisRequest.objects.count(),
        "unsent": AnalysisRequest.objects.filter(sent__isnull=True).count(),
        "running": ImageAnalysis.objects.filter(status=AnalysisStatus.RUNNING).count(),
        "stuck": stuck_analyses().count(),
        "failed": ImageAnalysis.objects.filter(status=AnalysisStatus.FAILED).count(),
    }
