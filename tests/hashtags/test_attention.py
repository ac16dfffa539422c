"""Where the model looked (issue 16.4): an attention decoder's per-word weights are stored with the
analysis, served by the API to whoever sees the caption, copied with a reused analysis, and shown
as an overlay in the admin; a person's correction of the caption takes the overlay away.

Real runs of a tiny attention artifact (mlcore.testing) through the real encoder.
"""

from __future__ import annotations

import pytest

from hashtags import services
from hashtags.explain import attention_overlay
from hashtags.inference import suggest
from tests.hashtags import support
from tests.hashtags.fixtures import analyse

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"


def _check_map(attention: dict, caption: str) -> None:
    assert attention["grid"] == [7, 7]
    assert len(attention["words"]) == len(caption.split()) > 0
    for row in attention["words"]:
        assert len(row) == 49 and sum(row) == pytest.approx(1.0, abs=0.01)


def test_the_analysis_stores_and_serves_where_the_model_looked(attending, make_post, api_client,
                                                               user, other_user):
    data = support.jpeg_bytes(seed=3)
    analysis = analyse(make_post(data=data))
    _check_map(analysis.attention, analysis.caption)
    expected = suggest(data)  # the same serving model on the same bytes
    assert analysis.attention == expected.attention_map
    api_client.force_authenticate(user)
    post_id = analysis.object_id
    shown = api_client.get(f"{API}posts/testapp.post/{post_id}/").json()["analyses"][0]
    assert shown["attention"] == analysis.attention
    api_client.force_authenticate(other_user)  # who may not see the caption sees no attention
    assert api_client.get(f"{API}posts/testapp.post/{post_id}/").status_code == 403
    # identical bytes on another post: the stored result is copied, attention included
    again = analyse(make_post(data=data))
    assert again.timings.get("reused_from") == analysis.pk
    assert again.attention == analysis.attention


def test_tag_image_answers_with_the_attention(attending, api_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = support.jpeg_bytes(seed=4)
    body = api_client.post(API + "tag-image/", {"image": SimpleUploadedFile(
        "photo.jpg", data, content_type="image/jpeg")}, format="multipart").json()
    _check_map(body["attention"], body["caption"])


def test_a_model_without_attention_stores_none(model, make_post, api_client):
    analysis = analyse(make_post(data=support.jpeg_bytes(seed=3)))
    assert analysis.attention is None and attention_overlay(analysis) is None


def test_the_overlay_follows_the_words_and_their_tags(attending, make_post, admin_client, user):
    analysis = analyse(make_post(data=support.jpeg_bytes(seed=5)))
    overlay = attention_overlay(analysis)
    words = analysis.caption.split()
    assert [entry["word"] for entry in overlay["words"]] == words
    assert [entry["weights"] for entry in overlay["words"]] == analysis.attention["words"]
    # every caption tag points at the words it came from; stopwords become no tag
    for tag, indices in overlay["tags"].items():
        assert all(overlay["words"][index]["tag"] == tag for index in indices)
    if "a" in words:
        assert overlay["words"][words.index("a")]["tag"] is None
    assert overlay["tags"]  # the tiny model's captions have content words
    page = admin_client.get(f"/admin/hashtags/imageanalysis/{analysis.pk}/change/").content.decode()
    assert "Where the model looked" in page and f'id="attention-data-{analysis.pk}"' in page
    for word in set(words):
        assert f">{word}</button>" in page
    services.correct_caption(analysis, "a puppy on a lawn", user)
    analysis.refresh_from_db()
    assert attention_overlay(analysis) is None  # the weights belong to the model's words
    page = admin_client.get(f"/admin/hashtags/imageanalysis/{analysis.pk}/change/").content.decode()
    assert f'id="attention-data-{analysis.pk}"' not in page


def test_the_api_schema_documents_the_attention(client):
    schemas = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert "attention" in schemas["Analysis"]["properties"]
    assert set(schemas["AttentionMap"]["properties"]) == {"grid", "words"}
    assert "attention" in schemas["TagImageResponse"]["properties"]
