"""Decisions on suggestions and accepted tags: the one place that keeps ``Suggestion`` states,
``AcceptedTag`` rows, usage counts and the django-taggit mirror consistent. Admin and API call these.
"""

from __future__ import annotations

import logging

from django.db import models, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from mlcore.text import clean_caption

from . import events
from .models import (
    ACCEPTED_STATES,
    AcceptedTag,
    AcceptedTagSource,
    Hashtag,
    ImageAnalysis,
    Suggestion,
    SuggestionState,
)
from .query import current_analyses
from .watched import content_type_for, taggit_manager

logger = logging.getLogger(__name__)

# Accepted tags ------------------------------------------------------------------------------------

def _object_for(analysis_or_obj):
    if isinstance(analysis_or_obj, ImageAnalysis):
        return analysis_or_obj.content_object
    return analysis_or_obj


def add_accepted_tag(obj: models.Model, hashtag: Hashtag, *, source: str, user=None) -> AcceptedTag:
    """Give ``obj`` the tag (idempotent); mirrors it into django-taggit when configured."""
    ct = content_type_for(obj)
    accepted, created = AcceptedTag.objects.get_or_create(
        content_type=ct, object_id=str(obj.pk), hashtag=hashtag,
        defaults={"source": source, "added_by": user if user and user.is_authenticated else None},
    )
    if created:
        Hashtag.objects.filter(pk=hashtag.pk).update(usage_count=F("usage_count") + 1)
        manager = taggit_manager(obj)
        if manager is not None:
            manager.add(hashtag.name)
        events.send_accepted_tags_changed(obj)
    return accepted


def remove_accepted_tag(obj: models.Model, hashtag: Hashtag) -> bool:
    """Take the tag off ``obj`` (and off its django-taggit field). True if it was there."""
    deleted, _ = AcceptedTag.objects.for_object(obj).filter(hashtag=hashtag).delete()
    if deleted:
        Hashtag.objects.filter(pk=hashtag.pk).update(usage_count=Greatest(F("usage_count") - 1, 0))
        manager = taggit_manager(obj)
        if manager is not None:
            manager.remove(hashtag.name)
        events.send_accepted_tags_changed(obj)
    return bool(deleted)


def _still_accepted_elsewhere(suggestion: Suggestion, hashtag: Hashtag) -> bool:
    """Another accepted suggestion of the same object carries the tag (e.g. from an older image)."""
    analysis = suggestion.analysis
    return (
        Suggestion.objects.filter(
            analysis__content_type_id=analysis.content_type_id,
            analysis__object_id=analysis.object_id,
            hashtag=hashtag,
            state__in=ACCEPTED_STATES,
        )
        .exclude(pk=suggestion.pk)
        .exists()
    )


def _untag(suggestion: Suggestion, hashtag: Hashtag, obj) -> None:
    if obj is not None and not _still_accepted_elsewhere(suggestion, hashtag):
        remove_accepted_tag(obj, hashtag)


def _decide(suggestion: Suggestion, state: str, user) -> None:
    suggestion.state = state
    suggestion.decided_by = user if user and user.is_authenticated else None
    suggestion.decided_at = timezone.now()


def _locked(suggestion: Suggestion) -> Suggestion:
    return Suggestion.objects.select_for_update().select_related("analysis", "hashtag").get(pk=suggestion.pk)


# Suggestion decisions -----------------------------------------------------------------------------

@transaction.atomic
def accept(suggestion: Suggestion, user=None, *, source: str = AcceptedTagSource.SUGGESTION) -> Suggestion:
    s = _locked(suggestion)
    obj = _object_for(s.analysis)
    if s.is_edited:
        # Accepting an edited suggestion as suggested: back to the original tag.
        _untag(s, s.hashtag, obj)
        s.undo_edit()
    if s.state != SuggestionState.ADDED:
        _decide(s, SuggestionState.ACCEPTED, user)
    s.save()
    if obj is not None:
        add_accepted_tag(obj, s.hashtag, source=source, user=user)
    return s


@transaction.atomic
def reject(suggestion: Suggestion, user=None) -> Suggestion:
    """Reject (or un-accept) a suggestion; an edit is undone, the tag leaves the object."""
    s = _locked(suggestion)
    obj = _object_for(s.analysis)
    if s.is_accepted:
        _untag(s, s.hashtag, obj)
    if s.is_edited:
        s.undo_edit()
    _decide(s, SuggestionState.REJECTED, user)
    s.save()
    return s


@transaction.atomic
def reset(suggestion: Suggestion, user=None) -> Suggestion:
    """Back to pending: undo a decision (an added tag is removed instead)."""
    s = _locked(suggestion)
    obj = _object_for(s.analysis)
    if s.is_accepted:
        _untag(s, s.hashtag, obj)
    if s.state == SuggestionState.ADDED:
        _decide(s, SuggestionState.REJECTED, user)
        s.save()
        return s
    if s.is_edited:
        s.undo_edit()
    s.state, s.decided_by, s.decided_at = SuggestionState.PENDING, None, None
    s.save()
    return s


