"""The host site's signals (hashtags.events): sent once per change, after commit, never for a
rollback; and ``analysis_finished`` from a real Celery worker for a real upload."""

from __future__ import annotations

import hashlib
import json
import logging
import time

import pytest
from django.core.files.base import ContentFile
from django.db import transaction

from hashtags import events, services, versions
from hashtags.analysis import run_analysis
from hashtags.inference import reset_captioner
from hashtags.models import AcceptedTag, Hashtag, ImageAnalysis, ModelVersion, Suggestion
from hashtags.watched import content_type_for
from tests.testapp.models import Post
from tests.hashtags import support
from tests.hashtags.workers import REDIS_URL, redis_reachable, start_worker, stop, wait_for_log, worker_env

pytestmark = pytest.mark.django_db(transaction=True)  # real commits and rollbacks


class Received:
    """What one signal delivered to a receiver, in order."""

    def __init__(self, signal):
        self.calls: list[dict] = []
        self.signal = signal
        signal.connect(self, weak=False)

    def __call__(self, sender, signal, **kwargs):
        self.calls.append({"sender": sender, **kwargs})

    def close(self):
        self.signal.disconnect(self)


@pytest.fixture
def received():
    opened: list[Received] = []

    def connect(signal):
        opened.append(Received(signal))
        return opened[-1]

    yield connect
    for receiver in opened:
        receiver.close()


def analysed(post, tags=("dog", "grass", "ball")) -> ImageAnalysis:
    """A done analysis with pending suggestions, as the captioner stores it (the model runs in the
    analysis tests)."""
    post.image.open("rb")
    analysis = ImageAnalysis.objects.create(
        content_type=content_type_for(post), object_id=str(post.pk), field_name="image", image_name=post.image.name,
        image_sha256=hashlib.sha256(post.image.read()).hexdigest(), model_version="tiny-test", status="done",
        caption="a dog on the grass", captions=["a dog on the grass"],
    )
    for rank, name in enumerate(tags, start=1):
        Suggestion.objects.create(analysis=analysis, hashtag=Hashtag.objects.get_or_create_normalized(name)[0],
                                  rank=rank, score=1 - rank / 10, model_version="tiny-test")
    return analysis


def suggestion(analysis, name) -> Suggestion:
    return analysis.suggestions.get(hashtag__name=name)


# analysis_finished ----------------------------------------------------------------------------------

def test_analysis_finished_once_with_the_stored_suggestions(model, make_post, received):
    finished = received(events.analysis_finished)
    post = make_post()  # the sync executor analyses it after the save commits
    analysis = ImageAnalysis.objects.for_object(post).get()
    assert analysis.status == "done"
    assert len(finished.calls) == 1
    call = finished.calls[0]
    assert call["sender"] is Post and call["instance"] == post and call["analysis"] == analysis
    assert call["ok"] is True and call["error"] == ""
    assert [s.pk for s in call["suggestions"]] == list(analysis.suggestions.order_by("rank", "pk").values_list("pk", flat=True))
    assert call["suggestions"]

    run_analysis("testapp", "post", post.pk, "image")  # already done: nothing finishes again
    assert len(finished.calls) == 1
    run_analysis("testapp", "post", post.pk, "image", force=True)  # a forced re-run finishes again
    assert len(finished.calls) == 2


def test_analysis_finished_reports_a_failure(model, make_post, received):
    finished = received(events.analysis_finished)
    post = make_post(data=b"this is not an image", name="broken.jpg")
    analysis = ImageAnalysis.objects.for_object(post).get()
    assert analysis.status == "failed"
    assert len(finished.calls) == 1
    call = finished.calls[0]
    assert call["ok"] is False and call["error"] == analysis.error and analysis.error
    assert call["suggestions"] == [] and call["instance"] == post


