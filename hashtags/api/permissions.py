"""Who may review an object's tags (its owner via ``OWNER_FIELD``, or a moderator holding
``hashtags.change_suggestion``) and who may switch the serving model (``hashtags.promote_modelversion``).
The rules themselves live in :mod:`hashtags.watched`; these classes only hand them to DRF."""

from rest_framework.permissions import BasePermission

from ..conf import hashtags_settings
from ..watched import can_promote, can_review


class CanReviewObject(BasePermission):
    message = "Only the owner of this post or a moderator can review its hashtags."

    def has_object_permission(self, request, view, obj) -> bool:
        return can_review(request.user, obj)


class CanReviewSuggestion(BasePermission):
    """A suggestion is reviewed by whoever may review the object it was made for."""

    message = CanReviewObject.message

    def has_object_permission(self, request, view, obj) -> bool:
        return can_review(request.user, obj.analysis.content_object)


class CanPromoteModel(BasePermission):
    message = "Switching the serving model needs the hashtags.promote_modelversion permission."

    def has_permission(self, request, view) -> bool:
        return can_promote(request.user)


def read_permissions():
    return [cls() for cls in hashtags_settings.READ_PERMISSION_CLASSES]


def tag_image_permissions():
    return [cls() for cls in hashtags_settings.TAG_IMAGE_PERMISSION_CLASSES]
