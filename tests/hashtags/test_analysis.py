"""The analysis itself, with the real tiny model: stored suggestions, idempotence, bad images."""

import pytest
from django.core.files.base import ContentFile

from hashtags.analysis import run_analysis
from hashtags.models import AcceptedTag, ImageAnalysis
from hashtags import services
from hashtags.query import tags_for
from tests.hashtags import support

pytestmark = pytest.mark.django_db


def analyse(post, **kwargs):
    return run_analysis("testapp", "post", post.pk, "image", **kwargs)


def test_saving_a_post_stores_suggestions(model, make_post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post = make_post(data=support.jpeg_bytes(support.real_photo()))
    analysis = ImageAnalysis.objects.for_object(post).get()
    assert analysis.status == "done", analysis.error
    assert analysis.model_version.startswith("tiny-")
    assert len(analysis.captions) == 3 and analysis.caption == analysis.captions[0]  # beam width 3
    assert analysis.image_name == post.image.name and len(analysis.image_sha256) == 64
    assert analysis.timings["read_s"] >= 0 and analysis.started <= analysis.finished
    suggestions = list(analysis.suggestions.all())
    assert suggestions, "the tiny model always says something"
    assert [s.rank for s in suggestions] == list(range(1, len(suggestions) + 1))
    scores = [s.score for s in suggestions]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    words = {w for c in analysis.captions for w in c.split()}
    assert all(s.state == "pending" and s.model_version == analysis.model_version for s in suggestions)
    from mlcore.extractor import normalize_tag

    canonical = {normalize_tag(word) for word in words}
    # every tag says why it is there: a caption word (canonical: plurals and verb forms merged),
    # the tag head or the encoder's ImageNet classes
    assert all(s.sources for s in suggestions)
    assert all(s.hashtag.name in canonical for s in suggestions if "caption" in s.sources)
    assert all(s.hashtag.name in canonical or {"tag_head", "classifier"} & set(s.sources)
               for s in suggestions)
    assert AcceptedTag.objects.count() == 0  # nothing accepted without a person


def test_rerun_is_idempotent_and_force_keeps_decisions(model, recording, make_post, user, hashtags_config):
    hashtags_config(EXECUTOR="sync")
    post = make_post()  # no commit in this test: analyse by hand
    first = analyse(post)
    again = analyse(post)
    assert again.pk == first.pk and again.attempts == 1
    count = first.suggestions.count()
    top = first.suggestions.first()
    services.accept(top, user)
    forced = analyse(post, force=True)
    assert forced.pk == first.pk and forced.attempts == 2
    assert forced.suggestions.count() == count
    top.refresh_from_db()
    assert top.state == "accepted"
    assert ImageAnalysis.objects.count() == 1


def test_same_content_is_not_analysed_twice(model, make_post):
    data = support.jpeg_bytes(seed=5)
    post = make_post(data=data)
    first = analyse(post)
    post.image.save("renamed.jpg", ContentFile(data))  # same bytes under a new name
    assert analyse(post).pk == first.pk
    post.image.save("new.jpg", ContentFile(support.jpeg_bytes(seed=6)))
    assert analyse(post).pk != first.pk


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"this is not an image at all", "not an image"),
        (support.jpeg_bytes(seed=1)[:400], "truncated or corrupt"),
    ],
)
def test_bad_image_fails_with_a_readable_reason_and_the_post_survives(model, make_post, data, reason):
    from tests.testapp.models import Post

    post = make_post(data=data, text="keep me")
    analysis = analyse(post)
    assert analysis.status == "failed" and reason in analysis.error
    assert analysis.suggestions.count() == 0
    survivor = Post.objects.get(pk=post.pk)
    assert survivor.text == "keep me" and survivor.image.name == post.image.name
    # same content, same model: not retried on every save
    assert analyse(post).attempts == 1


