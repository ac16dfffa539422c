"""The model registry with real tiny artifacts: register/promote/rollback, one serving version,
MODEL_DIR precedence, per-version statistics from real decisions, the API, the command, the admin,
and workers switching to a promoted version without a restart."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from hashtags import services, versions
from hashtags.analysis import run_analysis
from hashtags.inference import get_captioner, reset_captioner
from hashtags.models import ModelVersion, Suggestion

pytestmark = pytest.mark.django_db

API = "/api/hashtags/"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Two real tiny models with their own versions (v2 trained shorter: a different model)."""
    from mlcore.testing import make_tiny_artifact

    root = tmp_path_factory.mktemp("registry")
    return {
        "v1": make_tiny_artifact(root / "v1", version="v1"),
        "v2": make_tiny_artifact(root / "v2", version="v2", epochs=30, seed=1),
    }


@pytest.fixture
def v1_configured(hashtags_config, artifacts):
    """MODEL_DIR points at v1 (as an existing install would); analyses run inline."""
    reset_captioner()
    hashtags_config(EXECUTOR="sync", MODEL_DIR=str(artifacts["v1"]), MIN_SCORE=0.0, MODEL_CHECK_INTERVAL=3600)
    yield artifacts
    reset_captioner()


def analyse(post):
    return run_analysis("testapp", "post", post.pk, "image")


# Registry -----------------------------------------------------------------------------------------

def test_configured_model_is_registered_and_served_on_first_use(v1_configured):
    assert not ModelVersion.objects.exists()
    row = versions.serving_version()
    assert (row.version, row.is_serving, row.serving_reason, row.encoder) == ("v1", True, "settings", "efficientnet_lite0")
    assert row.path == str(v1_configured["v1"].resolve())
    assert versions.serving_version().pk == row.pk and ModelVersion.objects.count() == 1


def test_register_promote_rollback_keep_exactly_one_serving(v1_configured, staff_user):
    v1 = versions.serving_version()
    v2 = versions.register(v1_configured["v2"], notes="fine-tuned", user=staff_user, metrics={"feedback": {"p@5": 0.4}})
    assert (v2.version, v2.is_serving, v2.registered_by, v2.metrics) == ("v2", False, staff_user, {"feedback": {"p@5": 0.4}})
    assert versions.register(v1_configured["v2"]).pk == v2.pk  # idempotent

    promoted = versions.promote("v2", staff_user)
    assert promoted.is_serving and promoted.previous == v1 and promoted.promoted_by == staff_user
    assert list(ModelVersion.objects.filter(is_serving=True).values_list("version", flat=True)) == ["v2"]
    assert versions.serving_version().version == "v2"

    restored = versions.rollback(staff_user)
    assert restored.version == "v1" and restored.serving_reason == "rollback"
    assert list(ModelVersion.objects.filter(is_serving=True).values_list("version", flat=True)) == ["v1"]
    with pytest.raises(versions.VersionError, match="no previous version"):
        versions.rollback()  # v1 was the first: history ends there


def test_database_refuses_a_second_serving_version(v1_configured):
    versions.serving_version()
    v2 = versions.register(v1_configured["v2"])
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=v2.pk).update(is_serving=True)


def test_register_rejects_bad_directories_and_version_clashes(v1_configured, tmp_path):
    from mlcore.artifact import ArtifactError

    with pytest.raises(ArtifactError, match="not found"):
        versions.register(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="model.json is missing"):
        versions.register(tmp_path / "empty")
    versions.register(v1_configured["v1"])
    import shutil

    copy = shutil.copytree(v1_configured["v1"], tmp_path / "copy-of-v1")
    with pytest.raises(versions.VersionError, match="already registered"):
        versions.register(copy)
    with pytest.raises(versions.VersionError, match="no registered model version 'v9'"):
        versions.promote("v9")


def test_promoted_version_wins_over_model_dir_until_then_settings_decide(v1_configured, hashtags_config):
    versions.serving_version()
    versions.register(v1_configured["v2"])
    hashtags_config(MODEL_DIR=str(v1_configured["v2"]))  # nobody promoted anything: settings decide
    row = versions.serving_version()
    assert (row.version, row.serving_reason, row.previous.version) == ("v2", "settings", "v1")
    versions.promote("v1")
    hashtags_config(MODEL_DIR=str(v1_configured["v2"]))
    assert versions.serving_version().version == "v1"  # pinned by the promotion


