"""Security: each finding of issue 17 as a test that failed before the fix.

The permission matrix runs every API route and admin action as seven people: anonymous, another
user, the post's owner, a staff account without permissions, a view-only staff account, a
moderator (staff holding ``hashtags.change_suggestion`` and the admin's change permissions) and a
superuser. Rows are real database rows; nothing is mocked."""

from __future__ import annotations

import json
import shutil

import pytest

from hashtags import versions
from hashtags.models import AcceptedTag, Hashtag, ImageAnalysis, ModelVersion
from tests.hashtags.fixtures import REVIEWERS, ROLES, as_person, grant

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"

# API ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_api_object_routes_answer_only_owner_and_moderators(suggested, people, api_client, recording, role):
    post, analysis = suggested
    client = as_person(api_client, people[role])
    first, second, third = analysis.suggestions.order_by("rank")
    obj = f"{API}posts/testapp.post/{post.pk}/"
    calls = [
        ("get", obj, None, 200),
        ("get", obj + "suggestions/", None, 200),
        ("get", obj + "tags/", None, 200),
        ("get", f"{API}suggestions/{first.pk}/", None, 200),
        ("post", f"{API}suggestions/{first.pk}/accept/", None, 200),
        ("post", f"{API}suggestions/{second.pk}/reject/", None, 200),
        ("post", f"{API}suggestions/{second.pk}/reset/", None, 200),
        ("post", f"{API}suggestions/{third.pk}/edit/", {"tag": "#puppy"}, 200),
        ("post", obj + "tags/", {"tag": "#mine"}, 201),
        ("delete", obj + "tags/mine/", None, 204),
        ("post", obj + "caption/", {"caption": "a puppy on a lawn"}, 200),
        ("post", obj + "analyze/", None, 202),
    ]
    denied = 401 if role == "anonymous" else 403
    for method, url, body, allowed in calls:
        response = getattr(client, method)(url, body, format="json")
        expected = allowed if role in REVIEWERS else denied
        assert response.status_code == expected, (role, method, url, response.content[:300])
    analysis.refresh_from_db()
    states = sorted(analysis.suggestions.values_list("state", flat=True))
    if role in REVIEWERS:
        # #mine was added (an "added" suggestion), then removed: rejected
        assert states == ["accepted", "edited", "pending", "rejected"] and analysis.corrected_caption == "a puppy on a lawn"
        assert recording == [("testapp", "post", post.pk, "image", True)]
    else:  # nothing changed, nothing queued
        assert states == ["pending"] * 3 and analysis.corrected_caption is None and recording == []
        assert not AcceptedTag.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_api_public_and_signed_in_reads(suggested, people, api_client, role):
    client = as_person(api_client, people[role])
    for url in ("posts/?tag=dog", "trending/", "tags/"):
        assert client.get(API + url).status_code == 200, url
    signed_in = 401 if role == "anonymous" else 200
    assert client.get(API + "models/").status_code == signed_in
    assert client.get(API + "opt-out/").status_code == signed_in


@pytest.fixture
def two_versions(hashtags_config, tiny_artifact, tmp_path):
    """The configured tiny model serves as its own version; a copy relabelled "v2" is registered."""
    from hashtags.inference import reset_captioner

    reset_captioner()
    hashtags_config(MODEL_DIR=str(tiny_artifact), MODEL_CHECK_INTERVAL=3600)
    v1 = versions.serving_version()
    copy = tmp_path / "v2"
    shutil.copytree(tiny_artifact, copy)
    manifest = json.loads((copy / "model.json").read_text())
    manifest["version"] = "v2"
    (copy / "model.json").write_text(json.dumps(manifest))
    v2 = versions.register(copy)
    yield v1, v2
    reset_captioner()


@pytest.mark.parametrize("role", ROLES + ["promoter"])
def test_api_promote_and_rollback_need_the_model_version_permission(two_versions, people, api_client, role,
                                                                    django_user_model):
    v1, v2 = two_versions
    if role == "promoter":  # staff is not needed, the permission is
        people["promoter"] = grant(django_user_model.objects.create_user("promoter"), "promote_modelversion")
    client = as_person(api_client, people[role])
    allowed = role in ("superuser", "promoter")
    denied = 401 if role == "anonymous" else 403
    response = client.post(f"{API}models/{v2.version}/promote/")
    assert response.status_code == (200 if allowed else denied), response.content
    assert versions.serving_version().version == (v2.version if allowed else v1.version)
    response = client.post(f"{API}models/rollback/")
    assert response.status_code == (200 if allowed else denied)
    assert versions.serving_version().version == v1.version


