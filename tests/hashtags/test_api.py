"""The REST API: tag-image, reviewing a post's suggestions, posts by tag, trending, permissions."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.authtoken.models import Token

from hashtags import services
from hashtags.analysis import run_analysis
from hashtags.models import AcceptedTag, Hashtag, ImageAnalysis, Suggestion
from hashtags.query import tags_for
from tests.hashtags import support

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"


def upload(data: bytes, name="photo.jpg", content_type="image/jpeg"):
    return {"image": SimpleUploadedFile(name, data, content_type=content_type)}


# tag-image ------------------------------------------------------------------------------------------

def test_tag_image_returns_caption_and_hashtags_to_anonymous_callers(model, api_client):
    response = api_client.post(API + "tag-image/", upload(support.jpeg_bytes(seed=1)), format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"caption", "captions", "hashtags", "model_version"}
    assert body["model_version"].startswith("tiny-") and body["caption"] == body["captions"][0]
    assert body["hashtags"] and all(h["tag"].startswith("#") and 0 <= h["score"] <= 1 for h in body["hashtags"])
    assert not ImageAnalysis.objects.exists()  # nothing stored


def test_tag_image_accepts_png(model, api_client):
    response = api_client.post(API + "tag-image/", upload(support.png_bytes(2), "x.png", "image/png"), format="multipart")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "data, message",
    [
        (b"%PDF-1.4 definitely a document", "not an image"),
        (support.jpeg_bytes(seed=1)[:500], "truncated or corrupt"),
        (b"", "empty"),
    ],
)
def test_tag_image_rejects_bad_uploads_with_a_clear_message(model, api_client, data, message):
    response = api_client.post(API + "tag-image/", upload(data), format="multipart")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_tag_image_size_limit_and_missing_field(model, api_client, hashtags_config):
    hashtags_config(MAX_UPLOAD_BYTES=2048)
    response = api_client.post(API + "tag-image/", upload(support.jpeg_bytes(seed=1)), format="multipart")
    assert response.status_code == 413 and "too large" in response.json()["error"]
    response = api_client.post(API + "tag-image/", {"picture": "x"}, format="multipart")
    assert response.status_code == 400 and "'image'" in response.json()["error"]


def test_tag_image_is_throttled_by_the_setting(model, api_client, hashtags_config):
    hashtags_config(TAG_IMAGE_THROTTLE="2/hour")
    codes = [
        api_client.post(API + "tag-image/", upload(b"not an image"), format="multipart").status_code
        for _ in range(3)
    ]
    assert codes == [400, 400, 429]


# a post's suggestions: permissions ------------------------------------------------------------------

@pytest.fixture
def analysed_post(model, make_post):
    post = make_post(seed=1)
    analysis = run_analysis("testapp", "post", post.pk, "image")
    assert analysis.status == "done" and analysis.suggestions.count() >= 2
    return post


def post_url(post, suffix=""):
    return f"{API}posts/testapp.post/{post.pk}/{suffix}"


# Staff status alone does not make a moderator (issue 17): the staff account without permissions is refused.
@pytest.mark.parametrize("who, status", [("owner", 200), ("staff", 403), ("other", 403), ("anonymous", 401)])
def test_who_may_see_and_decide(analysed_post, api_client, user, other_user, staff_user, who, status):
    people = {"owner": user, "staff": staff_user, "other": other_user, "anonymous": None}
    if people[who]:
        api_client.force_authenticate(people[who])
    suggestion = Suggestion.objects.first()
    assert api_client.get(post_url(analysed_post)).status_code == status
    assert api_client.get(post_url(analysed_post, "suggestions/")).status_code == status
    assert api_client.post(f"{API}suggestions/{suggestion.pk}/accept/").status_code == status
    assert api_client.post(post_url(analysed_post, "tags/"), {"tag": "#mine"}, format="json").status_code == (
        201 if status == 200 else status
    )
    suggestion.refresh_from_db()
    assert suggestion.state == ("accepted" if status == 200 else "pending")


def test_moderators_with_the_permission_may_review(analysed_post, api_client, other_user):
    from django.contrib.auth.models import Permission

    other_user.user_permissions.add(Permission.objects.get(codename="change_suggestion"))
    api_client.force_authenticate(other_user)
    assert api_client.get(post_url(analysed_post)).status_code == 200


def test_unknown_or_unwatched_posts_are_404(analysed_post, api_client, staff_user):
    api_client.force_authenticate(staff_user)
    assert api_client.get(f"{API}posts/testapp.post/999999/").status_code == 404
    assert api_client.get(f"{API}posts/testapp.post/not-a-number/").status_code == 404
    assert api_client.get(f"{API}posts/auth.user/{staff_user.pk}/").status_code == 404
    assert api_client.post(f"{API}suggestions/999999/accept/").status_code == 404


def test_token_authentication(analysed_post, api_client, user):
    token = Token.objects.create(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api_client.get(post_url(analysed_post)).status_code == 200


def test_session_authentication(analysed_post, client, user):
    client.force_login(user)
    assert client.get(post_url(analysed_post)).status_code == 200


# reviewing --------------------------------------------------------------------------------------------

def test_review_flow_accept_edit_reject_add_remove(analysed_post, api_client, user):
    api_client.force_authenticate(user)
    detail = api_client.get(post_url(analysed_post)).json()
    assert detail["analyses"][0]["status"] == "done" and detail["tags"] == []
    first, second = detail["suggestions"][:2]
    assert first["state"] == "pending" and first["tag"].startswith("#")

    accepted = api_client.post(f"{API}suggestions/{first['id']}/accept/").json()
    assert accepted["state"] == "accepted" and accepted["decided_by"] == "owner"

    edited = api_client.post(f"{API}suggestions/{second['id']}/edit/", {"tag": "Puppy"}, format="json").json()
    assert edited["state"] == "edited" and edited["tag"] == "#puppy" and edited["replaced"] == second["tag"]
    bad = api_client.post(f"{API}suggestions/{second['id']}/edit/", {"tag": "#!!"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]

    added = api_client.post(post_url(analysed_post, "tags/"), {"tag": "#Sunny"}, format="json")
    assert added.status_code == 201 and added.json()["tag"] == "#sunny" and added.json()["source"] == "added"
    tags = {t["tag"] for t in api_client.get(post_url(analysed_post, "tags/")).json()}
    assert tags == {first["tag"], "#puppy", "#sunny"}
    assert set(analysed_post.tags.names()) == {t[1:] for t in tags}  # django-taggit mirror

    rejected = api_client.post(f"{API}suggestions/{first['id']}/reject/").json()
    assert rejected["state"] == "rejected"
    assert api_client.delete(post_url(analysed_post, "tags/%23Sunny/")).status_code == 204
    assert api_client.delete(post_url(analysed_post, "tags/sunny/")).status_code == 404
    assert [t.tag for t in tags_for(analysed_post)] == ["#puppy"]
    reset = api_client.post(f"{API}suggestions/{second['id']}/reset/").json()
    assert reset["state"] == "pending" and reset["tag"] == second["tag"]
    assert tags_for(analysed_post) == []


def test_failed_analysis_shows_its_error(model, make_post, api_client, user):
    post = make_post(data=b"not an image")
    run_analysis("testapp", "post", post.pk, "image")
    api_client.force_authenticate(user)
    analysis = api_client.get(post_url(post)).json()["analyses"][0]
    assert analysis["status"] == "failed" and "not an image" in analysis["error"]


def test_analyze_endpoint_reruns(recording, make_post, api_client, user):
    post = make_post()
    api_client.force_authenticate(user)
    assert api_client.post(post_url(post, "analyze/")).status_code == 202
    assert recording == [("testapp", "post", post.pk, "image", True)]


# public reads ---------------------------------------------------------------------------------------

def test_posts_by_tag_with_or_without_hash_any_case(recording, make_post, api_client, user, other_user):
    dog1, dog2, cat = make_post(seed=1), make_post(owner=other_user, seed=2), make_post(seed=3)
    services.add_tag(dog1, "dog", user)
    services.add_tag(dog2, "#Dog", other_user)
    services.add_tag(cat, "cat", user)
    for query in ("dog", "%23dog", "DOG", "dogs"):
        body = api_client.get(f"{API}posts/?tag={query}").json()
        assert body["count"] == 2, query
        assert {r["pk"] for r in body["results"]} == {str(dog1.pk), str(dog2.pk)}
    row = body["results"][0]
    assert row["content_type"] == "testapp.post" and "#dog" in row["tags"]
    assert row["image_url"].startswith("http://testserver/media/posts/")
    assert api_client.get(f"{API}posts/?tag=unknown").json()["count"] == 0
    assert api_client.get(f"{API}posts/").status_code == 400
    assert api_client.get(f"{API}posts/?tag=dog&model=auth.user").status_code == 400


def test_posts_by_tag_is_paginated(recording, make_post, api_client, user):
    for seed in range(3):
        services.add_tag(make_post(seed=seed), "dog", user)
    first = api_client.get(f"{API}posts/?tag=dog&page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"]
    assert len(api_client.get(first["next"]).json()["results"]) == 1


def test_trending_counts_recent_accepted_uses(recording, make_post, api_client, user):
    posts = [make_post(seed=s) for s in range(3)]
    for post in posts:
        services.add_tag(post, "dog", user)
    services.add_tag(posts[0], "cat", user)
    services.add_tag(posts[1], "beach", user)
    AcceptedTag.objects.filter(hashtag__name="beach").update(created=timezone.now() - timedelta(days=30))
    body = api_client.get(f"{API}trending/?days=7").json()
    assert body == [{"tag": "#dog", "name": "dog", "count": 3}, {"tag": "#cat", "name": "cat", "count": 1}]
    assert {r["name"] for r in api_client.get(f"{API}trending/?days=31").json()} == {"dog", "cat", "beach"}
    assert api_client.get(f"{API}trending/?days=abc").status_code == 400
    assert api_client.get(f"{API}trending/?days=0").status_code == 400


def test_tag_vocabulary_search(recording, api_client, make_post, user):
    post = make_post()
    for name in ("dog", "dogsled", "cat"):
        services.add_tag(post, name, user)
    Hashtag.objects.create(name="doghouse")  # never on any post (issue 17: not public)
    names = [t["name"] for t in api_client.get(f"{API}tags/?search=%23do").json()["results"]]
    assert sorted(names) == ["dog", "dogsled"]


def test_opt_out_endpoint(api_client, user):
    api_client.force_authenticate(user)
    assert api_client.get(f"{API}opt-out/").json() == {"opted_out": False}
    assert api_client.put(f"{API}opt-out/").json() == {"opted_out": True}
    assert api_client.get(f"{API}opt-out/").json() == {"opted_out": True}
    assert api_client.delete(f"{API}opt-out/").json() == {"opted_out": False}


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/hashtags/tag-image/" in text and "/api/hashtags/suggestions/{id}/edit/" in text
    assert client.get("/api/docs/").status_code == 200
