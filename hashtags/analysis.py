"""Analyse one watched object's image and store the suggestions — the body of the Celery task,
also run by the in-process executor. Plain Django; no Celery here.

Idempotent: the analysis row is unique per (object, field, image sha256, model version); a done
analysis is never redone unless forced, a delivery claims the row atomically before the model runs
(a duplicate delivery stops), identical bytes reuse a done analysis' results, and suggestions are
replaced in one transaction. Finishing answers the object's :class:`~hashtags.models.AnalysisRequest`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.db.models.expressions import CombinedExpression
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Coalesce, Lower, Now
from django.utils import timezone
from mlcore.artifact import ArtifactError
from mlcore.images import ImageError

from . import events, services
from .conf import hashtags_settings
from .delivery import MAX_ATTEMPTS, claim_expires_after
from .batching import ModelTimeout, Slot
from .inference import batcher, get_captioner, suggest_in_batch
from .models import (AcceptedTagSource, AnalysisRequest, AnalysisStatus, Hashtag, HashtagOptOut, ImageAnalysis,
                     Suggestion, SuggestionState)
from .watched import content_type_for, owner_id
from .reranker import apply_to_suggestion as apply_reranker
from .tags import InvalidTag, canonical_name

logger = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"  # model_version of analyses that failed because no model could load



def _image_error(message: str) -> Exception:
    return ImageError(message)


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def read_image_bytes(fieldfile: FieldFile, max_bytes: int) -> bytes:
    """The stored file's bytes; ImageError for empty/oversized files, FileNotFoundError if gone."""
    storage, name = fieldfile.storage, fieldfile.name
    try:
        size = storage.size(name)
    except NotImplementedError:
        size = None
    if size is not None and size > max_bytes:
        raise _image_error(f"image file is too large: {_megabytes(size)} (limit {_megabytes(max_bytes)})")
    with storage.open(name, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _image_error(f"image file is too large (limit {_megabytes(max_bytes)})")
    if not data:
        raise _image_error("empty file")
    return data


class AnalysisInProgress(Exception):
    """Another worker is running the model on the same image content right now: try again later
    and reuse its result (one model run per content)."""


# Worth retrying: database hiccups, storage I/O, the same content being analysed elsewhere.
# FileNotFoundError is handled as a failure.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, OSError, AnalysisInProgress)


def run_analysis(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False,
                 claim: str | None = None) -> ImageAnalysis | None:
    """Analyse ``app_label.model_name(pk).field_name``; returns the analysis (None when skipped).

    ``claim`` names this delivery (the Celery task id; its retries and a redelivery of the same
    message keep it): the analysis row is claimed atomically before the model runs, and a delivery
    that finds it claimed by another live one stops. Raises only transient errors (worth a retry)
    and configuration errors (ArtifactError). Once the object's analysis is settled (finished,
    failed or nothing to analyse), its request is answered."""
    asked_before = timezone.now()  # requests made before this are answered by this run
    model = apps.get_model(app_label, model_name)
    with batcher().slot() as slot:  # the model may wait for this image while it is being read
        analysis, settled = _analyse(model, pk, field_name, force, claim or uuid.uuid4().hex, slot)
    if settled:
        _answered(model, pk, field_name, asked_before)
    return analysis


def _analyse(model, pk, field_name: str, force: bool, claim: str, slot: Slot) -> tuple[ImageAnalysis | None, bool]:
    """:func:`run_analysis`'s work: the analysis, and whether it is settled (False only when
    another live delivery holds it). The image runs in ``slot``'s batch, with the images of the
    analyses beside it in this process (:mod:`hashtags.batching`)."""
    app_label, model_name = model._meta.app_label, model._meta.model_name
    obj = model._default_manager.filter(pk=pk).first()
    if obj is None:
        logger.info("hashtags: %s.%s %s is gone; nothing to analyse", app_label, model_name, pk)
        return None, True
    if HashtagOptOut.covers(obj):  # forced or not: the owner's choice wins over a moderator's re-run
        logger.info("hashtags: owner of %s.%s %s opted out; not analysed", app_label, model_name, pk)
        return None, True
    fieldfile = getattr(obj, field_name)
    if not fieldfile:
        return None, True

    try:
        captioner = get_captioner(refresh=True)  # task start: pick up a promoted model version
    except ArtifactError as exc:  # a deployment problem: say so on the post instead of vanishing
        logger.error("hashtags: model unavailable: %s", exc)
        key = {"content_type": content_type_for(obj), "object_id": str(obj.pk), "field_name": field_name,
               "model_version": UNAVAILABLE}
        return _record_unreadable(key, fieldfile.name, f"the hashtag model is unavailable: {exc}"), True
    key = {
        "content_type": content_type_for(obj),
        "object_id": str(obj.pk),
        "field_name": field_name,
        "model_version": captioner.model_version,
    }
    read_started = time.perf_counter()
    try:
        data = read_image_bytes(fieldfile, hashtags_settings.MAX_IMAGE_BYTES)
    except FileNotFoundError:
        return _record_unreadable(key, fieldfile.name, f"file not found: {fieldfile.name}"), True
    except ImageError as exc:
        return _record_unreadable(key, fieldfile.name, str(exc)), True
    read_seconds = time.perf_counter() - read_started

    analysis, created = ImageAnalysis.objects.get_or_create(
        **key, image_sha256=content_hash(data), defaults={"image_name": fieldfile.name}
    )
    if not created and not force and analysis.status in (AnalysisStatus.DONE, AnalysisStatus.FAILED):
        if analysis.image_name != fieldfile.name:  # the same bytes uploaded again under a new name
            ImageAnalysis.objects.filter(pk=analysis.pk).update(image_name=fieldfile.name)
        return analysis, True  # already analysed

    claimed = claim_analysis(analysis.pk, claim, image_name=fieldfile.name, force=force, seen_status=analysis.status)
    analysis.refresh_from_db()
    if not claimed:
        logger.info("hashtags: analysis %s is %s (claimed by %s); delivery %s stops",
                    analysis.pk, analysis.status, analysis.claimed_by or "nobody", claim)
        return analysis, analysis.status in (AnalysisStatus.DONE, AnalysisStatus.FAILED)
    try:
        if not force and _reuse_identical(analysis, claim):
            logger.info("hashtags: analysis %s reuses the results for identical bytes", analysis.pk)
            analysis.refresh_from_db()
            return analysis, True
        _defer_to_an_earlier_run(analysis)
    except TRANSIENT_ERRORS:
        release_claim(analysis.pk, claim)
        raise

    try:
        result = suggest_in_batch(data, captioner, slot, timeout=hashtags_settings.TASK_SOFT_TIME_LIMIT)
    except ModelTimeout:
        release_claim(analysis.pk, claim)
        raise
    if isinstance(result, ImageError):
        analysis.mark_failed(str(result))
        events.send_analysis_finished(analysis)
        logger.info("hashtags: analysis %s failed: %s", analysis.pk, result)
        return analysis, True
    result = apply_reranker(result, owner_id(obj))  # unchanged unless a re-ranker was trained
    timings = dict(result.timings)
    timings["read_s"] = round(read_seconds, 4)
    stored = _store(analysis.pk, result, timings, claim)
    if stored is None:  # another delivery took the claim over meanwhile
        analysis.refresh_from_db()
    return stored or analysis, True


def content_hash(data: bytes) -> str:
    """What identifies an image's content: the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def abandoned_before() -> CombinedExpression:
    """The moment before which a ``running`` analysis belongs to a dead worker (no run lasts past
    the hard time limit: :func:`~hashtags.delivery.claim_expires_after`), as a database expression."""
    return Now() - timedelta(seconds=claim_expires_after(hashtags_settings.TASK_TIME_LIMIT))


def _claimable(force: bool) -> Q:
    """Analyses a delivery may take: new ones, ones whose run was abandoned (a killed worker: no
    run lasts past the hard time limit), and with ``force`` finished ones."""
    expired = abandoned_before()
    claimable = (Q(status=AnalysisStatus.PENDING)
                 | Q(status=AnalysisStatus.RUNNING, started__isnull=True)
                 | Q(status=AnalysisStatus.RUNNING, started__lt=expired))
    if force:
        claimable |= Q(status__in=[AnalysisStatus.DONE, AnalysisStatus.FAILED])
    return claimable


def claim_analysis(analysis_pk: int, claim: str, *, image_name: str, force: bool = False,
                   seen_status: str | None = None) -> bool:
    """Atomically mark the analysis running for this delivery (one UPDATE ... WHERE); False when
    another delivery holds it or it is finished. The same delivery (a retry, or its message
    redelivered after its worker died) may take it back. A run abandoned :data:`MAX_ATTEMPTS`
    times (its worker keeps dying on this image) is marked failed instead. ``seen_status``: the
    status the caller just read; when it was not ``running`` no run can have been abandoned (a
    run started since holds a live claim), so that check's UPDATE is skipped."""
    rows = ImageAnalysis.objects.filter(pk=analysis_pk)
    if seen_status in (None, AnalysisStatus.RUNNING):
        abandoned = rows.filter(status=AnalysisStatus.RUNNING, attempts__gte=MAX_ATTEMPTS).filter(
            Q(claimed_by=claim) | _claimable(False))
        if abandoned.update(status=AnalysisStatus.FAILED, finished=Now(), error=(
                f"gave up after {MAX_ATTEMPTS} attempts: the worker died or exceeded the time limit each time")[:2000]):
            events.send_analysis_finished(analysis_pk)
            return False
    claimable = _claimable(force) | Q(status=AnalysisStatus.RUNNING, claimed_by=claim)
    return bool(rows.filter(claimable).update(
        status=AnalysisStatus.RUNNING, started=Now(), finished=None, error="", image_name=image_name,
        claimed_by=claim, attempts=F("attempts") + 1,
    ))


def release_claim(analysis_pk: int, claim: str) -> None:
    """Give the analysis back (pending) before a retry, so another delivery may run it. Best
    effort: when the database is what fails, the claim expires on its own."""
    try:
        ImageAnalysis.objects.filter(pk=analysis_pk, status=AnalysisStatus.RUNNING, claimed_by=claim).update(
            status=AnalysisStatus.PENDING)
    except Exception as exc:
        logger.info("hashtags: could not release analysis %s (%s); its claim expires", analysis_pk, exc)


def _defer_to_an_earlier_run(analysis: ImageAnalysis) -> None:
    """Raise :class:`AnalysisInProgress` when another live run on the same content (and model
    version) started before this one: it will finish first, and the retry reuses its result."""
    if not analysis.image_sha256:
        return
    expired = abandoned_before()
    earlier = (
        ImageAnalysis.objects.filter(image_sha256=analysis.image_sha256, model_version=analysis.model_version,
                                     status=AnalysisStatus.RUNNING, started__gte=expired)
        .exclude(pk=analysis.pk)
        .filter(Q(started__lt=analysis.started) | Q(started=analysis.started, pk__lt=analysis.pk))
    )
    if earlier.exists():
        raise AnalysisInProgress(f"the same image is being analysed (analysis {earlier.first().pk})")


def _reuse_identical(analysis: ImageAnalysis, claim: str) -> bool:
    """Copy the results of a done analysis of identical bytes by the same model version (another
    post, or another field) instead of running the model again. The re-ranker is not applied again:
    the copy keeps the stored order."""
    if not analysis.image_sha256:
        return False
    source = (
        ImageAnalysis.objects.filter(image_sha256=analysis.image_sha256, model_version=analysis.model_version,
                                     status=AnalysisStatus.DONE)
        .exclude(pk=analysis.pk).order_by("-finished", "-pk").first()
    )
    if source is None:
        return False
    tags = [
        StoredTag(s.replaced.name if s.replaced_id else s.hashtag.name, s.score, tuple(s.sources or ()))
        for s in source.suggestions.filter(score__isnull=False).select_related("hashtag", "replaced").order_by("rank", "pk")
    ]
    result = StoredResult(caption=source.caption, caption_confidence=source.caption_confidence,
                          captions=list(source.captions), hashtags=tags,
                          attention_map=source.attention)
    _store(analysis.pk, result, {"reused_from": source.pk}, claim)
    return True


@dataclass(frozen=True)
class StoredTag:
    """A stored suggestion read back as the result of a model run (for reuse)."""

    tag: str
    score: float
    sources: tuple[str, ...]


@dataclass(frozen=True)
class StoredResult:
    caption: str
    caption_confidence: float | None
    captions: list[str]
    hashtags: list[StoredTag]
    attention_map: dict | None = None


def _answered(model, pk, field_name: str, asked_before) -> None:
    """The object's analysis request (if made before this run started) is answered: delete it."""
    AnalysisRequest.objects.for_field(model, pk, field_name).filter(requested__lte=asked_before).delete()


def _record_unreadable(key: dict, image_name: str, error: str) -> ImageAnalysis:
    """A failed analysis for a file we could not read (no content hash)."""
    analysis, _ = ImageAnalysis.objects.get_or_create(**key, image_sha256="", defaults={"image_name": image_name})
    ImageAnalysis.objects.filter(pk=analysis.pk).update(
        image_name=image_name, attempts=F("attempts") + 1, started=Coalesce("started", Now()))
    analysis.refresh_from_db()
    analysis.mark_failed(error)
    events.send_analysis_finished(analysis)
    logger.info("hashtags: analysis %s failed: %s", analysis.pk, error)
    return analysis


@functools.lru_cache(maxsize=4096)
def _canonical(text: str) -> str:
    """The model repeats the same few thousand tags: normalise each text once per process, not once
    per stored suggestion (raises InvalidTag, which is not cached)."""
    return canonical_name(text)


def _resolve_hashtags(texts: list[str]) -> dict[str, Hashtag]:
    """Model tag text → the vocabulary tag now in use (merges followed); unusable text is left out.
    Existing tags come from one query; only tags never seen before cost a query each."""
    names: dict[str, str] = {}
    for text in texts:
        try:
            names[text] = _canonical(text)
        except InvalidTag:
            continue
    wanted = {name.lower() for name in names.values()}
    found = {tag.name.lower(): tag for tag in
             Hashtag.objects.annotate(lower_name=Lower("name")).filter(lower_name__in=wanted)
             .select_related("merged_into")} if wanted else {}
    resolved: dict[str, Hashtag] = {}
    for text, name in names.items():
        tag = found.get(name.lower())
        if tag is None:
            tag, _ = Hashtag.objects.get_or_create_normalized(text)
            found[name.lower()] = tag
        resolved[text] = tag.resolve()
    return resolved


@transaction.atomic
def _store(analysis_pk: int, result, timings: dict, claim: str | None = None) -> ImageAnalysis | None:
    """Replace the pending suggestions with the new ones; keep decisions people already made (their
    score, rank and sources follow the new result). ``result`` is an mlcore CaptionResult whose
    hashtags are mlcore Hashtags or re-ranked :class:`~hashtags.reranker.RankedTag` s (or a
    :class:`StoredResult` being reused). Nothing is stored when another delivery took the claim
    over (this one outlived its time limit); ``claim=None`` stores regardless. Returns the stored
    analysis (None when nothing was stored)."""
    analysis = ImageAnalysis.objects.select_for_update().get(pk=analysis_pk)
    if claim is not None and analysis.claimed_by != claim:
        logger.warning("hashtags: analysis %s was claimed by %s meanwhile; not storing %s's result",
                       analysis.pk, analysis.claimed_by, claim)
        return None
    existing = list(analysis.suggestions.all())
    # Pending suggestions are only written here, under this row's lock: none now, none to delete.
    if any(s.state == SuggestionState.PENDING for s in existing):
        analysis.suggestions.filter(state=SuggestionState.PENDING).delete()
        existing = list(analysis.suggestions.all())
    decided = {s.hashtag_id: s for s in existing}
    auto_accept = hashtags_settings.AUTO_ACCEPT_SCORE
    tags = _resolve_hashtags([hashtag.tag for hashtag in result.hashtags])
    to_create: list[Suggestion] = []
    seen: set[int] = set()
    rank = 0
    for hashtag in result.hashtags:
        tag = tags.get(hashtag.tag)
        if tag is None or tag.pk in seen:
            continue
        seen.add(tag.pk)
        rank += 1
        score, sources = float(hashtag.score), list(hashtag.sources)
        if tag.pk in decided:
            Suggestion.objects.filter(pk=decided[tag.pk].pk).update(score=score, rank=rank, sources=sources)
            continue
        to_create.append(Suggestion(
            analysis=analysis, hashtag=tag, score=score, rank=rank, sources=sources,
            model_version=analysis.model_version,
        ))
    # One INSERT for all of them (PostgreSQL returns the keys, which auto-accept needs).
    Suggestion.objects.bulk_create(to_create)
    to_accept = [s for s in to_create if auto_accept is not None and s.score >= auto_accept]
    analysis.caption = result.caption
    confidence = result.caption_confidence
    analysis.caption_confidence = None if confidence is None else float(confidence)
    analysis.captions = list(result.captions)
    analysis.attention = result.attention_map
    analysis.timings = timings
    analysis.status, analysis.error, analysis.finished = "done", "", timezone.now()
    analysis.save()
    events.send_analysis_finished(analysis)
    for suggestion in to_accept:
        services.accept(suggestion, None, source=AcceptedTagSource.AUTO)
    return analysis


def mark_gave_up(app_label: str, model_name: str, pk, field_name: str, error: str) -> bool:
    """After the retry budget is spent: record the failure on the object's unfinished analysis (and
    answer its request). False when it could not be recorded — the database itself may be what is
    failing — so the caller must not let the work be forgotten."""
    try:
        model = apps.get_model(app_label, model_name)
        analyses = ImageAnalysis.objects.for_field(model, pk, field_name).filter(
            status__in=[AnalysisStatus.PENDING, AnalysisStatus.RUNNING])
        for analysis in analyses:
            analysis.mark_failed(error)
            events.send_analysis_finished(analysis)
        requests = AnalysisRequest.objects.for_field(model, pk, field_name)
        if analyses:
            requests.delete()  # answered by the recorded failure
        else:  # nothing to record it on: the request keeps the reason, and the reconciler tries later
            requests.update(last_error=error[:2000])
        return True
    except Exception:  # the database itself may be what is failing
        logger.exception("hashtags: could not record the failure of %s.%s %s", app_label, model_name, pk)
        return False
