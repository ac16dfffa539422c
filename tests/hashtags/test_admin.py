"""The admin: review queue with bulk/in-place decisions, tag merge, analyses with re-run."""

import pytest

from hashtags import services
from hashtags.analysis import run_analysis
from hashtags.models import Hashtag, Suggestion
from hashtags.query import tags_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client.force_login(admin)
    return client


@pytest.fixture
def analysed(model, make_post):
    post = make_post(seed=1)
    analysis = run_analysis("testapp", "post", post.pk, "image")
    assert analysis.suggestions.count() >= 2
    return post, analysis


def test_pages_render(admin_client, analysed):
    post, analysis = analysed
    suggestion = analysis.suggestions.first()
    queue = admin_client.get("/admin/hashtags/reviewqueueitem/")
    assert queue.status_code == 200
    html = queue.content.decode()
    assert suggestion.hashtag.tag in html and post.image.url in html  # thumbnail
    for url in [
        "/admin/hashtags/suggestion/?state__exact=accepted",
        f"/admin/hashtags/suggestion/?model_version={analysis.model_version}",
        f"/admin/hashtags/suggestion/{suggestion.pk}/change/",
        "/admin/hashtags/hashtag/?q=do",
        "/admin/hashtags/imageanalysis/",
        f"/admin/hashtags/imageanalysis/{analysis.pk}/change/",
        "/admin/hashtags/acceptedtag/",
        "/admin/testapp/post/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_bulk_accept_and_reject(admin_client, analysed):
    post, analysis = analysed
    ids = list(analysis.suggestions.values_list("pk", flat=True))
    admin_client.post("/admin/hashtags/reviewqueueitem/", {"action": "accept_selected", "_selected_action": ids})
    assert set(analysis.suggestions.values_list("state", flat=True)) == {"accepted"}
    assert len(tags_for(post)) == len(ids)
    admin_client.post("/admin/hashtags/suggestion/", {"action": "reject_selected", "_selected_action": ids[:1]})
    assert Suggestion.objects.get(pk=ids[0]).state == "rejected" and len(tags_for(post)) == len(ids) - 1


def test_edit_in_place_and_in_bulk(admin_client, analysed):
    post, analysis = analysed
    first, second = analysis.suggestions.all()[:2]
    response = admin_client.post(f"/admin/hashtags/suggestion/{first.pk}/change/", {"state": "pending", "new_tag": "#Puppy"})
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.state == "edited" and first.hashtag.name == "puppy"
    # bulk: intermediate page, then apply
    page = admin_client.post("/admin/hashtags/suggestion/", {"action": "edit_selected", "_selected_action": [second.pk]})
    assert page.status_code == 200 and b"Replace suggestions" in page.content
    admin_client.post("/admin/hashtags/suggestion/", {
        "action": "edit_selected", "_selected_action": [second.pk], "apply": "1", "tag": "kitten",
    })
    second.refresh_from_db()
    assert second.state == "edited" and second.hashtag.name == "kitten"
    assert sorted(t.name for t in tags_for(post)) == ["kitten", "puppy"]


def test_list_editable_state_goes_through_the_services(admin_client, analysed):
    post, analysis = analysed
    suggestion = analysis.suggestions.first()
    data = {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(suggestion.pk),
        "form-0-state": "accepted", "_save": "Save",
    }
    response = admin_client.post("/admin/hashtags/reviewqueueitem/", data)
    assert response.status_code == 302
    suggestion.refresh_from_db()
    assert suggestion.state == "accepted" and [t.name for t in tags_for(post)] == [suggestion.hashtag.name]


def test_merge_action_with_intermediate_page(admin_client, recording, make_post, user):
    post = make_post()
    services.add_tag(post, "doggy", user)
    dog, doggy = Hashtag.objects.create(name="dog"), Hashtag.objects.get(name="doggy")
    page = admin_client.post("/admin/hashtags/hashtag/", {"action": "merge_selected", "_selected_action": [dog.pk, doggy.pk]})
    assert page.status_code == 200 and b"Merge into" in page.content
    admin_client.post("/admin/hashtags/hashtag/", {
        "action": "merge_selected", "_selected_action": [dog.pk, doggy.pk], "apply": "1", "target": dog.pk,
    })
    doggy.refresh_from_db()
    assert doggy.merged_into == dog and [t.name for t in tags_for(post)] == ["dog"]
    assert list(post.tags.names()) == ["dog"]


def test_rerun_action(admin_client, analysed, recording, django_capture_on_commit_callbacks):
    post, analysis = analysed
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/hashtags/imageanalysis/", {"action": "rerun_selected", "_selected_action": [analysis.pk]})
    assert recording == [("testapp", "post", str(post.pk), "image", True)]


def test_caption_edit_goes_through_the_service(admin_client, analysed):
    """The admin's caption field is validated like the API's: a bad caption is a form error, not a 500."""
    post, analysis = analysed
    url = f"/admin/hashtags/imageanalysis/{analysis.pk}/change/"
    bad = admin_client.post(url, {"corrected_caption": "x" * 501, **_no_inlines()})
    assert bad.status_code == 200 and b"too long" in bad.content
    bad = admin_client.post(url, {"corrected_caption": "!!! ???", **_no_inlines()})
    assert bad.status_code == 200 and b"at least one word" in bad.content
    analysis.refresh_from_db()
    assert analysis.corrected_caption is None
    good = admin_client.post(url, {"corrected_caption": "  a dog   on the grass ", **_no_inlines()})
    assert good.status_code == 302
    analysis.refresh_from_db()
    assert analysis.corrected_caption == "a dog on the grass"  # normalised by the service
    assert analysis.corrected_by.username == "admin" and analysis.corrected_at is not None
    admin_client.post(url, {"corrected_caption": "", **_no_inlines()})
    analysis.refresh_from_db()
    assert analysis.corrected_caption is None and analysis.corrected_by is None  # withdrawn


def _no_inlines() -> dict:
    return {"suggestions-TOTAL_FORMS": "0", "suggestions-INITIAL_FORMS": "0"}


# The review queue per image (hashtags.review) ------------------------------------------------------

QUEUE = "/admin/hashtags/reviewqueueitem/review/"


def test_review_queue_shows_each_pending_image_once_oldest_first(admin_client, model, make_post):
    first = run_analysis("testapp", "post", make_post(seed=1).pk, "image")
    second = run_analysis("testapp", "post", make_post(seed=2).pk, "image")
    page = admin_client.get(QUEUE)
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('data-card ') == 2 and html.index(f"card-{first.pk}") < html.index(f"card-{second.pk}")
    pending = Suggestion.objects.filter(state="pending").count()
    assert f'id="rq-pending-suggestions">{pending}<' in html and 'id="rq-pending-images">2<' in html
    assert "Keyboard" in html or "keyboard" in html
    # filters list only watched models and the versions/tags that occur
    assert "sessions" not in html and "log entries" not in html
    assert f'value="{first.model_version}"' in html
    tag = first.suggestions.first().hashtag.name
    filtered = admin_client.get(QUEUE, {"tag": tag}).content.decode()
    assert f"card-{first.pk}" in filtered
    assert "Review queue: one card per image" in admin_client.get("/admin/hashtags/").content.decode()


def test_one_submit_accepts_the_selected_and_rejects_the_rest(admin_client, analysed):
    post, analysis = analysed
    chips = list(analysis.suggestions.order_by("rank"))
    response = admin_client.post(QUEUE, {
        "analysis": analysis.pk, "accept": [chips[0].pk], "add": "#puppy", "caption": "a dog on the grass",
    })
    assert response.status_code == 302 and response["Location"] == QUEUE
    states = dict(analysis.suggestions.values_list("pk", "state"))
    assert states[chips[0].pk] == "accepted" and all(states[c.pk] == "rejected" for c in chips[1:])
    assert sorted(t.name for t in tags_for(post)) == sorted([chips[0].hashtag.name, "puppy"])
    analysis.refresh_from_db()
    assert analysis.corrected_caption == "a dog on the grass"
    assert f"card-{analysis.pk}" not in admin_client.get(QUEUE).content.decode()  # decided: gone from the queue


def test_invalid_input_on_a_card_saves_nothing(admin_client, analysed):
    post, analysis = analysed
    admin_client.post(QUEUE, {"analysis": analysis.pk, "accept": [], "caption": "!!! ???"})
    assert set(analysis.suggestions.values_list("state", flat=True)) == {"pending"}


def test_bulk_accept_top_n(admin_client, model, make_post):
    analyses = [run_analysis("testapp", "post", make_post(seed=s).pk, "image") for s in (1, 2)]
    admin_client.post(QUEUE, {"bulk": "1", "top": "2", "select": [a.pk for a in analyses]})
    for a in analyses:
        ranked = list(a.suggestions.order_by("rank").values_list("state", flat=True))
        assert ranked[:2] == ["accepted", "accepted"] and set(ranked[2:]) <= {"rejected"}


def test_review_queue_permissions(client, analysed, django_user_model):
    from django.contrib.auth.models import Permission

    post, analysis = analysed
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_suggestion"))
    client.force_login(viewer)
    page = client.get(QUEUE)
    assert page.status_code == 200 and b"reject the rest, next</button>" not in page.content  # looks, cannot act
    assert client.post(QUEUE, {"analysis": analysis.pk, "accept": []}).status_code == 403
    assert set(analysis.suggestions.values_list("state", flat=True)) == {"pending"}
    nobody = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(nobody)
    assert client.get(QUEUE).status_code == 403
