"""The host model the app's tests watch (``testapp.Post.image``): an owner, an image, a taggit
field, the app's queryset mixin; nothing of the demo site."""

from django.conf import settings
from django.db import models
from taggit.managers import TaggableManager

from hashtags.query import HashtagQuerySetMixin
from hashtags.validators import validate_image_upload


class PostQuerySet(HashtagQuerySetMixin, models.QuerySet):
    pass


class Post(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts")
    image = models.ImageField(upload_to="posts/", validators=[validate_image_upload])
    text = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    tags = TaggableManager(blank=True)

    objects = PostQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"Post {self.pk}"
