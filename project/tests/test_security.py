"""The demo site's share of the security findings (issue 17): its pages follow the API's rules,
its upload form refuses what is not an image, every login form is throttled, and its settings are
safe by default (DEBUG off, no published key, ``check --deploy`` clean)."""

from __future__ import annotations

import pytest

from hashtags.models import ImageAnalysis
from project.posts.models import Post
from tests.hashtags.fixtures import REVIEWERS, ROLES, as_person

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"


@pytest.mark.parametrize("role", ROLES)
def test_demo_review_controls_follow_the_same_rule(suggested, admin_as, role):
    post, analysis = suggested
    client = admin_as(role)
    first = analysis.suggestions.order_by("rank").first()
    page = client.get(f"/posts/{post.pk}/").content.decode()
    reviewer = role in REVIEWERS
    assert ("Suggestions</h2>" in page) == reviewer, role
    response = client.post(f"/posts/{post.pk}/suggestions/{first.pk}/accept/")
    first.refresh_from_db()
    assert first.state == ("accepted" if reviewer else "pending"), role
    if role != "anonymous" and not reviewer:
        assert response.status_code == 403
    response = client.post(f"/posts/{post.pk}/delete/")
    assert Post.objects.filter(pk=post.pk).exists() == (role not in ("owner", "superuser")), role


def _gif_with_html() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="GIF")
    return buffer.getvalue() + b"<html><script>alert(document.cookie)</script></html>"


@pytest.mark.parametrize("name, data, error", [
    ("invoice.pdf", _gif_with_html(), "are not accepted"),
    ("page.html", _gif_with_html(), "“html” is not allowed"),  # Django's own check already refuses this one
    ("photo.jpg", _gif_with_html(), "is a GIF image but is named .jpg"),
])
def test_demo_upload_refuses_non_image_names(client, recording, user, name, data, error):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(user)
    response = client.post("/posts/new/", {"image": SimpleUploadedFile(name, data, "image/gif"), "text": ""})
    assert response.status_code == 200 and error in response.content.decode()
    assert not Post.objects.exists()
    ok = client.post("/posts/new/", {"image": SimpleUploadedFile("red.gif", data, "image/gif"), "text": ""})
    assert ok.status_code == 302 and Post.objects.get().image.name.endswith(".gif")


@pytest.mark.parametrize("role", ROLES)
def test_demo_pages_show_analysis_only_to_those_the_api_shows_it_to(suggested, admin_as, api_client, people, role):
    post, analysis = suggested
    analysis.corrected_caption = "a puppy on a lawn"
    analysis.save()
    client = admin_as(role)
    page = client.get(f"/posts/{post.pk}/").content.decode()
    status = client.get(f"/posts/{post.pk}/status/")
    api = as_person(api_client, people[role]).get(f"{API}posts/posts.post/{post.pk}/")
    shown = role in REVIEWERS
    assert (api.status_code == 200) == shown
    for text in ("a puppy on a lawn", "a dog on grass", 'id="analysis-status"', "tiny-1"):
        assert (text in page) == shown, (role, text)
    assert status.status_code == (200 if shown else 403)
    if shown:
        assert status.json()["status"] == "done"


def test_sign_in_is_throttled_on_every_login_form(client, hashtags_config, user):
    hashtags_config(LOGIN_THROTTLE="3/hour")
    wrong = {"username": "owner", "password": "guess"}
    codes = [client.post(url, wrong, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
             for i, url in enumerate(["/accounts/login/", "/admin/login/", "/api-auth/login/", "/accounts/login/"])]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    assert client.post("/admin/login/", {"username": "owner", "password": "pw-owner-123"}).status_code == 429


def _run_django(args: list[str], **env: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    clean.update(DJANGO_SETTINGS_MODULE="project.settings", TF_CPP_MIN_LOG_LEVEL="3", **env)
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, *args], cwd=root, env=clean, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("key", [None, "demo-only-insecure-key-change-me", "change-me-in-production"])
def test_debug_is_off_by_default_and_the_published_key_is_refused(key):
    env = {} if key is None else {"DJANGO_SECRET_KEY": key}
    probe = ["-c", "import django; django.setup(); from django.conf import settings; print('DEBUG', settings.DEBUG)"]
    refused = _run_django(probe, **env)
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY" in refused.stderr and "DEBUG is off" in refused.stderr
    demo = _run_django(probe, DJANGO_DEBUG="1", **env)  # what `make demo` sets
    assert demo.returncode == 0 and "DEBUG True" in demo.stdout, demo.stderr[-2000:]


def test_check_deploy_is_clean_with_the_documented_production_variables():
    from django.core.management.utils import get_random_secret_key

    production = {
        "DJANGO_SECRET_KEY": get_random_secret_key(), "DJANGO_ALLOWED_HOSTS": "hashtags.example.com",
        "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "1", "DJANGO_HSTS_PRELOAD": "1",
    }
    result = _run_django(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **production)
    assert result.returncode == 0 and "no issues" in result.stdout, result.stdout + result.stderr[-3000:]


def test_compose_does_not_answer_to_any_host():
    from pathlib import Path

    compose = (Path(__file__).resolve().parents[2] / "docker" / "docker-compose.yml").read_text()
    assert 'DJANGO_ALLOWED_HOSTS: "*"' not in compose and "change-me-in-production" not in compose
    assert "${DJANGO_SECRET_KEY:?" in compose


def test_the_demos_analyze_button_honours_the_opt_out(suggested, admin_as, recording, user):
    from hashtags.models import HashtagOptOut

    post, _analysis = suggested
    HashtagOptOut.objects.create(user=user)
    page = admin_as("superuser").post(f"/posts/{post.pk}/analyze/", follow=True)
    assert "opted out" in page.content.decode()
    assert recording == [] and ImageAnalysis.objects.count() == 1