# Admin --------------------------------------------------------------------------------------------

# Who may run which admin action; everyone else sees nothing happen.
ADMIN_ALLOWED = {
    "suggestion": {"moderator", "superuser"},
    "merge": {"moderator", "superuser"},
    "recount": {"moderator", "superuser"},
    "rerun": {"moderator", "superuser"},
    "promote": {"superuser"},
}


def _action(client, url, action, ids, **extra):
    return client.post(url, {"action": action, "_selected_action": [str(i) for i in ids], **extra})


@pytest.mark.parametrize("role", ROLES)
def test_admin_suggestion_actions_need_the_review_permission(suggested, admin_as, role):
    post, analysis = suggested
    client = admin_as(role)
    first, second, third = analysis.suggestions.order_by("rank")
    _action(client, "/admin/hashtags/reviewqueueitem/", "accept_selected", [first.pk])
    _action(client, "/admin/hashtags/suggestion/", "reject_selected", [second.pk])
    _action(client, "/admin/hashtags/suggestion/", "edit_selected", [third.pk], apply="1", tag="#puppy")
    allowed = role in ADMIN_ALLOWED["suggestion"]
    states = [s.state for s in analysis.suggestions.order_by("rank")]
    assert states == (["accepted", "rejected", "edited"] if allowed else ["pending"] * 3), role
    _action(client, "/admin/hashtags/suggestion/", "reset_selected", [first.pk])
    # In place: the change form and the list's editable state column.
    client.post(f"/admin/hashtags/suggestion/{second.pk}/change/", {"state": "accepted", "new_tag": ""})
    client.post("/admin/hashtags/reviewqueueitem/", {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(first.pk),
        "form-0-state": "rejected", "_save": "Save",
    })
    states = [s.state for s in analysis.suggestions.order_by("rank")]
    assert states == (["rejected", "accepted", "edited"] if allowed else ["pending"] * 3), role
    assert AcceptedTag.objects.exists() == allowed


@pytest.mark.parametrize("role", ROLES)
def test_admin_tag_merge_and_recount_need_permissions(suggested, admin_as, role):
    client = admin_as(role)
    dog, grass = Hashtag.objects.get(name="dog"), Hashtag.objects.get(name="grass")
    Hashtag.objects.filter(pk=dog.pk).update(usage_count=99)
    _action(client, "/admin/hashtags/hashtag/", "refresh_usage_counts", [dog.pk])
    dog.refresh_from_db()
    assert dog.usage_count == (0 if role in ADMIN_ALLOWED["recount"] else 99), role
    _action(client, "/admin/hashtags/hashtag/", "merge_selected", [dog.pk, grass.pk], apply="1", target=dog.pk)
    grass.refresh_from_db()
    assert (grass.merged_into_id == dog.pk) == (role in ADMIN_ALLOWED["merge"]), role


@pytest.mark.parametrize("role", ROLES)
def test_admin_rerun_needs_the_review_permission(suggested, admin_as, recording, role,
                                                 django_capture_on_commit_callbacks):
    post, analysis = suggested
    client = admin_as(role)
    with django_capture_on_commit_callbacks(execute=True):
        _action(client, "/admin/hashtags/imageanalysis/", "rerun_selected", [analysis.pk])
    assert bool(recording) == (role in ADMIN_ALLOWED["rerun"]), role


@pytest.mark.parametrize("role", ROLES)
def test_admin_promote_and_rollback_need_the_model_version_permission(two_versions, admin_as, role):
    v1, v2 = two_versions
    client = admin_as(role)
    _action(client, "/admin/hashtags/modelversion/", "promote_selected", [v2.pk])
    allowed = role in ADMIN_ALLOWED["promote"]
    assert versions.serving_version().version == (v2.version if allowed else v1.version), role
    if allowed:
        client.post("/admin/hashtags/modelversion/", {"action": "roll_back", "index": 0})
        assert versions.serving_version().version == v1.version
    else:  # even with the serving version selected for it (what the changelist does itself)
        _action(client, "/admin/hashtags/modelversion/", "roll_back", [v1.pk])
        assert ModelVersion.objects.get(is_serving=True).pk == v1.pk


