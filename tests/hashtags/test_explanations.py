"""Why each tag is suggested (``sources``) and how sure the caption is (``caption_confidence``):
stored by the analysis, served by the API, shown in the admin and on the demo page, with an
uncertain caption worded as a guess everywhere.

The tiny test model says nothing about sources yet (mlcore gives empty sources and confidence
1.0 until its fusion lands), so the tests that need particular values store an mlcore result
built here through the same ``_store`` the analysis task calls, on an analysis the real model made.
"""

from __future__ import annotations

import pytest

from hashtags import services
from hashtags.analysis import _store, run_analysis
from hashtags.inference import suggest
from hashtags.models import ImageAnalysis, Suggestion
from tests.hashtags import support
from tests.hashtags.fixtures import CAPTION, SOURCES, analyse, explained_result

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"


def sources_by_tag(rows) -> dict[str, list[str]]:
    return {row["name"]: row["sources"] for row in rows}


# Storage -----------------------------------------------------------------------------------------

def test_run_analysis_stores_the_captioners_sources_and_confidence(model, make_post):
    data = support.jpeg_bytes(seed=2)
    analysis = analyse(make_post(data=data))
    expected = suggest(data)  # the same serving model on the same bytes
    assert analysis.caption_confidence == pytest.approx(expected.caption_confidence)
    stored = {s.hashtag.name: s.sources for s in analysis.suggestions.all()}
    assert stored == {h.name: list(h.sources) for h in expected.hashtags}


def test_store_records_sources_and_confidence_and_updates_decided_suggestions(explained, user):
    post, analysis = explained(0.3)
    assert {s.hashtag.name: s.sources for s in analysis.suggestions.all()} == SOURCES
    assert analysis.caption_confidence == pytest.approx(0.3) and analysis.caption_is_uncertain
    dog = analysis.suggestions.get(hashtag__name="dog")
    services.accept(dog, user)
    _store(analysis.pk, explained_result(0.8, sources={"dog": ["classifier"]}), {})
    dog.refresh_from_db()
    assert dog.state == "accepted" and dog.sources == ["classifier"] and dog.score == pytest.approx(0.9)
    analysis.refresh_from_db()
    assert analysis.caption_confidence == pytest.approx(0.8) and not analysis.caption_is_uncertain
    assert list(analysis.suggestions.values_list("hashtag__name", flat=True)) == ["dog"]


def test_uncertainty_follows_the_setting_and_unknown_confidence_is_not_uncertain(hashtags_config):
    analysis = ImageAnalysis(caption=CAPTION, caption_confidence=0.3)
    assert analysis.caption_is_uncertain  # default threshold: mlcore's LOW_CAPTION_CONFIDENCE (0.5)
    hashtags_config(MIN_CAPTION_CONFIDENCE=0.25)
    assert not analysis.caption_is_uncertain
    hashtags_config(MIN_CAPTION_CONFIDENCE=1.0)
    assert ImageAnalysis(caption_confidence=0.99).caption_is_uncertain
    assert not ImageAnalysis(caption_confidence=None).caption_is_uncertain  # older analyses


def test_failed_analysis_has_no_confidence(model, make_post):
    analysis = run_analysis("testapp", "post", make_post(data=b"not an image").pk, "image")
    assert analysis.status == "failed" and analysis.caption_confidence is None


# API ---------------------------------------------------------------------------------------------

def post_url(post, suffix: str = "") -> str:
    return f"{API}posts/testapp.post/{post.pk}/{suffix}"


def test_api_shows_sources_and_the_uncertain_caption(explained, api_client, user, hashtags_config):
    post, analysis = explained(0.3)
    api_client.force_authenticate(user)
    detail = api_client.get(post_url(post)).json()
    shown = detail["analyses"][0]
    assert shown["caption"] == CAPTION and shown["caption_confidence"] == pytest.approx(0.3)
    assert shown["caption_uncertain"] is True
    assert sources_by_tag(detail["suggestions"]) == SOURCES
    assert sources_by_tag(api_client.get(post_url(post, "suggestions/")).json()) == SOURCES
    dog = Suggestion.objects.get(analysis=analysis, hashtag__name="dog")
    assert api_client.get(f"{API}suggestions/{dog.pk}/").json()["sources"] == ["caption", "tag_head"]
    assert api_client.post(f"{API}suggestions/{dog.pk}/accept/").json()["sources"] == ["caption", "tag_head"]
    corrected = api_client.post(post_url(post, "caption/"), {"caption": "a puppy on a lawn"}, format="json").json()
    assert corrected["caption_confidence"] == pytest.approx(0.3) and corrected["caption_uncertain"] is True

    hashtags_config(MIN_CAPTION_CONFIDENCE=0.2)
    assert api_client.get(post_url(post)).json()["analyses"][0]["caption_uncertain"] is False


