"""The API's one error shape and its schema as a contract (issue 14): every error, DRF's own
included, is ``{"error", "code"[, "fields"]}``; the schema documents every status and states the
constraints the server applies, so a request the schema allows is never refused."""

import random
import re
import string

import pytest
import yaml
from django.core.management import call_command
from rest_framework.exceptions import Throttled

from hashtags.api.exceptions import error_body
from hashtags.models import ModelVersion
from mlcore.extractor import MAX_TAG_LENGTH, TAG_PATTERN

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) <= {"error", "code", "fields"} and body["error"] and body["code"] == code, body
    return body


# one error shape ---------------------------------------------------------------------------------

def test_drf_errors_have_the_one_shape(api_client, user, make_post):
    response = api_client.get(API + "posts/testapp.post/1/")
    assert_error(response, 401, "not_authenticated")
    assert response.has_header("WWW-Authenticate")
    api_client.force_authenticate(user)
    assert_error(api_client.get(API + "posts/nope.nope/1/"), 404, "not_found")
    assert_error(api_client.get(API + "suggestions/999999/"), 404, "not_found")
    assert_error(api_client.patch(API + "opt-out/"), 405, "method_not_allowed")
    post = make_post(seed=1)
    assert_error(api_client.post(f"{API}posts/testapp.post/{post.pk}/tags/", "x", content_type="text/plain"),
                 415, "unsupported_media_type")


def test_unknown_paths_under_the_api_answer_json_404(api_client):
    for path in ("nothing/", "suggestions/abc/accept/", "suggestions/1%0A/accept/", ""):
        assert_error(api_client.get(API + path), 404, "not_found")


def test_validation_errors_name_their_fields(api_client, user, make_post):
    api_client.force_authenticate(user)
    post = make_post(seed=1)
    body = assert_error(api_client.post(f"{API}posts/testapp.post/{post.pk}/tags/", {"tag": "!!"}, format="json"),
                        400, "invalid_tag")
    assert list(body["fields"]) == ["tag"] and body["error"].startswith("tag: ")
    body = assert_error(api_client.get(API + "trending/?limit=0"), 400, "min_value")
    assert list(body["fields"]) == ["limit"]
    assert_error(api_client.get(API + "tags/?page_size=0"), 400, "invalid_page_size")
    assert_error(api_client.get(API + "posts/?tag=dog&model="), 400, "invalid_choice")
    assert_error(api_client.get(API + "posts/"), 400, "required")
    assert_error(api_client.get(API + "trending/?days="), 400, "invalid")  # blank is not "absent"


def test_a_state_conflict_is_409(api_client, staff_user, model):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(Permission.objects.get(codename="promote_modelversion"))
    api_client.force_authenticate(staff_user)
    assert api_client.get(API + "models/").status_code == 200  # registers the serving version
    assert ModelVersion.objects.count() == 1
    assert_error(api_client.post(API + "models/rollback/"), 409, "no_previous_version")


def test_throttled_body_keeps_the_shape_and_the_wait():
    body = error_body(Throttled(wait=7))
    assert body["code"] == "throttled" and "7 seconds" in body["error"]


# the schema states what the server does -------------------------------------------------------

@pytest.fixture(scope="module")
def schema(django_db_blocker, tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--file", str(path), "--validate", "--fail-on-warn")
    return yaml.safe_load(path.read_text())


def operations(schema):
    for path, methods in schema["paths"].items():
        if path.startswith("/api/hashtags/"):
            for method, operation in methods.items():
                yield path, method, operation


def test_every_operation_documents_its_errors_with_the_error_component(schema):
    found = 0
    for path, method, operation in operations(schema):
        found += 1
        statuses = set(operation["responses"])
        assert {"401", "403", "406", "429"} <= statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        if "requestBody" in operation:
            assert {"400", "415"} <= statuses, (method, path)
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert found >= 20
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "error"]


def test_the_schema_states_the_constraints(schema):
    paths = schema["paths"]
    params = {p["name"]: p for p in paths["/api/hashtags/posts/"]["get"]["parameters"]}
    assert params["tag"]["required"] and params["tag"]["schema"]["pattern"] == TAG_PATTERN
    assert params["model"]["schema"]["enum"] == ["testapp.post"]
    trending = {p["name"]: p["schema"] for p in paths["/api/hashtags/trending/"]["get"]["parameters"]}
    assert trending["limit"]["minimum"] == 1 and trending["limit"]["maximum"] == 100
    detail = {p["name"]: p["schema"] for p in paths["/api/hashtags/posts/{content_type}/{id}/"]["get"]["parameters"]}
    assert detail["content_type"]["enum"] == ["testapp.post"]
    assert schema["components"]["schemas"]["TagImageRequestRequest"]["properties"]["image"]["minLength"] == 1
    assert "409" in paths["/api/hashtags/models/rollback/"]["post"]["responses"]


def test_a_tag_the_pattern_allows_is_taken_and_one_it_refuses_is_refused(api_client, user, make_post):
    """The server's tag rule is the schema's pattern: sampled on both sides of it."""
    api_client.force_authenticate(user)
    post = make_post(seed=2)
    url = f"{API}posts/testapp.post/{post.pk}/tags/"
    rng = random.Random(3)
    alphabet = string.ascii_letters + string.digits + "#-_ é!"
    samples = ["ab", "a1", "1a", "608s", "ies", "#Dogs", "a", "11", "#", "a-b", " ab", "é1", "x" * MAX_TAG_LENGTH,
               "x" * (MAX_TAG_LENGTH + 1)]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(40)]
    for text in samples:
        allowed = bool(re.match(TAG_PATTERN, text)) and len(text) <= MAX_TAG_LENGTH
        status = api_client.post(url, {"tag": text}, format="json").status_code
        assert status == (201 if allowed else 400), (text, status)