def test_missing_and_oversized_files_fail_cleanly(model, make_post, hashtags_config):
    post = make_post()
    post.image.storage.delete(post.image.name)
    analysis = analyse(post)
    assert analysis.status == "failed" and analysis.error.startswith("file not found")
    hashtags_config(MAX_IMAGE_BYTES=1000)
    big = make_post(seed=2)
    analysis = analyse(big)
    assert analysis.status == "failed" and "too large" in analysis.error


def test_deleted_post_and_opt_out_are_skipped(model, make_post, user):
    from hashtags.models import HashtagOptOut

    post = make_post()
    pk = post.pk
    post.delete()
    assert run_analysis("testapp", "post", pk, "image") is None
    HashtagOptOut.objects.create(user=user)
    assert analyse(make_post()) is None


def test_auto_accept_threshold_writes_tags_and_taggit(model, make_post, hashtags_config):
    hashtags_config(AUTO_ACCEPT_SCORE=0.0)
    post = make_post()
    analysis = analyse(post)
    names = sorted(s.hashtag.name for s in analysis.suggestions.all())
    assert names and all(s.state == "accepted" for s in analysis.suggestions.all())
    assert [t.name for t in tags_for(post)] == names
    assert sorted(post.tags.names()) == names
    assert set(AcceptedTag.objects.values_list("source", flat=True)) == {"auto"}


@pytest.mark.django_db(transaction=True)
def test_in_process_thread_executor(model, hashtags_config, make_post):
    """The demo's executor: the analysis runs in a background thread after the commit."""
    from hashtags import inprocess

    hashtags_config(EXECUTOR="thread")
    post = make_post(seed=1)  # autocommit: on_commit fires at once and queues the job
    assert inprocess.wait_idle(timeout=120)
    analysis = ImageAnalysis.objects.for_object(post).get()
    assert analysis.status == "done" and analysis.suggestions.exists()


def test_missing_model_is_recorded_on_the_post(hashtags_config, make_post, tmp_path):
    from hashtags.inference import reset_captioner

    hashtags_config(EXECUTOR="sync", MODEL_DIR=str(tmp_path / "no-model-here"))
    reset_captioner()
    analysis = analyse(make_post())
    assert analysis.status == "failed" and analysis.model_version == "unavailable"
    assert "model is unavailable" in analysis.error


def test_settings_shape_the_suggestions(model, make_post, hashtags_config):
    """BLOCKLIST (with or without '#') and MAX_TAGS reach mlcore's extractor."""
    post = make_post(seed=1)
    found = [s.hashtag.name for s in analyse(post).suggestions.all()]
    assert len(found) >= 2
    hashtags_config(BLOCKLIST=[f"#{found[0]}"], MAX_TAGS=1)
    again = analyse(post, force=True)
    names = [s.hashtag.name for s in again.suggestions.all()]
    assert found[0] not in names and len(names) == 1


@pytest.mark.django_db(transaction=True)
def test_an_analysis_costs_a_bounded_number_of_statements(model, make_post, django_assert_max_num_queries):
    """What one upload costs the database once its tags exist, in a worker's autocommit mode: the
    claim, the reuse and in-progress checks, one bulk insert, the finished event and the answered
    request; no abandoned-run check on a row that was not running, no BEGIN/COMMIT around the
    registry query, no delete of pending suggestions a fresh analysis cannot have, no second read
    of the stored row (the README's Benchmarks section has the before/after)."""
    posts = [make_post(data=support.jpeg_bytes(seed=40 + i)) for i in range(3)]  # analysed on commit
    ImageAnalysis.objects.filter(object_id=str(posts[2].pk)).delete()
    with django_assert_max_num_queries(24):
        analysis = analyse(posts[2])
    assert analysis.status == "done" and analysis.suggestions.exists()
    assert analysis == ImageAnalysis.objects.for_object(posts[2]).get()
    assert analysis.finished == ImageAnalysis.objects.get(pk=analysis.pk).finished
