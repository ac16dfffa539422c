"""The Celery task, run in this process via ``Task.apply`` (the real task code, no broker)."""

import pytest

from hashtags.models import ImageAnalysis
from hashtags.tasks import analyze_image

pytestmark = pytest.mark.django_db


def test_task_options():
    assert analyze_image.name == "hashtags.analyze_image"
    assert analyze_image.acks_late and analyze_image.reject_on_worker_lost
    assert analyze_image.max_retries == 5 and analyze_image.retry_backoff


def test_task_stores_suggestions(model, make_post):
    post = make_post()
    result = analyze_image.apply(args=("posts", "post", post.pk, "image")).get()
    analysis = ImageAnalysis.objects.get(pk=result["analysis"])
    assert result["status"] == "done" and analysis.suggestions.exists()


def test_bad_image_is_not_retried(model, make_post):
    post = make_post(data=b"GIF89a but not really")
    outcome = analyze_image.apply(args=("posts", "post", post.pk, "image"))
    assert outcome.successful() and outcome.get()["status"] == "failed"
    assert ImageAnalysis.objects.get().error


def test_transient_errors_retry_then_record_the_failure(model, make_post, monkeypatch):
    """A storage outage (OSError) is retried with backoff; after the last retry it is recorded."""
    from django.core.files.storage import FileSystemStorage

    from hashtags.registry import content_type_for

    post = make_post()
    ImageAnalysis.objects.create(
        content_type=content_type_for(post),
        object_id=str(post.pk), field_name="image", image_sha256="x", model_version="m", status="running",
    )

    def storage_down(*args, **kwargs):
        raise ConnectionResetError("storage unreachable")

    monkeypatch.setattr(FileSystemStorage, "open", storage_down)  # an outage we cannot cause for real
    outcome = analyze_image.apply(args=("posts", "post", post.pk, "image"), retries=analyze_image.max_retries)
    assert outcome.failed() and isinstance(outcome.result, ConnectionResetError)
    analysis = ImageAnalysis.objects.get()
    assert analysis.status == "failed" and "gave up after 5 retries: storage unreachable" in analysis.error