def test_analysis_finished_waits_for_the_commit_and_skips_a_rollback(model, recording, make_post, received):
    post = make_post()  # recorded, not analysed
    finished = received(events.analysis_finished)
    with transaction.atomic():
        run_analysis("testapp", "post", post.pk, "image")
        assert finished.calls == []  # stored, but not committed yet
    assert len(finished.calls) == 1 and finished.calls[0]["ok"] is True

    other = make_post(seed=3)
    with pytest.raises(RuntimeError), transaction.atomic():
        run_analysis("testapp", "post", other.pk, "image")
        raise RuntimeError("the caller's transaction fails")
    assert len(finished.calls) == 1
    assert not ImageAnalysis.objects.for_object(other).exists()


# accepted_tags_changed ------------------------------------------------------------------------------

def test_accepting_sends_the_tags_now_once_per_transaction(recording, make_post, received, user):
    post = make_post()
    analysis = analysed(post)
    changed = received(events.accepted_tags_changed)
    with transaction.atomic():
        services.accept(suggestion(analysis, "dog"), user)
        services.edit(suggestion(analysis, "grass"), "lawn", user)
        services.add_tag(post, "sunny", user)
        assert changed.calls == []
    assert len(changed.calls) == 1
    call = changed.calls[0]
    assert call["sender"] is Post and call["instance"] == post and call["tags"] == ["dog", "lawn", "sunny"]

    services.reject(suggestion(analysis, "dog"), user)  # autocommit: sent at once
    assert [c["tags"] for c in changed.calls[1:]] == [["lawn", "sunny"]]
    services.reject(suggestion(analysis, "ball"), user)  # was never accepted: the tags did not change
    assert len(changed.calls) == 2


def test_no_event_for_a_rolled_back_decision(recording, make_post, received, user):
    post = make_post()
    analysis = analysed(post)
    changed = received(events.accepted_tags_changed)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.accept(suggestion(analysis, "dog"), user)
        raise RuntimeError("rolled back")
    assert changed.calls == [] and not AcceptedTag.objects.for_object(post).exists()


def test_a_rolled_back_savepoint_drops_only_its_own_change(recording, make_post, received, user):
    post = make_post()
    analysis = analysed(post)
    changed = received(events.accepted_tags_changed)
    with transaction.atomic():
        try:
            with transaction.atomic():  # the first change, in a savepoint that rolls back
                services.accept(suggestion(analysis, "dog"), user)
                raise RuntimeError("savepoint rolled back")
        except RuntimeError:
            pass
        services.accept(suggestion(analysis, "ball"), user)  # registers again: the first send went
    assert [c["tags"] for c in changed.calls] == [["ball"]]


def test_merging_hashtags_tells_every_object_that_carried_the_old_tag(recording, make_post, received, user):
    first, second = make_post(seed=1), make_post(seed=2)
    for post in (first, second):
        services.add_tag(post, "puppy", user)
    changed = received(events.accepted_tags_changed)
    services.merge_hashtags(Hashtag.objects.get(name="puppy"), Hashtag.objects.get_or_create_normalized("dog")[0])
    assert sorted((c["instance"].pk, tuple(c["tags"])) for c in changed.calls) == [
        (first.pk, ("dog",)), (second.pk, ("dog",))]


def test_a_failing_receiver_is_logged_and_changes_nothing(recording, make_post, received, user, caplog):
    post = make_post()

    def broken(sender, **kwargs):
        raise ValueError("the host site's receiver is broken")

    events.accepted_tags_changed.connect(broken, weak=False)
    try:
        changed = received(events.accepted_tags_changed)
        with caplog.at_level(logging.ERROR, logger="hashtags.events"):
            services.add_tag(post, "dog", user)
    finally:
        events.accepted_tags_changed.disconnect(broken)
    assert [c["tags"] for c in changed.calls] == [["dog"]]  # the other receivers still hear it
    assert "receiver" in caplog.text and "the host site's receiver is broken" in caplog.text
    assert list(AcceptedTag.objects.for_object(post).values_list("hashtag__name", flat=True)) == ["dog"]


