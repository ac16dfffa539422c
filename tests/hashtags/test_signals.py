"""post_save → enqueue after commit, once per image content; raw loads, opt-outs, AUTO_TAG."""

import json

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from hashtags.models import HashtagOptOut
from tests.hashtags import support

pytestmark = pytest.mark.django_db


def test_new_post_enqueues_once_after_commit(recording, make_post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        post = make_post()
        post.text = "edited caption, same image"
        post.save()
        assert recording == []  # nothing is sent before the transaction commits
    assert len(callbacks) == 1
    callbacks[0]()
    assert recording == [("testapp", "post", post.pk, "image", False)]


def test_only_a_changed_image_enqueues(recording, make_post, django_capture_on_commit_callbacks):
    post = make_post()
    from tests.testapp.models import Post

    loaded = Post.objects.get(pk=post.pk)
    with django_capture_on_commit_callbacks(execute=True):
        loaded.text = "new text"
        loaded.save()
    assert recording == []
    with django_capture_on_commit_callbacks(execute=True):
        loaded.image.save("other.jpg", ContentFile(support.jpeg_bytes(seed=3)), save=False)
        loaded.save()
        loaded.save()
    assert recording == [("testapp", "post", post.pk, "image", False)]
    # a deferred image field that was never loaded has not changed
    recording.clear()
    with django_capture_on_commit_callbacks(execute=True):
        Post.objects.only("id", "text").get(pk=post.pk).save()
    assert recording == []


def test_raw_fixture_loads_never_enqueue(recording, user, tmp_path, django_capture_on_commit_callbacks):
    fixture = tmp_path / "posts.json"
    fixture.write_text(json.dumps([{
        "model": "testapp.post", "pk": 42,
        "fields": {"owner": user.pk, "image": "posts/fixture.jpg", "text": "", "created": "2024-01-01T00:00:00Z"},
    }]))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("loaddata", str(fixture), verbosity=0)
    assert callbacks == [] and recording == []


def test_opted_out_owner_is_never_analysed(recording, make_post, user, django_capture_on_commit_callbacks):
    HashtagOptOut.objects.create(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        make_post()
    assert recording == []


def test_auto_tag_off(recording, hashtags_config, make_post, django_capture_on_commit_callbacks):
    hashtags_config(AUTO_TAG=False)
    with django_capture_on_commit_callbacks(execute=True):
        make_post()
    assert recording == []


def test_unwatched_model_is_ignored(recording, hashtags_config, make_post, django_capture_on_commit_callbacks):
    hashtags_config(WATCH=[])
    with django_capture_on_commit_callbacks(execute=True):
        make_post()
    assert recording == []