@transaction.atomic
def edit(suggestion: Suggestion, text: str, user=None) -> Suggestion:
    """Replace the suggested tag with the person's tag (accepted); raises InvalidTag."""
    new, _ = Hashtag.objects.get_or_create_normalized(text)
    s = _locked(suggestion)
    obj = _object_for(s.analysis)
    original = s.replaced if s.is_edited else s.hashtag
    if s.is_accepted and s.hashtag_id != new.pk:
        _untag(s, s.hashtag, obj)
    if new.pk == original.pk and s.state != SuggestionState.ADDED:
        s.hashtag, s.replaced, s.replaced_text = original, None, ""
        _decide(s, SuggestionState.ACCEPTED, user)
        source = AcceptedTagSource.SUGGESTION
    elif s.state == SuggestionState.ADDED:
        s.hashtag = new
        _decide(s, SuggestionState.ADDED, user)
        source = AcceptedTagSource.ADDED
    else:
        s.replaced, s.replaced_text, s.hashtag = original, original.tag, new
        _decide(s, SuggestionState.EDITED, user)
        source = AcceptedTagSource.EDIT
    s.save()
    if obj is not None:
        add_accepted_tag(obj, new, source=source, user=user)
    return s


@transaction.atomic
def add_tag(obj: models.Model, text: str, user=None) -> tuple[AcceptedTag, Suggestion | None]:
    """A person tags the object themselves; recorded as an ``added`` suggestion when it has an
    analysis (feedback for training) and always as an accepted tag. Raises InvalidTag."""
    hashtag, _ = Hashtag.objects.get_or_create_normalized(text)
    analyses = current_analyses(obj)
    analysis = analyses[0] if analyses else None
    suggestion = None
    if analysis is not None:
        existing = analysis.suggestions.filter(hashtag=hashtag).first()
        if existing is not None:
            if not existing.is_accepted:
                suggestion = accept(existing, user)
            else:
                suggestion = existing
        else:
            suggestion = Suggestion(analysis=analysis, hashtag=hashtag, state=SuggestionState.ADDED)
            _decide(suggestion, SuggestionState.ADDED, user)
            suggestion.save()
    accepted = add_accepted_tag(obj, hashtag, source=AcceptedTagSource.ADDED, user=user)
    return accepted, suggestion


@transaction.atomic
def remove_tag(obj: models.Model, hashtag: Hashtag, user=None) -> bool:
    """Take an accepted tag off the object; the suggestions that carried it become rejected."""
    ct = content_type_for(obj)
    carriers = Suggestion.objects.select_for_update().filter(
        analysis__content_type=ct, analysis__object_id=str(obj.pk), hashtag=hashtag, state__in=ACCEPTED_STATES
    )
    for s in carriers:
        if s.is_edited:
            s.undo_edit()
        _decide(s, SuggestionState.REJECTED, user)
        s.save()
    return remove_accepted_tag(obj, hashtag)


# Caption corrections -----------------------------------------------------------------------------

CAPTION_MAX_LENGTH = 500


class InvalidCaption(ValueError):
    """Text that cannot be a caption (empty, no words, too long)."""


@transaction.atomic
def correct_caption(analysis: ImageAnalysis, text: str | None, user=None) -> ImageAnalysis:
    """Store a person's correction of the generated caption (gold data for the next model; see
    :mod:`hashtags.export`). ``text=None`` withdraws the correction. Raises InvalidCaption."""
    analysis = ImageAnalysis.objects.select_for_update().get(pk=analysis.pk)
    if text is None:
        analysis.corrected_caption, analysis.corrected_by, analysis.corrected_at = None, None, None
    else:
        text = " ".join(str(text).split())  # one line: the training token file is line-based
        if not text:
            raise InvalidCaption("the caption is empty")
        if len(text) > CAPTION_MAX_LENGTH:
            raise InvalidCaption(f"the caption is too long: {len(text)} characters (limit {CAPTION_MAX_LENGTH})")
        if not clean_caption(text):
            raise InvalidCaption("the caption needs at least one word")
        analysis.corrected_caption = text
        analysis.corrected_by = user if user and user.is_authenticated else None
        analysis.corrected_at = timezone.now()
    analysis.save(update_fields=["corrected_caption", "corrected_by", "corrected_at"])
    return analysis


# Hashtag merge ----------------------------------------------------------------------------------

@transaction.atomic
def merge_hashtags(source: Hashtag, target: Hashtag) -> Hashtag:
    """Move every reference of ``source`` to ``target``; ``source`` stays as an alias."""
    target = target.resolve()
    if source.pk == target.pk:
        raise ValueError(f"cannot merge {source} into itself")
    Suggestion.objects.filter(hashtag=source).update(hashtag=target)
    Suggestion.objects.filter(replaced=source).update(replaced=target)
    # An edit that now maps a tag onto itself is a plain acceptance.
    Suggestion.objects.filter(state=SuggestionState.EDITED, replaced=F("hashtag")).update(
        state=SuggestionState.ACCEPTED, replaced=None, replaced_text=""
    )
    for accepted in AcceptedTag.objects.filter(hashtag=source).select_related("content_type"):
        obj = accepted.content_object
        duplicate = AcceptedTag.objects.filter(
            content_type_id=accepted.content_type_id, object_id=accepted.object_id, hashtag=target
        ).exists()
        if duplicate:
            accepted.delete()
        else:
            accepted.hashtag = target
            accepted.save(update_fields=["hashtag"])
        manager = taggit_manager(obj)
        if manager is not None:
            manager.remove(source.name)
            manager.add(target.name)
        events.send_accepted_tags_changed(obj)
    Hashtag.objects.filter(merged_into=source).update(merged_into=target)
    source.merged_into = target
    source.usage_count = 0
    source.save(update_fields=["merged_into", "usage_count"])
    target.refresh_usage_count()
    logger.info("merged hashtag %s into %s", source, target)
    return target
