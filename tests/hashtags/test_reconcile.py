"""The reconciler: the database is the record of what is owed. Unsent requests (the broker was
down at save time), lost messages, stuck runs and images nobody asked about are sent again; the
admin and the command show the counts."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from hashtags.delivery import MAX_ATTEMPTS, claim_expires_after, resend_after
from hashtags.models import AnalysisRequest, HashtagOptOut, ImageAnalysis
from hashtags.reconcile import health, reconcile
from hashtags.watched import content_type_for
from hashtags.tasks import periodic_tasks

pytestmark = pytest.mark.django_db

JOB = ("testapp", "post")


@pytest.fixture
def broker_down():
    """The tests' Celery app pointed at a port where no broker listens."""
    from tests.celery_app import app

    def use(url):
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    use("redis://127.0.0.1:1/0")
    yield app
    use(old)


def backdate(**delta):
    AnalysisRequest.objects.update(requested=timezone.now() - timedelta(**delta))


def test_saving_a_post_while_the_broker_is_down_succeeds_and_is_sent_later(
        hashtags_config, broker_down, make_post, django_capture_on_commit_callbacks):
    hashtags_config(EXECUTOR="celery")
    with django_capture_on_commit_callbacks(execute=True):
        post = make_post()  # the send fails after the commit: logged, never raised
    request = AnalysisRequest.objects.get()
    assert request.object_id == str(post.pk) and request.sent is None and "send failed" in request.last_error
    assert health()["unsent"] == 1
    hashtags_config(EXECUTOR="tests.hashtags.support.record")  # the broker is back
    from tests.hashtags.support import recorded

    assert reconcile().resent == 0 and recorded == []  # within the grace of a send on commit
    backdate(minutes=1)
    assert reconcile().resent == 1 and recorded == [(*JOB, str(post.pk), "image", False)]
    request.refresh_from_db()
    assert request.sent is not None and request.sends == 2


def test_a_lost_message_is_sent_again_less_and_less_often(recording, make_post,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post = make_post()
    assert len(recording) == 1 and reconcile().resent == 0  # sent, not overdue
    request = AnalysisRequest.objects.get()
    AnalysisRequest.objects.update(sent=timezone.now() - timedelta(seconds=resend_after(180, 1) + 1))
    assert reconcile().resent == 1 and len(recording) == 2
    AnalysisRequest.objects.update(sent=timezone.now() - timedelta(seconds=resend_after(180, 1) + 1))
    assert reconcile().resent == 0  # the second wait is twice as long
    request.refresh_from_db()
    assert request.sends == 2 and recording[-1] == (*JOB, str(post.pk), "image", False)


def test_finishing_the_analysis_answers_the_request(model, make_post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make_post()  # the sync executor analyses on commit
    assert ImageAnalysis.objects.get().status == "done" and not AnalysisRequest.objects.exists()
    assert reconcile().as_dict() == {"stuck": 0, "given_up": 0, "unrequested": 0, "matched_by_content": 0, "resent": 0}


def test_stuck_analyses_are_sent_again_and_given_up_after_max_attempts(recording, hashtags_config, make_post):
    hashtags_config(AUTO_TAG=False)
    stuck_post, dying_post, fresh_post = make_post(seed=1), make_post(seed=2), make_post(seed=3)
    expired = timezone.now() - timedelta(seconds=claim_expires_after(180) + 5)
    rows = {}
    for post, attempts, started in ((stuck_post, 1, expired), (dying_post, MAX_ATTEMPTS, expired),
                                    (fresh_post, 1, timezone.now())):
        rows[post.pk] = ImageAnalysis.objects.create(
            content_type=content_type_for(post), object_id=str(post.pk), field_name="image", image_sha256=str(post.pk),
            model_version="m", image_name=post.image.name, status="running", started=started, attempts=attempts)
    assert health()["stuck"] == 2 and health()["running"] == 3
    report = reconcile()
    assert (report.stuck, report.given_up, report.unrequested) == (1, 1, 0)
    assert recording == [(*JOB, str(stuck_post.pk), "image", False)]
    assert ImageAnalysis.objects.get(pk=rows[dying_post.pk].pk).status == "failed"
    assert AnalysisRequest.objects.get().object_id == str(stuck_post.pk)


def test_images_nobody_asked_about_are_requested(recording, hashtags_config, make_post, other_user):
    hashtags_config(AUTO_TAG=False)  # as if saved before the app was installed
    post = make_post()
    make_post(owner=other_user)
    HashtagOptOut.objects.create(user=other_user)
    assert reconcile().unrequested == 1 and recording == [(*JOB, str(post.pk), "image", False)]
    assert reconcile().unrequested == 0  # requested now: not asked twice


def test_command_and_admin_show_the_counts(recording, hashtags_config, make_post, client, django_user_model):
    hashtags_config(AUTO_TAG=False)
    make_post()
    out = io.StringIO()
    call_command("hashtags_reconcile", stdout=out)
    assert "unrequested 1" in out.getvalue() and "pending=1 unsent=0 running=0 stuck=0 failed=0" in out.getvalue()
    out = io.StringIO()
    call_command("hashtags_reconcile", "--status", stdout=out)
    assert out.getvalue().strip() == "pending=1 unsent=0 running=0 stuck=0 failed=0"
    client.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", "pw-admin-123"))
    page = client.get("/admin/hashtags/imageanalysis/").content.decode()
    assert "<strong>Pending</strong> 1" in page and "<strong>stuck</strong> 0" in page


def test_beat_runs_the_reconciler_on_the_analysis_queue(hashtags_config):
    hashtags_config(QUEUE="gpu")
    assert periodic_tasks()["hashtags-reconcile"] == {
        "task": "hashtags.reconcile", "schedule": 120, "options": {"queue": "gpu"}}
    hashtags_config(RECONCILE_EVERY=None)
    assert "hashtags-reconcile" not in periodic_tasks()


def test_deleting_a_post_drops_its_unanswered_request(recording, make_post):
    post = make_post()
    assert AnalysisRequest.objects.for_object(post).exists()
    post.delete()
    assert not AnalysisRequest.objects.exists() and reconcile().resent == 0