def test_promote_refuses_an_artifact_that_is_gone(v1_configured, tmp_path):
    import shutil

    copy = shutil.copytree(v1_configured["v2"], tmp_path / "v2-copy")
    versions.serving_version()
    versions.register(copy)
    shutil.rmtree(copy)
    with pytest.raises(versions.VersionError, match="cannot promote v2: model directory not found"):
        versions.promote("v2")
    assert versions.serving_version().version == "v1"


# Workers pick up a promotion ----------------------------------------------------------------------

def test_worker_switches_to_a_promoted_version_without_restart(
    v1_configured, make_post, hashtags_config, django_capture_on_commit_callbacks
):
    first = get_captioner()
    assert first.model_version == "v1"
    assert analyse(make_post(seed=1)).model_version == "v1"

    versions.register(v1_configured["v2"])
    # Promoted from "another process": this one has not been told (the on_commit hook did not run).
    ModelVersion.objects.update(is_serving=False)
    ModelVersion.objects.filter(version="v2").update(is_serving=True, serving_reason="promoted")
    assert get_captioner() is first  # within MODEL_CHECK_INTERVAL the cached answer stands
    assert get_captioner(refresh=True).model_version == "v2"  # what every task start does

    hashtags_config(MODEL_CHECK_INTERVAL=0)  # a process that checks on every call
    ModelVersion.objects.update(is_serving=False)
    ModelVersion.objects.filter(version="v1").update(is_serving=True, serving_reason="promoted")
    assert get_captioner().model_version == "v1"

    # A new analysis (a task) stores the promoted version on the analysis and its suggestions.
    hashtags_config(MODEL_CHECK_INTERVAL=3600)
    with django_capture_on_commit_callbacks(execute=True):
        versions.promote("v2")
    assert get_captioner().model_version == "v2"  # this process was told at commit
    analysis = analyse(make_post(seed=2))
    assert analysis.status == "done" and analysis.model_version == "v2"
    assert set(analysis.suggestions.values_list("model_version", flat=True)) == {"v2"}


def test_captioner_follows_model_dir_without_a_database(v1_configured):
    """Code that may not touch the database still gets the configured model."""
    from hashtags import inference

    with pytest.MonkeyPatch.context() as patch:
        def no_database():
            raise RuntimeError("database access not allowed")

        patch.setattr(versions, "serving_target", no_database)
        assert inference.get_captioner(refresh=True).model_version == "v1"


def test_decoder_precision_setting_reaches_the_loaded_model(v1_configured, hashtags_config):
    from hashtags import inference

    hashtags_config(DECODER_PRECISION="float32")
    assert inference.get_captioner().step_decoder.precision == "float32"
    hashtags_config(DECODER_PRECISION="bfloat16")
    assert inference.get_captioner().step_decoder.precision == "bfloat16"  # reloaded



def test_tag_views_setting_reaches_the_loaded_model(v1_configured, hashtags_config, tmp_path):
    import shutil

    from hashtags import inference
    from mlcore.tag_head import TagHead, build_tag_head_model, save_tag_head

    with_head = tmp_path / "with-head"
    shutil.copytree(v1_configured["v1"], with_head)
    save_tag_head(with_head, TagHead(["dog", "ball"], build_tag_head_model(1280, 2, 0, 0.0), 0,
                                     0.0, views=("plain", "flipped", "corner0")))
    hashtags_config(MODEL_DIR=str(with_head))
    assert inference.get_captioner(refresh=True).tag_head.views == ("plain", "flipped",
                                                                    "corner0")
    hashtags_config(TAG_VIEWS=["plain"])  # one encoder pass per image
    assert inference.get_captioner().tag_head.views == ("plain",)  # reloaded


def test_extra_tag_heads_setting_reaches_the_loaded_model(v1_configured, hashtags_config,
                                                          tmp_path):
    import shutil

    from hashtags import inference
    from mlcore.tag_head import TagHead, build_tag_head_model, member_dir, save_tag_head

    with_heads = tmp_path / "with-heads"
    shutil.copytree(v1_configured["v1"], with_heads)
    save_tag_head(with_heads, TagHead(["dog"], build_tag_head_model(1280, 1, 0, 0.0), 0, 0.0))
    member_dir(with_heads, "efficientnet_lite2").mkdir()
    save_tag_head(member_dir(with_heads, "efficientnet_lite2"), TagHead(
        ["dog"], build_tag_head_model(1280, 1, 0, 0.0), 0, 0.0, encoder="efficientnet_lite2"))
    hashtags_config(MODEL_DIR=str(with_heads))
    extra = inference.get_captioner(refresh=True).extra_heads
    assert [head.encoder for head, _ in extra] == ["efficientnet_lite2"]
    hashtags_config(EXTRA_TAG_HEADS=False)  # one backbone per image
    assert inference.get_captioner().extra_heads == []  # reloaded
    assert inference.get_captioner().classifier is True
    hashtags_config(CLASSIFIER_TAGS=False)
    assert inference.get_captioner().classifier is False  # reloaded without the ImageNet classes