# model_promoted ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    from mlcore.testing import make_tiny_artifact

    root = tmp_path_factory.mktemp("events-registry")
    return {"v1": make_tiny_artifact(root / "v1", version="v1"),
            "v2": make_tiny_artifact(root / "v2", version="v2", epochs=30, seed=1)}


def test_model_promoted_for_promotion_and_rollback_not_for_settings(hashtags_config, artifacts, received, staff_user):
    reset_captioner()
    hashtags_config(EXECUTOR="sync", MODEL_DIR=str(artifacts["v1"]), MODEL_CHECK_INTERVAL=3600)
    promoted = received(events.model_promoted)
    v1 = versions.serving_version()  # MODEL_DIR takes over by itself: not a promotion
    v2 = versions.register(artifacts["v2"])
    assert promoted.calls == []

    with pytest.raises(RuntimeError), transaction.atomic():
        versions.promote("v2", staff_user)
        raise RuntimeError("rolled back")
    assert promoted.calls == [] and versions.serving_version() == v1

    with transaction.atomic():
        versions.promote("v2", staff_user)
        assert promoted.calls == []
    versions.rollback(staff_user)
    assert [(c["sender"], c["version"], c["previous"], c["reason"]) for c in promoted.calls] == [
        (ModelVersion, v2, v1, "promoted"), (ModelVersion, v1, v2, "rollback")]
    reset_captioner()


# A real worker ---------------------------------------------------------------------------------------

@pytest.fixture
def celery_broker():
    """This process' Celery app on the test Redis database, the gpu queue emptied."""
    from tests.celery_app import app

    def use(url):
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    use(REDIS_URL)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("gpu")
    yield app
    use(old)


@pytest.mark.worker
@pytest.mark.skipif(not redis_reachable(), reason=f"Redis is not reachable at {REDIS_URL}")
def test_analysis_finished_fires_in_a_real_worker_for_an_upload(
    celery_broker, hashtags_config, tiny_artifact, settings, tmp_path, user
):
    hashtags_config(EXECUTOR="celery", QUEUE="gpu", MODEL_DIR=str(tiny_artifact), MIN_SCORE=0.0)
    events_file = tmp_path / "events.jsonl"
    env = worker_env(tiny_artifact, settings.MEDIA_ROOT, DJANGO_SETTINGS_MODULE="tests.settings",
                     HASHTAGS_DATA_DIR=settings.HASHTAGS["DATA_DIR"], **{support.EVENTS_FILE_ENV: str(events_file)})
    log_path = tmp_path / "worker.log"
    worker = start_worker(env, log_path, "events", "--include=tests.hashtags.support")
    try:
        wait_for_log(log_path, "ready.", 120, worker)
        post = Post(owner=user, text="a real photo")
        post.image.save("photo.jpg", ContentFile(support.jpeg_bytes(support.real_photo())), save=False)
        post.save()  # autocommit: the task is sent after this commit
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (events_file.exists() and events_file.read_text().strip()):
            assert worker.poll() is None, log_path.read_text()[-4000:]
            time.sleep(0.5)
        time.sleep(1)  # a second event (there must be none) would be written by now
        lines = [json.loads(line) for line in events_file.read_text().splitlines()] if events_file.exists() else []
        analysis = ImageAnalysis.objects.for_object(post).get()
        assert len(lines) == 1, (lines, log_path.read_text()[-4000:])
        assert lines[0] == {
            "sender": "testapp.post", "object_id": str(post.pk), "analysis": analysis.pk, "ok": True, "error": "",
            "tags": list(analysis.suggestions.order_by("rank", "pk").values_list("hashtag__name", flat=True)),
            "pid": worker.pid,  # the solo pool: the receiver ran in the worker process
        }
        assert analysis.status == "done" and lines[0]["tags"]
    finally:
        stop(worker)