def test_api_shows_unknown_confidence_as_null(model, make_post, api_client, user):
    post = make_post(data=b"not an image")
    run_analysis("testapp", "post", post.pk, "image")
    api_client.force_authenticate(user)
    shown = api_client.get(post_url(post)).json()["analyses"][0]
    assert shown["status"] == "failed" and shown["caption_confidence"] is None and shown["caption_uncertain"] is False


def test_tag_image_returns_sources_and_caption_confidence(model, api_client, hashtags_config):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from hashtags.explain import caption_is_uncertain

    data = support.jpeg_bytes(seed=1)
    expected = suggest(data)
    for threshold in (0.0, 1.0):
        hashtags_config(MIN_CAPTION_CONFIDENCE=threshold)
        image = SimpleUploadedFile("photo.jpg", data, content_type="image/jpeg")
        body = api_client.post(API + "tag-image/", {"image": image}, format="multipart").json()
        assert body["caption_confidence"] == pytest.approx(expected.caption_confidence)
        assert body["caption_uncertain"] is caption_is_uncertain(expected.caption_confidence)
        assert body["caption_uncertain"] is (expected.caption_confidence < threshold)
        assert {h["tag"]: h["sources"] for h in body["hashtags"]} == {h.tag: list(h.sources) for h in expected.hashtags}


def test_tag_image_answer_carries_each_tags_sources_and_an_uncertain_caption(hashtags_config):
    from hashtags.api.views import tag_image_payload

    body = tag_image_payload(explained_result(0.3))
    assert {h["tag"][1:]: h["sources"] for h in body["hashtags"]} == SOURCES
    assert body["caption"] == CAPTION and body["caption_confidence"] == 0.3 and body["caption_uncertain"] is True
    hashtags_config(MIN_CAPTION_CONFIDENCE=0.2)
    assert tag_image_payload(explained_result(0.3))["caption_uncertain"] is False


def test_schema_documents_sources_and_caption_confidence(client):
    from hashtags.explain import SOURCES as KNOWN

    schemas = client.get("/api/schema/?format=json").json()["components"]["schemas"]

    def resolve(node: dict) -> dict:
        return schemas[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    for name in ("Suggestion", "ScoredTag"):
        sources = schemas[name]["properties"]["sources"]
        assert sources["type"] == "array", name
        items = resolve(sources["items"])
        assert items["type"] == "string" and items["enum"] == list(KNOWN) and "feedback" in items["enum"]
    for name in ("Analysis", "TagImageResponse"):
        properties = schemas[name]["properties"]
        assert properties["caption_confidence"]["type"] == "number", name
        assert properties["caption_uncertain"]["type"] == "boolean", name
    assert schemas["Analysis"]["properties"]["caption_confidence"].get("nullable") is True


# Admin -------------------------------------------------------------------------------------------

@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123"))
    return client


def test_admin_lists_say_why_and_mark_an_uncertain_caption(explained, admin_client, hashtags_config):
    post, analysis = explained(0.3, caption="a dog <b>runs</b>")
    queue = admin_client.get("/admin/hashtags/reviewqueueitem/").content.decode()
    assert "caption, tag head" in queue and "image classifier" in queue
    assert "Possibly: a dog &lt;b&gt;runs&lt;/b&gt;" in queue and "<b>runs</b>" not in queue  # escaped
    assert "hashtags-uncertain-caption" in queue
    analyses = admin_client.get("/admin/hashtags/imageanalysis/").content.decode()
    assert "0.30" in analyses and "Possibly: a dog &lt;b&gt;runs&lt;/b&gt;" in analyses
    change = admin_client.get(f"/admin/hashtags/imageanalysis/{analysis.pk}/change/").content.decode()
    assert "Possibly: a dog" in change and "caption, tag head" in change  # the suggestions inline
    dog = analysis.suggestions.get(hashtag__name="dog")
    assert "caption, tag head" in admin_client.get(f"/admin/hashtags/suggestion/{dog.pk}/change/").content.decode()

    hashtags_config(MIN_CAPTION_CONFIDENCE=0.2)
    queue = admin_client.get("/admin/hashtags/reviewqueueitem/").content.decode()
    assert "a dog &lt;b&gt;runs&lt;/b&gt;" in queue and "Possibly:" not in queue
