"""The Celery task, run in this process via ``Task.apply`` (the real task code, no broker)."""

import time

import pytest

from hashtags.models import AnalysisRequest, ImageAnalysis
from hashtags.tasks import analyze_image

pytestmark = pytest.mark.django_db


def test_task_options():
    assert analyze_image.name == "hashtags.analyze_image"
    assert analyze_image.acks_late and analyze_image.reject_on_worker_lost
    assert analyze_image.max_retries is None  # retries are bounded in time: TASK_RETRY_MINUTES


def test_task_stores_suggestions(model, make_post):
    post = make_post()
    result = analyze_image.apply(args=("testapp", "post", post.pk, "image")).get()
    analysis = ImageAnalysis.objects.get(pk=result["analysis"])
    assert result["status"] == "done" and analysis.suggestions.exists()


def test_bad_image_is_not_retried(model, make_post):
    post = make_post(data=b"GIF89a but not really")
    outcome = analyze_image.apply(args=("testapp", "post", post.pk, "image"))
    assert outcome.successful() and outcome.get()["status"] == "failed"
    assert ImageAnalysis.objects.get().error


def test_transient_errors_retry_then_record_the_failure(model, make_post, monkeypatch):
    """A storage outage (OSError) is retried with backoff; once the time budget is spent the
    failure is recorded (here the first try was 31 minutes ago; the budget is 30)."""
    from django.core.files.storage import FileSystemStorage

    from hashtags.watched import content_type_for

    post = make_post()
    ImageAnalysis.objects.create(
        content_type=content_type_for(post),
        object_id=str(post.pk), field_name="image", image_sha256="x", model_version="m", status="running",
    )

    def storage_down(*args, **kwargs):
        raise ConnectionResetError("storage unreachable")

    monkeypatch.setattr(FileSystemStorage, "open", storage_down)  # an outage we cannot cause for real
    outcome = analyze_image.apply(args=("testapp", "post", post.pk, "image"),
                                  kwargs={"first_try": time.time() - 31 * 60}, retries=7)
    assert outcome.failed() and isinstance(outcome.result, ConnectionResetError)
    analysis = ImageAnalysis.objects.get()
    assert analysis.status == "failed" and "gave up after 7 retries in 18" in analysis.error
    assert analysis.error.endswith("s: storage unreachable")
    assert not AnalysisRequest.objects.exists()  # the request is answered by the recorded failure