# Statistics ---------------------------------------------------------------------------------------

def _decide(make_post, user, seed, decisions):
    """Analyse a new post and decide its first suggestions: 'a'ccept, 'r'eject, 'e'dit."""
    analysis = analyse(make_post(seed=seed))
    suggestions = list(analysis.suggestions.order_by("rank"))
    assert len(suggestions) >= len(decisions), "the tiny model suggests enough tags"
    for suggestion, decision in zip(suggestions, decisions):
        if decision == "a":
            services.accept(suggestion, user)
        elif decision == "r":
            services.reject(suggestion, user)
        else:
            services.edit(suggestion, "#puppy" if suggestion.hashtag.name != "puppy" else "#kitten", user)
    return analysis


def test_stats_per_version_from_real_decisions(v1_configured, make_post, user, django_capture_on_commit_callbacks):
    a1 = _decide(make_post, user, 1, "aar")    # v1: 2 accepted, 1 rejected
    a2 = _decide(make_post, user, 2, "ea")     #     1 edited, 1 accepted
    services.add_tag(a2.content_object, "#sunset", user)  # added by a person: no model's suggestion
    versions.register(v1_configured["v2"])
    with django_capture_on_commit_callbacks(execute=True):
        versions.promote("v2")
    _decide(make_post, user, 3, "r")           # v2: 2 rejected, on two posts
    _decide(make_post, user, 5, "r")
    auto = analyse(make_post(seed=7))
    services.accept(auto.suggestions.first(), None)  # no person decided: not counted

    # A known decision delay: the v1 decisions came 60 s / 120 s after their analyses finished.
    for analysis, seconds in ((a1, 60), (a2, 120)):
        Suggestion.objects.filter(analysis=analysis, decided_by=user).update(
            decided_at=analysis.finished + timedelta(seconds=seconds))

    stats = versions.version_stats()
    v1, v2 = stats["v1"], stats["v2"]
    assert (v1["decided"], v1["accepted"], v1["rejected"], v1["edited"], v1["posts"]) == (5, 3, 1, 1, 2)
    assert v1["acceptance_rate"] == pytest.approx(3 / 5)
    assert v1["edits_per_post"] == pytest.approx(1 / 2)
    assert v1["mean_decision_seconds"] == pytest.approx((3 * 60 + 2 * 120) / 5, abs=0.01)
    assert (v2["decided"], v2["accepted"], v2["posts"], v2["acceptance_rate"], v2["edits_per_post"]) == (2, 0, 3, 0.0, 0.0)
    assert 0 <= v2["mean_decision_seconds"] < 600

    # Undoing a decision takes it out again.
    services.reset(a1.suggestions.filter(state="rejected").get(), user)
    assert versions.version_stats()["v1"]["acceptance_rate"] == pytest.approx(3 / 4)


def test_stats_of_a_version_nobody_reviewed(v1_configured):
    versions.serving_version()
    assert versions.version_stats()["v1"] == {
        "decided": 0, "accepted": 0, "rejected": 0, "edited": 0, "posts": 0,
        "acceptance_rate": None, "edits_per_post": None, "mean_decision_seconds": None,
    }


# API ----------------------------------------------------------------------------------------------

def test_api_lists_versions_with_stats(v1_configured, api_client, user, make_post):
    _decide(make_post, user, 1, "ar")
    versions.register(v1_configured["v2"], notes="candidate")
    assert api_client.get(API + "models/").status_code in (401, 403)  # anonymous
    api_client.force_authenticate(user)
    response = api_client.get(API + "models/")
    assert response.status_code == 200
    by_version = {row["version"]: row for row in response.json()}
    assert by_version["v1"]["serving"] is True and by_version["v2"]["serving"] is False
    assert by_version["v1"]["stats"]["acceptance_rate"] == pytest.approx(0.5)
    assert by_version["v1"]["stats"]["decided"] == 2 and by_version["v1"]["stats"]["posts"] == 1
    assert by_version["v2"]["notes"] == "candidate" and by_version["v2"]["stats"]["acceptance_rate"] is None