def test_view_only_staff_sees_the_queue_but_no_actions(suggested, admin_as):
    page = admin_as("viewer").get("/admin/hashtags/reviewqueueitem/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "#dog" in html and "accept_selected" not in html
    page = admin_as("moderator").get("/admin/hashtags/reviewqueueitem/")
    assert "accept_selected" in page.content.decode()


# No pickle from a public folder ---------------------------------------------------------------------

class _Planted:
    """What an attacker plants: unpickling it creates ``marker`` (a harmless stand-in for os.system)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("where", ["configured", "legacy"])
def test_a_planted_pickle_is_never_loaded(settings, hashtags_config, tmp_path, caplog, where):
    import pickle
    from pathlib import Path

    import joblib

    from hashtags import reranker
    from mlcore.captioner import CaptionResult as Result
    from mlcore.extractor import ScoredTag as Found

    marker = tmp_path / "pwned"
    if where == "configured":  # even at the configured path, named as the old default was
        target = tmp_path / "state" / "reranker.joblib"
        hashtags_config(RERANKER_PATH=str(target))
    else:  # the old default location, inside MEDIA_ROOT where uploads go
        target = Path(settings.MEDIA_ROOT) / "hashtags" / "reranker.joblib"
    target.parent.mkdir(parents=True)
    joblib.dump(_Planted(marker), target)
    assert target.read_bytes()[:1] in reranker.PICKLE_MAGIC
    reranker.reset_cache()
    assert not reranker.reranker_path().resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    result = Result(caption="a dog", captions=["a dog"], log_probs=[-1.0], hashtags=[Found("#dog", 0.9, ("caption",))],
                    model_version="tiny", timings={})
    with caplog.at_level("WARNING", logger="hashtags"):
        assert reranker.get_reranker() is None
        assert reranker.apply_to_suggestion(result, None) is result
    assert not marker.exists()  # the pickle never ran
    assert "pickle" in caplog.text and "never" in caplog.text and str(target) in caplog.text
    with pytest.raises(reranker.UnsafeReranker):
        reranker.load(target)
    # A protocol-0 pickle is not JSON either: refused as well.
    target.write_bytes(pickle.dumps(_Planted(marker), protocol=0))
    reranker.reset_cache()
    assert reranker.get_reranker() is None or where == "legacy"
    assert not marker.exists()


def test_reranker_inside_media_root_is_a_check_warning(settings, hashtags_config):
    from hashtags.checks import check_reranker_location

    assert check_reranker_location() == []
    hashtags_config(RERANKER_PATH=f"{settings.MEDIA_ROOT}/hashtags/reranker.json")
    assert [w.id for w in check_reranker_location()] == ["hashtags.W003"]


# Opt-out, what is public -------------------------------------------------------------------


def test_forced_analysis_honours_the_opt_out(suggested, people, api_client, admin_as, recording, user,
                                             django_capture_on_commit_callbacks):
    from hashtags.analysis import run_analysis
    from hashtags.models import HashtagOptOut

    post, analysis = suggested
    HashtagOptOut.objects.create(user=user)
    assert run_analysis("testapp", "post", post.pk, "image", force=True) is None
    api_client.force_authenticate(people["superuser"])
    response = api_client.post(f"{API}posts/testapp.post/{post.pk}/analyze/")
    assert response.status_code == 409 and "opted out" in response.json()["error"]
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_as("superuser").post("/admin/hashtags/imageanalysis/", {
            "action": "rerun_selected", "_selected_action": [analysis.pk]}, follow=True)
    assert "opted out" in page.content.decode()
    assert recording == [] and ImageAnalysis.objects.count() == 1


def test_public_vocabulary_lists_used_tags_only(suggested, api_client, user):
    from hashtags import services

    post, analysis = suggested
    services.add_tag(post, "sunset", user)
    services.add_tag(post, "secret", user)
    services.remove_tag(post, Hashtag.objects.get(name="secret"), user)
    names = [row["name"] for row in api_client.get(f"{API}tags/").json()["results"]]
    assert names == ["sunset"]  # not the pending suggestions, not the removed tag


# Throttling ---------------------------------------------------------------------------------------

def _bad_image():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {"image": SimpleUploadedFile("x.jpg", b"not an image", content_type="image/jpeg")}


def test_a_spoofed_x_forwarded_for_gets_no_fresh_bucket(model, api_client, hashtags_config):
    hashtags_config(TAG_IMAGE_THROTTLE="2/hour")
    codes = [api_client.post(API + "tag-image/", _bad_image(), format="multipart",
                             HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(4)]
    assert codes == [400, 400, 429, 429]


def test_behind_one_proxy_the_address_it_saw_counts(model, api_client, hashtags_config):
    hashtags_config(TAG_IMAGE_THROTTLE="1/hour", NUM_PROXIES=1)

    def call(forwarded):
        return api_client.post(API + "tag-image/", _bad_image(), format="multipart",
                               HTTP_X_FORWARDED_FOR=forwarded).status_code

    # The client writes the left part; the proxy appends the address it saw (the last entry).
    assert call("1.1.1.1, 198.51.100.7") == 400
    assert call("2.2.2.2, 198.51.100.7") == 429  # same client, spoofed prefix: same bucket
    assert call("198.51.100.8") == 400  # another client


def test_throttle_counters_live_in_the_shared_cache(model, api_client, hashtags_config, settings):
    import os

    import redis

    url = os.environ.get("HASHTAGS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    settings.CACHES = {**settings.CACHES, "shared": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "test-security"}}
    hashtags_config(TAG_IMAGE_THROTTLE="2/hour", THROTTLE_CACHE="shared")
    server = redis.Redis.from_url(url)
    for key in server.scan_iter("test-security:*"):
        server.delete(key)
    try:
        assert api_client.post(API + "tag-image/", _bad_image(), format="multipart").status_code == 400
        keys = {k.decode() for k in server.scan_iter("test-security:*")}
        assert any("throttle_hashtags_tag_image" in k for k in keys), keys
        # Another process (here: a separate connection to the same Redis) sees the same count.
        from django.core.cache.backends.redis import RedisCache

        other = RedisCache(url, {"KEY_PREFIX": "test-security"})
        history = other.get("throttle_hashtags_tag_image_127.0.0.1")
        assert history is not None and len(history) == 1
        other.set("throttle_hashtags_tag_image_127.0.0.1", history * 2, 3600)  # the other process's call
        assert api_client.post(API + "tag-image/", _bad_image(), format="multipart").status_code == 429
    finally:
        for key in server.scan_iter("test-security:*"):
            server.delete(key)


def test_the_rest_of_the_api_is_throttled(api_client, hashtags_config, user):
    hashtags_config(API_THROTTLE="3/hour")
    assert [api_client.get(API + "tags/").status_code for _ in range(4)] == [200, 200, 200, 429]
    api_client.force_authenticate(user)  # signed in: counted per user, not per address
    assert [api_client.get(API + "opt-out/").status_code for _ in range(4)] == [200, 200, 200, 429]


# Bounded work per tag-image/ request -------------------------------------------------------------

def test_tag_image_refuses_a_large_body_before_reading_it(api_client, hashtags_config):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    hashtags_config(MAX_UPLOAD_BYTES=1000)
    body = encode_multipart(BOUNDARY, {"image": SimpleUploadedFile("x.jpg", b"\xff" * 200_000)})
    response = api_client.generic("POST", API + "tag-image/", body, content_type=MULTIPART_CONTENT)
    assert response.status_code == 413 and "request is too large" in response.json()["error"]
    # The view answered from Content-Length alone: the parsed body was never touched.
    assert not hasattr(response.wsgi_request, "_files")


def test_tag_image_has_its_own_pixel_limit(model, api_client, hashtags_config):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (600, 500), 128).save(buffer, format="PNG")
    hashtags_config(TAG_IMAGE_MAX_PIXELS=200_000)
    response = api_client.post(API + "tag-image/", {"image": SimpleUploadedFile("x.png", buffer.getvalue())},
                               format="multipart")
    assert response.status_code == 400 and "600x500 pixels (limit 0.2 megapixels)" in response.json()["error"]
    hashtags_config(TAG_IMAGE_MAX_PIXELS=400_000)
    response = api_client.post(API + "tag-image/", {"image": SimpleUploadedFile("x.png", buffer.getvalue())},
                               format="multipart")
    assert response.status_code == 200 and response.json()["timings"]["load_s"] >= 0


def test_tag_image_can_be_for_signed_in_users_only(model, api_client, hashtags_config, user):
    hashtags_config(TAG_IMAGE_PERMISSION_CLASSES=["rest_framework.permissions.IsAuthenticated"])
    assert api_client.post(API + "tag-image/", _bad_image(), format="multipart").status_code == 401
    api_client.force_authenticate(user)
    assert api_client.post(API + "tag-image/", _bad_image(), format="multipart").status_code == 400
