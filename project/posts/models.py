"""The demo's image post: what a platform using the hashtags app typically has."""

from django.conf import settings
from django.db import models
from django.urls import reverse
from taggit.managers import TaggableManager

from hashtags.query import HashtagQuerySetMixin
from hashtags.validators import validate_image_upload


class PostQuerySet(HashtagQuerySetMixin, models.QuerySet):
    """``Post.objects.tagged("dog")``; ``.with_hashtags()`` attaches ``accepted_hashtags``."""


class Post(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts")
    image = models.ImageField(upload_to="posts/%Y/%m/", validators=[validate_image_upload])
    text = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    tags = TaggableManager(blank=True)

    objects = PostQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"Post {self.pk} by {self.owner}"

    def get_absolute_url(self) -> str:
        return reverse("posts:detail", args=[self.pk])
