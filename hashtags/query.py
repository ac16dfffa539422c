"""The read side: the one answer to "which analysis is current?", "the suggestions of these
analyses", "trending tags" and "objects with tag X". The API, the services and the demo ask here.

    from hashtags.query import current_analysis, filter_by_tag, trending
    current_analysis(post)                          # what the post's page and API show
    filter_by_tag(Post.objects.all(), "#Dog")      # posts carrying the accepted tag "dog"
    trending(days=7, limit=20)                     # [{"name": "dog", "count": 3}, ...]


or give the model a manager built from :class:`HashtagQuerySetMixin`::

    class PostQuerySet(HashtagQuerySetMixin, models.QuerySet): ...
    objects = PostQuerySet.as_manager()
    Post.objects.tagged("dog")
    Post.objects.with_hashtags()  # prefetches accepted tags into post.accepted_hashtags
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Count
from django.db.models.functions import Cast
from django.utils import timezone

from .models import AcceptedTag, Hashtag, ImageAnalysis, Suggestion
from .watched import content_type_for, watched_fields
from .tags import InvalidTag, canonical_name


def current_analysis(obj: models.Model, field: str | None = None) -> ImageAnalysis | None:
    """The analysis of ``field``'s current image (default: the first watched field), newest first.

    While the current image has no analysis yet, the field's newest one: the suggestions people
    see until the new ones arrive."""
    field = field or watched_fields(type(obj))[0]
    analyses = ImageAnalysis.objects.for_object(obj).filter(field_name=field)
    name = getattr(obj, field).name
    return (analyses.filter(image_name=name).first() if name else None) or analyses.first()


def current_analyses(obj: models.Model) -> list[ImageAnalysis]:
    """:func:`current_analysis` of each watched field that has one, in the fields' order."""
    analyses = (current_analysis(obj, field) for field in watched_fields(type(obj)))
    return [analysis for analysis in analyses if analysis is not None]


def suggestions_of(analyses) -> list[Suggestion]:
    """The suggestions of ``analyses`` in rank order, with what their serializers read."""
    return list(
        Suggestion.objects.filter(analysis__in=analyses)
        .select_related("hashtag", "replaced", "decided_by", "analysis__content_type")
        .order_by("analysis_id", "rank", "pk")
    )


def trending(days: int, limit: int) -> list[dict]:
    """``[{"name", "count"}]``: tags by accepted uses in the last ``days`` days, most used first
    (merged-away tags left out)."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        AcceptedTag.objects.filter(created__gte=since, hashtag__merged_into__isnull=True)
        .values("hashtag__name")
        .annotate(count=Count("id"))
        .order_by("-count", "hashtag__name")[:limit]
    )
    return [{"name": row["hashtag__name"], "count": row["count"]} for row in rows]


def _object_id_cast(model: type[models.Model]):
    """``AcceptedTag.object_id`` (text) cast to the model's primary-key type for ``pk__in``."""
    pk = model._meta.pk
    target = getattr(pk, "target_field", pk)
    if isinstance(target, (models.AutoField, models.BigAutoField, models.SmallAutoField, models.IntegerField)):
        return Cast("object_id", output_field=models.BigIntegerField())
    if isinstance(target, models.UUIDField):
        return Cast("object_id", output_field=models.UUIDField())
    return models.F("object_id")


def accepted_ids(model: type[models.Model], hashtags) -> models.QuerySet:
    """Subquery of primary keys of ``model`` objects carrying any of ``hashtags``."""
    return (
        AcceptedTag.objects.filter(content_type=content_type_for(model), hashtag__in=hashtags)
        .annotate(object_pk=_object_id_cast(model))
        .values("object_pk")
    )


def filter_by_tag(queryset: models.QuerySet, tag: str) -> models.QuerySet:
    """Objects of ``queryset`` with the accepted tag ``tag`` (``"dog"``, ``"#Dog"``; merges followed).

    An unusable tag (empty, punctuation) matches nothing."""
    try:
        name = canonical_name(tag)
    except InvalidTag:
        return queryset.none()
    hashtags = Hashtag.objects.filter(name__iexact=name)
    resolved = [h.resolve().pk for h in hashtags]
    if not resolved:
        return queryset.none()
    return queryset.filter(pk__in=accepted_ids(queryset.model, resolved))


def tags_for(obj: models.Model) -> list[Hashtag]:
    """Accepted hashtags of one object, alphabetically."""
    return list(
        Hashtag.objects.filter(accepted__in=AcceptedTag.objects.for_object(obj)).order_by("name")
    )


def tags_for_many(objects: list[models.Model]) -> dict[str, list[Hashtag]]:
    """``{str(pk): [Hashtag]}`` for objects of one model, in one query."""
    if not objects:
        return {}
    ct = content_type_for(objects[0])
    rows = (
        AcceptedTag.objects.filter(content_type=ct, object_id__in=[str(o.pk) for o in objects])
        .select_related("hashtag")
        .order_by("hashtag__name")
    )
    result: dict[str, list[Hashtag]] = {}
    for row in rows:
        result.setdefault(row.object_id, []).append(row.hashtag)
    return result


class HashtagQuerySetMixin:
    """Mix into a watched model's QuerySet: ``.tagged("dog")`` and ``.with_hashtags()``."""

    def tagged(self, tag: str):
        return filter_by_tag(self, tag)

    def with_hashtags(self):
        """Evaluate and attach ``accepted_hashtags`` (list of Hashtag) to each object."""
        clone = self._chain()
        clone._prefetch_hashtags = True
        return clone

    def _fetch_all(self):
        super()._fetch_all()
        if getattr(self, "_prefetch_hashtags", False) and self._result_cache:
            objects = [o for o in self._result_cache if isinstance(o, models.Model)]
            mapping = tags_for_many(objects)
            for obj in objects:
                obj.accepted_hashtags = mapping.get(str(obj.pk), [])

    def _clone(self):
        clone = super()._clone()
        clone._prefetch_hashtags = getattr(self, "_prefetch_hashtags", False)
        return clone
