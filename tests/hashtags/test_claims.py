"""Exactly one model run per image content: an atomic claim before the model runs, attempts
counted in the database, identical bytes reusing a done analysis, and matching on content."""

import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone

from hashtags.analysis import AnalysisInProgress, claim_analysis, content_hash, run_analysis
from hashtags.delivery import MAX_ATTEMPTS, claim_expires_after
from hashtags.inference import get_captioner
from hashtags.models import AnalysisRequest, ImageAnalysis
from hashtags.watched import content_type_for
from tests.hashtags import support

pytestmark = pytest.mark.django_db


def analysis_row(post, **fields) -> ImageAnalysis:
    """The row a delivery of ``post``'s analysis works on (as run_analysis would create it)."""
    post.image.open("rb")
    data = post.image.read()
    post.image.close()
    return ImageAnalysis.objects.create(
        content_type=content_type_for(post), object_id=str(post.pk), field_name="image",
        image_sha256=content_hash(data), model_version=get_captioner().model_version,
        image_name=post.image.name, **fields,
    )


def run(post, claim):
    return run_analysis("testapp", "post", post.pk, "image", claim=claim)


def test_a_duplicate_delivery_finds_the_analysis_claimed_and_stops(model, hashtags_config, make_post):
    hashtags_config(AUTO_TAG=False)
    post = make_post()
    row = analysis_row(post)
    assert claim_analysis(row.pk, "first", image_name=post.image.name)
    assert not claim_analysis(row.pk, "second", image_name=post.image.name)
    duplicate = run(post, "second")
    assert duplicate.status == "running" and duplicate.claimed_by == "first" and not duplicate.suggestions.exists()
    finished = run(post, "first")  # the claiming delivery itself (a retry, a redelivery) goes on
    assert finished.status == "done" and finished.suggestions.exists() and finished.attempts == 2
    assert run(post, "third").timings == finished.timings  # done: nothing runs again


def test_a_claim_abandoned_past_the_time_limit_is_taken_over(model, hashtags_config, make_post):
    hashtags_config(AUTO_TAG=False)
    post = make_post()
    expired = timezone.now() - timedelta(seconds=claim_expires_after(180) + 5)
    row = analysis_row(post, status="running", claimed_by="killed-worker", started=expired, attempts=1)
    analysis = run(post, "new")
    assert analysis.pk == row.pk and analysis.status == "done" and analysis.claimed_by == "new"
    assert analysis.attempts == 2


def test_an_image_whose_worker_keeps_dying_is_failed_not_handed_out_again(model, hashtags_config, make_post):
    hashtags_config(AUTO_TAG=False)
    post = make_post()
    expired = timezone.now() - timedelta(seconds=claim_expires_after(180) + 5)
    analysis_row(post, status="running", claimed_by="x", started=expired, attempts=MAX_ATTEMPTS)
    analysis = run(post, "again")
    assert analysis.status == "failed" and f"gave up after {MAX_ATTEMPTS} attempts" in analysis.error
    assert not analysis.suggestions.exists()


def test_identical_bytes_reuse_the_done_analysis(model, make_post, other_user, django_capture_on_commit_callbacks):
    data = support.jpeg_bytes(seed=5)
    with django_capture_on_commit_callbacks(execute=True):
        first = make_post(data=data, name="a.jpg")
    with django_capture_on_commit_callbacks(execute=True):
        second = make_post(owner=other_user, data=data, name="b.jpg")
    one, two = (ImageAnalysis.objects.for_object(p).get() for p in (first, second))
    assert one.status == two.status == "done" and one.pk != two.pk
    assert "encode_s" in one.timings and two.timings == {"reused_from": one.pk}  # no second model run
    assert (two.caption, two.captions, two.caption_confidence) == (one.caption, one.captions, one.caption_confidence)
    assert ([(s.hashtag_id, s.score, s.sources) for s in two.suggestions.all()]
            == [(s.hashtag_id, s.score, s.sources) for s in one.suggestions.all()])
    assert not AnalysisRequest.objects.exists()  # both requests answered


def test_identical_bytes_wait_for_a_run_already_in_progress(model, hashtags_config, make_post, other_user):
    hashtags_config(AUTO_TAG=False)
    data = support.jpeg_bytes(seed=6)
    first, second = make_post(data=data), make_post(owner=other_user, data=data)
    running = analysis_row(first)
    assert claim_analysis(running.pk, "elsewhere", image_name=first.image.name)
    with pytest.raises(AnalysisInProgress):
        run(second, "mine")
    waiting = ImageAnalysis.objects.for_object(second).get()
    assert waiting.status == "pending" and not waiting.suggestions.exists()  # released for the retry
    assert run(first, "elsewhere").status == "done"
    assert run(second, "mine").timings == {"reused_from": running.pk}


def backfill(*args) -> str:
    out = io.StringIO()
    call_command("hashtags_backfill", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_same_bytes_under_a_new_name_are_not_analysed_again(model, make_post, recording,
                                                                 django_capture_on_commit_callbacks):
    from tests.testapp.models import Post

    post = make_post(data=support.jpeg_bytes(seed=7))
    run(post, "first")
    # re-uploaded through a save (the signal asks again; the task matches the bytes)
    post.image.save("again.jpg", ContentFile(support.jpeg_bytes(seed=7)), save=False)
    post.save()
    run(post, "second")
    analysis = ImageAnalysis.objects.for_object(post).get()
    assert analysis.image_name == post.image.name
    assert "0 image(s) to analyse" in backfill()
    # changed behind the signals' back (QuerySet.update): backfill matches the content once
    post.image.save("third.jpg", ContentFile(support.jpeg_bytes(seed=7)), save=False)
    Post.objects.filter(pk=post.pk).update(image=post.image.name)
    output = backfill()
    assert "1 image(s) to analyse" in output and "already analysed (same content) 1" in output
    assert "0 image(s) to analyse" in backfill() and ImageAnalysis.objects.count() == 1
