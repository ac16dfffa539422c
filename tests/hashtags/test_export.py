"""Caption corrections (service, API) and the feedback export in the Flickr8k layout."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from hashtags import services
from hashtags.export import TagDecisions, feedback_caption, held_back
from hashtags.models import Hashtag, ImageAnalysis, Suggestion
from hashtags.watched import content_type_for
from tests.hashtags import support
from training.flickr8k import Flickr8k

pytestmark = pytest.mark.django_db
API = "/api/hashtags/"
DOG = "a black dog runs through the grass"


def analysed(post, caption=DOG, tags=("black", "dog", "running", "grass"), version="tiny-test") -> ImageAnalysis:
    """A done analysis as the captioner stores it (the real model is exercised in test_loop)."""
    post.image.open("rb")
    data = post.image.read()
    analysis = ImageAnalysis.objects.create(
        content_type=content_type_for(post), object_id=str(post.pk), field_name="image", image_name=post.image.name,
        image_sha256=hashlib.sha256(data).hexdigest(), model_version=version, status="done",
        caption=caption, captions=[caption, caption.replace("a ", "the ", 1)],
    )
    for rank, name in enumerate(tags, start=1):
        Suggestion.objects.create(analysis=analysis, hashtag=Hashtag.objects.get_or_create_normalized(name)[0],
                                  rank=rank, score=1 - rank / 10, model_version=version)
    return analysis


def suggestion(analysis, name) -> Suggestion:
    return analysis.suggestions.get(hashtag__name=name)


# The caption rule -------------------------------------------------------------------------------------

def test_caption_rule_keeps_accepted_drops_rejected_and_applies_edits():
    decisions = TagDecisions(accepted={"black", "puppy"}, rejected={"grass"}, edited={"dog": "puppy"})
    assert feedback_caption(DOG, decisions) == "a black puppy runs through the"
    # Plural words follow their tag; undecided content words stay.
    assert feedback_caption("two dogs play on the grass", TagDecisions(rejected={"dog"})) == "two play on the grass"
    # Nothing that could be a tag left: no caption.
    assert feedback_caption("a dog", TagDecisions(rejected={"dog"})) is None


# Caption corrections ------------------------------------------------------------------------------------

def test_owner_corrects_the_caption_through_the_api(recording, make_post, user, other_user, api_client):
    post = make_post()
    analysis = analysed(post)
    url = f"{API}posts/testapp.post/{post.pk}/caption/"
    api_client.force_authenticate(other_user)
    assert api_client.post(url, {"caption": "a puppy"}, format="json").status_code == 403
    api_client.force_authenticate(user)
    for body, message in [({"caption": "   "}, "caption"), ({}, "caption"), ({"caption": "x" * 501}, "500"),
                          ({"caption": "!!! 42"}, "at least one word")]:
        response = api_client.post(url, body, format="json")
        assert response.status_code == 400 and message in response.json()["error"], response.json()
    response = api_client.post(url, {"caption": "  a black puppy\nruns in the park "}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["corrected_caption"] == "a black puppy runs in the park"
    analysis.refresh_from_db()
    assert analysis.corrected_caption == "a black puppy runs in the park"
    assert analysis.corrected_by == user and analysis.corrected_at is not None
    assert analysis.caption == DOG  # the model's caption is kept beside the correction
    response = api_client.delete(url)
    assert response.status_code == 200 and response.json()["corrected_caption"] is None
    api_client.logout()
    api_client.force_authenticate(None)
    assert api_client.post(url, {"caption": "a dog"}, format="json").status_code == 401


def test_caption_of_a_post_without_analysis_is_a_conflict(recording, make_post, user, api_client):
    post = make_post()
    api_client.force_authenticate(user)
    response = api_client.post(f"{API}posts/testapp.post/{post.pk}/caption/", {"caption": "a dog"}, format="json")
    assert response.status_code == 409 and "no finished analysis" in response.json()["error"]


def test_staff_corrects_the_caption_in_the_admin(recording, make_post, client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("boss", password="pw-boss-123")
    analysis = analysed(make_post())
    client.force_login(admin_user)
    url = f"/admin/hashtags/imageanalysis/{analysis.pk}/change/"
    assert "corrected_caption" in client.get(url).content.decode()
    response = client.post(url, {"corrected_caption": "a puppy on a lawn", **_inline_management()})
    assert response.status_code == 302, response.content[:2000]
    analysis.refresh_from_db()
    assert analysis.corrected_caption == "a puppy on a lawn" and analysis.corrected_by == admin_user


def _inline_management() -> dict:
    prefix = "suggestions"
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}


# The export ------------------------------------------------------------------------------------------

@pytest.fixture
def feedback(recording, make_post, user):
    """Four posts with decisions: an edited/rejected/added one, a corrected one, one whose post is
    deleted and one whose file is gone; plus an undecided one that is not exported."""
    a = make_post(seed=1)
    an_a = analysed(a)
    services.accept(suggestion(an_a, "black"), user)
    services.edit(suggestion(an_a, "dog"), "#puppy", user)
    services.reject(suggestion(an_a, "grass"), user)
    services.add_tag(a, "#sunset", user)
    b = make_post(seed=2)
    an_b = analysed(b, "two children play on the beach", ("child", "playing", "beach"))
    services.reject(suggestion(an_b, "playing"), user)
    services.correct_caption(an_b, "two kids build a sandcastle on the beach", user)
    c = make_post(seed=3)
    services.accept(suggestion(analysed(c), "dog"), user)
    c.delete()
    d = make_post(seed=4)
    services.accept(suggestion(analysed(d), "dog"), user)
    d.image.storage.delete(d.image.name)
    analysed(make_post(seed=5))  # nobody decided: nothing to learn
    return {"edited": an_a, "corrected": an_b}


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_writes_a_flickr8k_dataset_the_training_pipeline_reads(feedback, tmp_path, capsys):
    out = tmp_path / "export"
    call_command("hashtags_export_feedback", "--out", str(out))
    printed = capsys.readouterr().out
    assert "exported 2 image(s) with 2 caption(s) (1 corrected by people)" in printed
    assert "skipped 2 (deleted 1, file missing 1" in printed

    dataset = Flickr8k.load(out)
    assert not dataset.malformed_lines
    edited, corrected = (f"{feedback[k].image_sha256}.jpg" for k in ("edited", "corrected"))
    assert dataset.captions == {edited: ["a black puppy runs through the"],
                                corrected: ["two kids build a sandcastle on the beach"]}
    train, dev = dataset.split("train"), dataset.split("dev")
    assert sorted(e.image_id for e in train.examples + dev.examples) == sorted([edited, corrected])
    assert all(not held_back(e.image_id) for e in train.examples) and all(held_back(e.image_id) for e in dev.examples)
    assert not train.missing_images and not dev.missing_images
    assert dataset.split_ids("test") == []
    # Images are the stored content, named by its hash.
    for name in (edited, corrected):
        data = (out / "Flicker8k_Dataset" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() + ".jpg" == name
    rows = (out / "tags.tsv").read_text().splitlines()
    assert rows[0] == "image\taccepted\trejected\tadded\tedited"
    assert f"{edited}\tblack puppy sunset\tgrass\tsunset\tdog>puppy" in rows
    assert f"{corrected}\t\tplaying\t\t" in rows
    assert len(rows) == 3


def test_export_is_deterministic_and_safe_to_rerun(feedback, tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    call_command("hashtags_export_feedback", "--out", str(first), "--no-progress")
    call_command("hashtags_export_feedback", "--out", str(second), "--no-progress")
    assert read_tree(first) == read_tree(second)
    call_command("hashtags_export_feedback", "--out", str(first), "--no-progress")  # again, same place
    assert read_tree(first) == read_tree(second)
    assert not [p for p in first.rglob("*") if p.name.endswith(".tmp")]


def test_since_exports_newer_decisions_and_merges_them(feedback, tmp_path, make_post, user):
    out = tmp_path / "export"
    call_command("hashtags_export_feedback", "--out", str(out), "--no-progress")
    before = read_tree(out)
    cut = timezone.now()
    later = make_post(seed=6)
    an = analysed(later, "a man rides a bicycle down the street", ("man", "bicycle", "street"))
    services.accept(suggestion(an, "bicycle"), user)
    services.reject(suggestion(an, "man"), user)
    # An older image changes after the cut as well: its entry is replaced.
    services.correct_caption(feedback["edited"], "a black puppy runs on a lawn", user)

    summary_line = _run("--out", str(out), "--since", cut.isoformat())
    assert "exported 2 image(s)" in summary_line and "dataset now 3 image(s)" in summary_line
    dataset = Flickr8k.load(out)
    assert dataset.captions[f"{an.image_sha256}.jpg"] == ["a rides a bicycle down the street"]
    assert dataset.captions[f"{feedback['edited'].image_sha256}.jpg"] == ["a black puppy runs on a lawn"]
    assert dataset.captions[f"{feedback['corrected'].image_sha256}.jpg"] == ["two kids build a sandcastle on the beach"]
    # The incremental result is exactly what a full export gives.
    full = tmp_path / "full"
    call_command("hashtags_export_feedback", "--out", str(full), "--no-progress")
    assert read_tree(out) == read_tree(full) != before
    # Nothing newer than a future date: the dataset stays as it is.
    _run("--out", str(out), "--since", (timezone.now() + timedelta(days=1)).date().isoformat())
    assert read_tree(out) == read_tree(full)


def _run(*args) -> str:
    from io import StringIO

    buffer = StringIO()
    call_command("hashtags_export_feedback", *args, "--no-progress", stdout=buffer)
    return buffer.getvalue()


def test_bad_since_and_opted_out_owners(feedback, tmp_path, user):
    from django.core.management import CommandError

    from hashtags.models import HashtagOptOut

    with pytest.raises(CommandError, match="not a date"):
        _run("--out", str(tmp_path / "x"), "--since", "yesterday")
    HashtagOptOut.objects.create(user=user)
    line = _run("--out", str(tmp_path / "x"))
    assert "exported 0 image(s)" in line and "deleted 1, file missing 0, opted out 3" in line


def test_png_uploads_are_exported_as_jpeg(recording, make_post, user, tmp_path):
    post = make_post(data=support.png_bytes(3), name="shot.png")
    analysis = analysed(post)
    services.accept(suggestion(analysis, "dog"), user)
    _run("--out", str(tmp_path / "x"))
    data = (tmp_path / "x" / "Flicker8k_Dataset" / f"{analysis.image_sha256}.jpg").read_bytes()
    assert data[:3] == b"\xff\xd8\xff"
