"""Analyse one watched object's image and store the suggestions — the body of the Celery task,
also run by the in-process executor. Plain Django; no Celery here.

Idempotent: the analysis row is unique per (object, field, image sha256, model version); a done
analysis is never redone unless forced, and suggestions are replaced in one transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time

from django.apps import apps
from django.db import InterfaceError, OperationalError, transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from . import services
from .conf import hashtags_settings
from .inference import get_captioner, suggest
from .models import AcceptedTagSource, Hashtag, HashtagOptOut, ImageAnalysis, Suggestion, SuggestionState
from .registry import content_type_for, owner_id
from .reranker import apply_to_suggestion as apply_reranker
from .tags import InvalidTag

logger = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"  # model_version of analyses that failed because no model could load

# Worth retrying: database hiccups and storage I/O. FileNotFoundError is handled as a failure.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, OSError)


def _image_error(message: str) -> Exception:
    from mlcore.images import ImageError

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


def run_analysis(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False) -> ImageAnalysis | None:
    """Analyse ``app_label.model_name(pk).field_name``; returns the analysis (None when skipped).

    Raises only transient errors (worth a retry) and configuration errors (ArtifactError)."""
    from mlcore.images import ImageError

    model = apps.get_model(app_label, model_name)
    obj = model._default_manager.filter(pk=pk).first()
    if obj is None:
        logger.info("hashtags: %s.%s %s is gone; nothing to analyse", app_label, model_name, pk)
        return None
    if HashtagOptOut.covers(obj):  # forced or not: the owner's choice wins over a moderator's re-run
        logger.info("hashtags: owner of %s.%s %s opted out; not analysed", app_label, model_name, pk)
        return None
    fieldfile = getattr(obj, field_name)
    if not fieldfile:
        return None

    from mlcore.artifact import ArtifactError

    try:
        captioner = get_captioner(refresh=True)  # task start: pick up a promoted model version
    except ArtifactError as exc:  # a deployment problem: say so on the post instead of vanishing
        logger.error("hashtags: model unavailable: %s", exc)
        key = {"content_type": content_type_for(obj), "object_id": str(obj.pk), "field_name": field_name,
               "model_version": UNAVAILABLE}
        return _record_unreadable(key, fieldfile.name, f"the hashtag model is unavailable: {exc}")
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
        return _record_unreadable(key, fieldfile.name, f"file not found: {fieldfile.name}")
    except ImageError as exc:
        return _record_unreadable(key, fieldfile.name, str(exc))
    read_seconds = time.perf_counter() - read_started

    analysis, created = ImageAnalysis.objects.get_or_create(
        **key, image_sha256=hashlib.sha256(data).hexdigest(), defaults={"image_name": fieldfile.name}
    )
    if not created and not force and analysis.status in ("done", "failed"):
        return analysis  # this content was already analysed by this model version

    analysis.status, analysis.started, analysis.finished = "running", timezone.now(), None
    analysis.error, analysis.image_name = "", fieldfile.name
    analysis.attempts += 1
    analysis.save(update_fields=["status", "started", "finished", "error", "image_name", "attempts"])

    result = suggest(data, captioner)
    if isinstance(result, ImageError):
        analysis.mark_failed(str(result))
        logger.info("hashtags: analysis %s failed: %s", analysis.pk, result)
        return analysis
    result = apply_reranker(result, owner_id(obj))  # unchanged unless a re-ranker was trained
    timings = dict(result.timings)
    timings["read_s"] = round(read_seconds, 4)
    _store(analysis.pk, result, timings)
    analysis.refresh_from_db()
    return analysis


def _record_unreadable(key: dict, image_name: str, error: str) -> ImageAnalysis:
    """A failed analysis for a file we could not read (no content hash)."""
    analysis, _ = ImageAnalysis.objects.get_or_create(**key, image_sha256="", defaults={"image_name": image_name})
    analysis.image_name = image_name
    analysis.attempts += 1
    analysis.started = analysis.started or timezone.now()
    analysis.save(update_fields=["image_name", "attempts", "started"])
    analysis.mark_failed(error)
    logger.info("hashtags: analysis %s failed: %s", analysis.pk, error)
    return analysis


@transaction.atomic
def _store(analysis_pk: int, result, timings: dict) -> None:
    """Replace the pending suggestions with the new ones; keep decisions people already made (their
    score, rank and sources follow the new result). ``result`` is an mlcore Suggestion whose
    hashtags are mlcore Hashtags or re-ranked :class:`~hashtags.reranker.RankedTag` s."""
    analysis = ImageAnalysis.objects.select_for_update().get(pk=analysis_pk)
    analysis.suggestions.filter(state=SuggestionState.PENDING).delete()
    decided = {s.hashtag_id: s for s in analysis.suggestions.all()}
    auto_accept = hashtags_settings.AUTO_ACCEPT_SCORE
    to_accept: list[Suggestion] = []
    seen: set[int] = set()
    rank = 0
    for hashtag in result.hashtags:
        try:
            tag, _ = Hashtag.objects.get_or_create_normalized(hashtag.tag)
        except InvalidTag:
            continue
        if tag.pk in seen:
            continue
        seen.add(tag.pk)
        rank += 1
        score, sources = float(hashtag.score), list(hashtag.sources)
        if tag.pk in decided:
            Suggestion.objects.filter(pk=decided[tag.pk].pk).update(score=score, rank=rank, sources=sources)
            continue
        suggestion = Suggestion.objects.create(
            analysis=analysis, hashtag=tag, score=score, rank=rank, sources=sources,
            model_version=analysis.model_version,
        )
        if auto_accept is not None and score >= auto_accept:
            to_accept.append(suggestion)
    analysis.caption = result.caption
    analysis.caption_confidence = float(result.caption_confidence)
    analysis.captions = list(result.captions)
    analysis.timings = timings
    analysis.status, analysis.error, analysis.finished = "done", "", timezone.now()
    analysis.save()
    for suggestion in to_accept:
        services.accept(suggestion, None, source=AcceptedTagSource.AUTO)


def mark_gave_up(app_label: str, model_name: str, pk, field_name: str, error: str) -> None:
    """After the last retry: record the failure on the object's newest unfinished analysis."""
    try:
        model = apps.get_model(app_label, model_name)
        analysis = (
            ImageAnalysis.objects.filter(
                content_type=content_type_for(model), object_id=str(pk), field_name=field_name,
                status__in=["pending", "running"],
            ).first()
        )
        if analysis is not None:
            analysis.mark_failed(error)
    except Exception:  # the database itself may be what is failing
        logger.exception("hashtags: could not record the failure of %s.%s %s", app_label, model_name, pk)