def test_api_promotion_needs_the_promote_permission(v1_configured, api_client, user, staff_user):
    from django.contrib.auth.models import Permission

    versions.serving_version()
    versions.register(v1_configured["v2"])
    for person in (user, staff_user):  # staff status alone is not enough (issue 17)
        api_client.force_authenticate(person)
        assert api_client.post(API + "models/v2/promote/").status_code == 403
        assert api_client.post(API + "models/rollback/").status_code == 403
    assert versions.serving_version().version == "v1"

    staff_user.user_permissions.add(Permission.objects.get(codename="promote_modelversion"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)
    api_client.force_authenticate(staff_user)
    response = api_client.post(API + "models/v2/promote/")
    assert response.status_code == 200, response.content
    assert response.json()["serving"] is True and response.json()["previous"] == "v1"
    assert versions.serving_version().version == "v2"
    assert ModelVersion.objects.get(version="v2").promoted_by == staff_user
    assert api_client.post(API + "models/v9/promote/").status_code == 404
    response = api_client.post(API + "models/rollback/")
    assert response.status_code == 200 and response.json()["version"] == "v1"


# Command ------------------------------------------------------------------------------------------

def test_command_register_promote_list_rollback(v1_configured, tmp_path):
    out = StringIO()
    metrics = tmp_path / "eval.json"
    metrics.write_text(json.dumps({"feedback": {"tag_precision@5": 0.5}}))
    call_command("hashtags_models", "register", str(v1_configured["v2"]), "--promote", "--metrics", str(metrics),
                 stdout=out)
    assert "registered v2" in out.getvalue() and "v2 now serves" in out.getvalue()
    assert ModelVersion.objects.get(version="v2").metrics["feedback"] == {"tag_precision@5": 0.5}

    out = StringIO()
    call_command("hashtags_models", "list", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["VERSION", "ENCODER", "DECIDED"]
    assert any(line.startswith("*") and " v2 " in line for line in lines)
    assert "* serving: v2 (promoted)" in out.getvalue()

    out = StringIO()
    call_command("hashtags_models", "rollback", stdout=out)
    assert "v1 serves again" in out.getvalue() and versions.serving_version().version == "v1"
    with pytest.raises(CommandError, match="no registered model version"):
        call_command("hashtags_models", "promote", "nope")
    with pytest.raises(CommandError, match="not found"):
        call_command("hashtags_models", "register", str(tmp_path / "missing"))


# Admin --------------------------------------------------------------------------------------------

@pytest.fixture
def admin_client(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client.force_login(admin_user)
    return client


def test_admin_lists_stats_and_promotes_and_rolls_back(v1_configured, admin_client, user, make_post):
    _decide(make_post, user, 1, "aar")
    v2 = versions.register(v1_configured["v2"])
    v1 = ModelVersion.objects.get(version="v1")
    page = admin_client.get("/admin/hashtags/modelversion/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "v1" in html and "v2" in html and "67%" in html  # 2 of 3 accepted
    for url in (f"/admin/hashtags/modelversion/{v1.pk}/change/", "/admin/hashtags/modelversion/add/",
                "/admin/hashtags/modelversion/?o=4"):
        assert admin_client.get(url).status_code == 200, url

    admin_client.post("/admin/hashtags/modelversion/", {"action": "promote_selected", "_selected_action": [v2.pk]})
    assert versions.serving_version().version == "v2"
    admin_client.post("/admin/hashtags/modelversion/", {"action": "roll_back", "index": 0})  # no selection needed
    assert versions.serving_version().version == "v1"


def test_admin_add_registers_an_artifact(v1_configured, admin_client, tmp_path):
    bad = admin_client.post("/admin/hashtags/modelversion/add/", {"path": str(tmp_path), "notes": ""})
    assert bad.status_code == 200 and "model.json is missing" in bad.content.decode()
    admin_client.post("/admin/hashtags/modelversion/add/", {"path": str(v1_configured["v2"]), "notes": "from admin"})
    row = ModelVersion.objects.get(version="v2")
    assert row.notes == "from admin" and not row.is_serving and row.registered_by.username == "admin"
