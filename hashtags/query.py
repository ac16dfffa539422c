"""Query watched objects by their accepted tags.

    from hashtags.query import filter_by_tag
    filter_by_tag(Post.objects.all(), "#Dog")      # posts carrying the accepted tag "dog"

or give the model a manager built from :class:`HashtagQuerySetMixin`::

    class PostQuerySet(HashtagQuerySetMixin, models.QuerySet): ...
    objects = PostQuerySet.as_manager()
    Post.objects.tagged("dog")
    Post.objects.with_hashtags()  # prefetches accepted tags into post.accepted_hashtags
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Cast

from .models import AcceptedTag, Hashtag
from .registry import content_type_for
from .tags import InvalidTag, canonical_name


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
