"""Fixtures of the app's tests, shared with the demo's (project/tests/conftest.py imports them):
they work on whichever model the settings watch first (``tests.testapp.Post`` under tests.settings,
the demo's ``Post`` under project.test_settings)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.files.base import ContentFile

from mlcore.captioner import CaptionResult
from mlcore.extractor import ScoredTag

from hashtags.analysis import _store, run_analysis
from hashtags import watched
from hashtags.models import Hashtag, ImageAnalysis, Suggestion
from tests.hashtags import support

ROLES = ["anonymous", "other", "owner", "staff", "viewer", "moderator", "superuser"]
REVIEWERS = {"owner", "moderator", "superuser"}
CAPTION = "a dog runs on the grass"
SOURCES = {"dog": ["caption", "tag_head"], "grass": ["caption"], "frisbee": ["classifier"]}
VIEW_PERMISSIONS = ["view_suggestion", "view_hashtag", "view_imageanalysis", "view_modelversion", "view_acceptedtag"]
MODERATOR_PERMISSIONS = VIEW_PERMISSIONS + ["change_suggestion", "change_hashtag", "change_imageanalysis"]


def watched_model():
    """The first watched model of the settings: the host's image post."""
    return next(iter(watched.watched_models()))


def grant(user, *codenames: str):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames, content_type__app_label="hashtags"))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached per object


def as_person(api_client, person):
    """``api_client`` authenticated as ``person`` (None: anonymous)."""
    if person is not None:
        api_client.force_authenticate(person)
    return api_client


@pytest.fixture(autouse=True)
def isolated_test_state(settings, tmp_path):
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


@pytest.fixture(scope="session")
def attention_artifact(tmp_path_factory):
    """A tiny trained captioner whose decoder attends over the encoder's 7x7 map."""
    from mlcore.testing import make_tiny_artifact

    return make_tiny_artifact(tmp_path_factory.mktemp("attending-model"), attention=True)


@pytest.fixture
def attending(hashtags_config, attention_artifact):
    """Analyses run inline with the tiny attention model (as ``model`` does with the plain one)."""
    from hashtags.inference import reset_captioner

    hashtags_config(EXECUTOR="sync", MODEL_DIR=str(attention_artifact), MIN_SCORE=0.0)
    yield attention_artifact
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
    Post = watched_model()

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


@pytest.fixture
def people(django_user_model, user, other_user):
    make = django_user_model.objects.create_user
    return {
        "anonymous": None,
        "other": other_user,
        "owner": user,
        "staff": make("staff", password="pw-staff-123", is_staff=True),
        "viewer": grant(make("viewer", password="pw-viewer-123", is_staff=True), *VIEW_PERMISSIONS),
        "moderator": grant(make("moderator", password="pw-moderator-123", is_staff=True), *MODERATOR_PERMISSIONS),
        "superuser": django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123"),
    }


@pytest.fixture
def suggested(recording, make_post, user):
    """The owner's post with a finished analysis and three pending suggestions (rows as the
    analysis writes them; the model itself is tested elsewhere)."""
    post = make_post()
    analysis = ImageAnalysis.objects.create(
        content_type=ContentType.objects.get_for_model(watched_model()), object_id=str(post.pk), field_name="image",
        image_name=post.image.name, image_sha256="0" * 64, model_version="tiny-1", status="done",
        caption="a dog runs on the grass", captions=["a dog runs on the grass", "a dog on grass"],
        caption_confidence=0.8,
    )
    for rank, name in enumerate(["dog", "grass", "run"], 1):
        Suggestion.objects.create(analysis=analysis, hashtag=Hashtag.objects.create(name=name), score=0.9 - rank / 10,
                                  rank=rank, model_version="tiny-1")
    recording.clear()
    return post, analysis


@pytest.fixture
def admin_as(client, people):
    def login(role):
        if people[role] is not None:
            client.force_login(people[role])
        return client

    return login




# Why each tag is there (test_explanations.py and the demo's page tests) -------------------------

def explained_result(confidence: float, caption: str = CAPTION, sources: dict | None = None) -> CaptionResult:
    """An mlcore result as the fusing captioner returns it: sourced tags and a caption confidence."""
    sources = SOURCES if sources is None else sources
    tags = [ScoredTag(f"#{name}", round(0.9 - 0.2 * i, 2), tuple(found)) for i, (name, found) in enumerate(sources.items())]
    return CaptionResult(caption=caption, captions=[caption, "a dog on the grass"], log_probs=[-1.0, -2.0],
                        hashtags=tags, model_version="tiny", timings={"total_s": 0.1}, caption_confidence=confidence)


def analyse(post) -> ImageAnalysis:
    analysis = run_analysis(post._meta.app_label, post._meta.model_name, post.pk, "image")
    assert analysis.status == "done", analysis.error
    return analysis


@pytest.fixture
def explained(model, make_post):
    """``explained(confidence)``: a post the real model analysed, then re-stored with sources and
    that caption confidence; returns (post, analysis)."""

    def make(confidence: float, **kwargs) -> tuple:
        post = make_post(seed=1)
        analysis = analyse(post)
        _store(analysis.pk, explained_result(confidence, **kwargs), {"total_s": 0.1})
        analysis.refresh_from_db()
        return post, analysis

    return make
