"""manage.py hashtags_backfill: resumable, --limit, --sync, queued through the executor."""

import io

import pytest
from django.core.management import call_command

from hashtags.models import HashtagOptOut, ImageAnalysis

pytestmark = pytest.mark.django_db


def backfill(*args):
    out = io.StringIO()
    call_command("hashtags_backfill", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_backfill_sync_is_resumable_and_limited(model, hashtags_config, make_post, other_user):
    hashtags_config(AUTO_TAG=False)
    posts = [make_post(seed=s) for s in range(3)]
    make_post(owner=other_user, seed=9)
    HashtagOptOut.objects.create(user=other_user)

    output = backfill("--sync", "--limit", "1")
    assert "analysed 1" in output and ImageAnalysis.objects.count() == 1
    output = backfill("--sync")  # picks up where it stopped
    assert "2 image(s) to analyse" in output and "analysed 2" in output and "skipped (opted out) 1" in output
    assert {a.object_id for a in ImageAnalysis.objects.filter(status="done")} == {str(p.pk) for p in posts}
    assert "0 image(s) to analyse" in backfill("--sync")


def test_backfill_queues_and_failed_ones_only_with_retry_failed(model, hashtags_config, make_post, recording):
    hashtags_config(AUTO_TAG=False, EXECUTOR="tests.hashtags.support.record")
    good, bad = make_post(seed=1), make_post(data=b"not an image")
    backfill("--sync")
    assert ImageAnalysis.objects.get(object_id=str(bad.pk)).status == "failed"
    assert "0 image(s)" in backfill()
    backfill("--retry-failed")
    assert recording == [("testapp", "post", bad.pk, "image", True)]
    assert ImageAnalysis.objects.get(object_id=str(good.pk)).status == "done"


def test_backfill_rejects_an_unwatched_model(model):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not in HASHTAGS"):
        backfill("--model", "auth.user")
