"""Which models/fields are watched, who owns an object, who may review it or switch the model.

The permission model (README "Security"): Django permissions, never ``is_staff`` alone. Staff status
only opens the admin; what a staff account may do there is what its permissions say.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from .conf import hashtags_settings


_cache: dict[str, dict] = {}

#: Reviewing any object's tags (moderators): accept, reject, edit, add, remove, correct captions, re-run.
REVIEW_PERMISSION = "hashtags.change_suggestion"
#: Changing which model version serves (promote, roll back).
PROMOTE_PERMISSION = "hashtags.promote_modelversion"


def clear_cache(**kwargs) -> None:
    _cache.clear()


def watched_models() -> dict[type[models.Model], list[str]]:
    """``{model class: [image field names]}`` from ``HASHTAGS["WATCH"]`` (cached per settings)."""
    if "watched" not in _cache:
        _cache["watched"] = _load_watched()
    return _cache["watched"]


def _load_watched() -> dict[type[models.Model], list[str]]:
    result: dict[type[models.Model], list[str]] = {}
    for app_label, model_name, field_name in hashtags_settings.watched():
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError as exc:
            raise ImproperlyConfigured(f"HASHTAGS['WATCH']: no model {app_label}.{model_name}") from exc
        try:
            field = model._meta.get_field(field_name)
        except Exception as exc:
            raise ImproperlyConfigured(
                f"HASHTAGS['WATCH']: {app_label}.{model_name} has no field {field_name!r}"
            ) from exc
        if not isinstance(field, models.FileField):
            raise ImproperlyConfigured(
                f"HASHTAGS['WATCH']: {app_label}.{model_name}.{field_name} is not an ImageField/FileField"
            )
        result.setdefault(model, []).append(field_name)
    return result


def watched_fields(model: type[models.Model]) -> list[str]:
    return watched_models().get(model, [])


def is_watched(model: type[models.Model]) -> bool:
    return model in watched_models()


def content_type_key(model_or_obj) -> str:
    """``"posts.post"`` — how the API names a watched model."""
    return f"{model_or_obj._meta.app_label}.{model_or_obj._meta.model_name}"


def get_watched_model(key: str) -> type[models.Model] | None:
    """The watched model for ``"app_label.model"`` (case-insensitive), else None."""
    for model in watched_models():
        if content_type_key(model) == key.lower():
            return model
    return None


def content_type_for(model_or_obj) -> ContentType:
    return ContentType.objects.get_for_model(model_or_obj, for_concrete_model=False)


def owner_id(obj: models.Model):
    """The owner's user id via ``OWNER_FIELD`` (None when the model has no such field)."""
    field = hashtags_settings.OWNER_FIELD
    if not field:
        return None
    if hasattr(obj, f"{field}_id"):
        return getattr(obj, f"{field}_id")
    owner = getattr(obj, field, None)
    return getattr(owner, "pk", None)


def can_review(user, obj: models.Model) -> bool:
    """The object's owner, or a moderator (``REVIEW_PERMISSION``; superusers have it). Staff
    status alone is not enough: a staff account without the permission is an ordinary user here.
    The API, the admin's actions and the demo pages all ask this."""
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if user.has_perm(REVIEW_PERMISSION):
        return True
    oid = owner_id(obj)
    return oid is not None and oid == user.pk


def can_promote(user) -> bool:
    """May switch the serving model version (``PROMOTE_PERMISSION``)."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(PROMOTE_PERMISSION))


def taggit_manager(obj: models.Model):
    """The django-taggit manager named by ``TAGGIT_FIELD`` on ``obj``, if it has one."""
    name = hashtags_settings.TAGGIT_FIELD
    if not name or obj is None:
        return None
    try:
        # taggit is optional, and taggit.managers imports taggit's models, not loaded yet while
        # hashtags.models (which imports this module) loads.
        from taggit.managers import TaggableManager  # lazy: optional taggit; Django app loading
    except ImportError:  # taggit is optional
        return None
    try:
        field = obj._meta.get_field(name)
    except Exception:
        return None
    if not isinstance(field, TaggableManager):
        return None
    return getattr(obj, name)
