"""POST tag-images/: several images, one batched forward pass, one result per image in order,
per-image errors that do not fail the others (issue 14.5)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from hashtags.inference import get_captioner
from tests.hashtags import support

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"


def files(*items):
    return {"images": [SimpleUploadedFile(name, data, content_type="application/octet-stream") for name, data in items]}


def test_a_batch_answers_each_image_in_order_in_one_forward_pass(model, api_client, monkeypatch):
    captioner = get_captioner()
    batches = []
    real = captioner.suggest

    def spy(images, *args, **kwargs):
        batches.append(len(images))
        return real(images, *args, **kwargs)

    monkeypatch.setattr(captioner, "suggest", spy)
    photos = [support.jpeg_bytes(seed=1), support.jpeg_bytes(seed=2)]
    response = api_client.post(API + "tag-images/", files(
        ("a.jpg", photos[0]), ("doc.pdf", b"%PDF-1.4 not an image"), ("b.jpg", photos[1]), ("empty.jpg", b"")),
        format="multipart")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["index"], r["name"], r["ok"]) for r in results] == [
        (0, "a.jpg", True), (1, "doc.pdf", False), (2, "b.jpg", True), (3, "empty.jpg", False)]
    assert results[1]["code"] == "not_an_image" and "not an image" in results[1]["error"]
    assert results[3]["code"] == "empty"
    assert batches == [2]  # the two readable photos went through the model together
    for photo, result in zip(photos, (results[0], results[2])):
        single = api_client.post(API + "tag-image/", {"image": SimpleUploadedFile("x.jpg", photo)}, format="multipart")
        assert single.status_code == 200
        assert result["caption"] == single.json()["caption"]
        assert [h["tag"] for h in result["hashtags"]] == [h["tag"] for h in single.json()["hashtags"]]


def test_the_batch_limit_and_a_missing_field_are_400(model, api_client, hashtags_config):
    hashtags_config(TAG_IMAGE_BATCH_MAX=2)
    photo = support.jpeg_bytes(seed=1)
    response = api_client.post(API + "tag-images/", files(*[(f"{i}.jpg", photo) for i in range(3)]), format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "too_many"
    response = api_client.post(API + "tag-images/", {"image": SimpleUploadedFile("x.jpg", photo)}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "required"


def test_each_image_of_a_batch_counts_against_the_tag_image_throttle(model, api_client, hashtags_config):
    hashtags_config(TAG_IMAGE_THROTTLE="3/hour")
    bad = [("x.bin", b"not an image")] * 2
    assert api_client.post(API + "tag-images/", files(*bad), format="multipart").status_code == 200
    response = api_client.post(API + "tag-images/", files(*bad), format="multipart")
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert api_client.post(API + "tag-image/", {"image": SimpleUploadedFile("x.bin", b"no")},
                           format="multipart").status_code == 400  # one call was left
