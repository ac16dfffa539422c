"""Fixtures of the hashtags tests."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile

from tests.hashtags import support


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Own MEDIA_ROOT, DATA_DIR (the re-ranker's home), recorded jobs and throttle counters per
    test; no model cached across tests."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.HASHTAGS = {**settings.HASHTAGS, "DATA_DIR": str(tmp_path / "data")}
    support.recorded.clear()
    cache.clear()
    yield
    support.recorded.clear()


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory):
    """A real, tiny trained captioner artifact (mlcore.testing), made once per test session."""
    from mlcore.testing import make_tiny_artifact

    return make_tiny_artifact(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def hashtags_config(settings):
    """Update ``settings.HASHTAGS`` in place: ``hashtags_config(EXECUTOR="sync")``."""

    def update(**values):
        settings.HASHTAGS = {**settings.HASHTAGS, **values}
        return settings.HASHTAGS

    return update


@pytest.fixture
def recording(hashtags_config):
    """Jobs are recorded instead of run (the executor extension point)."""
    hashtags_config(EXECUTOR="tests.hashtags.support.record")
    return support.recorded


@pytest.fixture
def model(hashtags_config, tiny_artifact):
    """Analyses run inline with the tiny real model. It was trained on synthetic features, so on
    photos its captions are short and unsure: keep every tag it finds (MIN_SCORE 0)."""
    from hashtags.inference import reset_captioner

    hashtags_config(EXECUTOR="sync", MODEL_DIR=str(tiny_artifact), MIN_SCORE=0.0)
    yield tiny_artifact
    reset_captioner()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("owner", password="pw-owner-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("other", password="pw-other-123")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("mod", password="pw-mod-123", is_staff=True)


@pytest.fixture
def make_post(user):
    """Create a Post with a photo-like JPEG (the signal fires as in production)."""
    from project.posts.models import Post

    def make(owner=None, data: bytes | None = None, name: str = "photo.jpg", seed: int = 0, **fields):
        post = Post(owner=owner or user, **fields)
        post.image.save(name, ContentFile(data if data is not None else support.jpeg_bytes(seed=seed)), save=False)
        post.save()
        return post

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
