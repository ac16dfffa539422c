import pytest
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from hashtags import services
from hashtags.models import AcceptedTag, Hashtag, ImageAnalysis, Outcome, Suggestion
from hashtags.query import current_analysis, filter_by_tag, tags_for
from hashtags.watched import content_type_for
from hashtags.tags import InvalidTag

from tests.hashtags import support

pytestmark = pytest.mark.django_db


def analysis_for(post, tags=("dog", "grass"), version="v1"):
    analysis = ImageAnalysis.objects.create(
        content_type=content_type_for(post), object_id=str(post.pk), field_name="image",
        image_name=post.image.name, image_sha256="ab" * 32, model_version=version, status="done",
        caption="a dog on the grass",
    )
    for rank, name in enumerate(tags, 1):
        Suggestion.objects.create(
            analysis=analysis, hashtag=Hashtag.objects.get_or_create_normalized(name)[0],
            score=1 / rank, rank=rank, model_version=version,
        )
    return analysis


def test_tag_names_are_unique_ignoring_case():
    Hashtag.objects.create(name="dog")
    with pytest.raises(IntegrityError), transaction.atomic():
        Hashtag.objects.create(name="DOG")


def test_get_or_create_normalized_is_case_and_hash_insensitive():
    dog, created = Hashtag.objects.get_or_create_normalized("#Dog")
    assert created and dog.name == "dog" and dog.tag == "#dog"
    again, created = Hashtag.objects.get_or_create_normalized("dogs")
    assert again == dog and not created
    assert Hashtag.objects.count() == 1
    with pytest.raises(InvalidTag):
        Hashtag.objects.get_or_create_normalized("#!!")


def test_slugs_are_unique_and_allow_unicode():
    tag = Hashtag.objects.create(name="straße")
    assert tag.slug == "straße"
    other = Hashtag(name="strasse", slug="")
    other.slug = "straße"
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()


def test_analysis_is_unique_per_content_and_model_version(recording, make_post):
    post = make_post()
    analysis_for(post, tags=())
    with pytest.raises(IntegrityError), transaction.atomic():
        analysis_for(post, tags=())
    assert analysis_for(post, tags=(), version="v2").model_version == "v2"


def test_merge_keeps_every_reference(recording, make_post, user):
    post, second = make_post(), make_post(seed=1)
    a1, a2 = analysis_for(post, ("doggy", "grass")), analysis_for(second, ("dog", "doggy"))
    doggy, dog = Hashtag.objects.get(name="doggy"), Hashtag.objects.get(name="dog")
    # accepted on both posts, and an edit that replaced "doggy" on the first
    services.accept(a2.suggestions.get(hashtag=doggy), user)
    services.accept(a2.suggestions.get(hashtag=dog), user)
    services.edit(a1.suggestions.get(hashtag=doggy), "#pup", user)
    services.add_tag(post, "doggy", user)
    assert set(post.tags.names()) == {"pup", "doggy"}

    services.merge_hashtags(doggy, dog)

    assert not Suggestion.objects.filter(hashtag=doggy).exists()
    assert not Suggestion.objects.filter(replaced=doggy).exists()
    edited = a1.suggestions.get(hashtag__name="pup")
    assert edited.replaced == dog and edited.state == "edited"
    # both posts now carry "dog" exactly once; "doggy" is gone from accepted and taggit tags
    assert [t.name for t in tags_for(post)] == ["dog", "pup"]
    assert [t.name for t in tags_for(second)] == ["dog"]
    assert set(post.tags.names()) == {"dog", "pup"}
    dog.refresh_from_db(), doggy.refresh_from_db()
    assert dog.usage_count == 2 and doggy.usage_count == 0
    # the old tag is an alias: new uses and lookups resolve to the target
    assert Hashtag.objects.get_or_create_normalized("#doggy") == (dog, False)
    assert set(filter_by_tag(type(post).objects.all(), "doggy")) == {post, second}


def test_merge_into_itself_is_refused():
    tag = Hashtag.objects.create(name="dog")
    with pytest.raises(ValueError):
        services.merge_hashtags(tag, tag)


def test_filter_by_tag_and_queryset_helpers(recording, make_post, user):
    from tests.testapp.models import Post

    post, other = make_post(), make_post(seed=1)
    services.add_tag(post, "#Dog", user)
    services.add_tag(other, "cat", user)
    assert list(filter_by_tag(Post.objects.all(), "DOG")) == [post]
    assert list(Post.objects.tagged("#dogs")) == [post]
    assert list(Post.objects.tagged("unknown")) == []
    assert list(Post.objects.tagged("#")) == []
    posts = {p.pk: p for p in Post.objects.with_hashtags()}
    assert [h.name for h in posts[post.pk].accepted_hashtags] == ["dog"]
    assert [h.name for h in posts[other.pk].accepted_hashtags] == ["cat"]


def test_accept_reject_edit_keep_accepted_tags_and_taggit_in_sync(recording, make_post, user):
    post = make_post()
    analysis = analysis_for(post, ("dog", "grass"))
    dog = analysis.suggestions.get(hashtag__name="dog")

    services.accept(dog, user)
    dog.refresh_from_db()
    assert dog.state == "accepted" and dog.decided_by == user and dog.decided_at
    assert AcceptedTag.objects.for_object(post).get().hashtag.name == "dog"
    assert list(post.tags.names()) == ["dog"]
    assert Hashtag.objects.get(name="dog").usage_count == 1

    services.edit(dog, "#Puppy", user)
    dog.refresh_from_db()
    assert (dog.state, dog.hashtag.name, dog.replaced.name, dog.replaced_text) == ("edited", "puppy", "dog", "#dog")
    assert [t.name for t in tags_for(post)] == ["puppy"]
    assert list(post.tags.names()) == ["puppy"]
    assert Hashtag.objects.get(name="dog").usage_count == 0

    services.reject(dog, user)  # un-accept: the edit is undone and the tag leaves the post
    dog.refresh_from_db()
    assert (dog.state, dog.hashtag.name, dog.replaced) == ("rejected", "dog", None)
    assert tags_for(post) == [] and list(post.tags.names()) == []

    services.reset(dog, user)
    dog.refresh_from_db()
    assert dog.state == "pending" and dog.decided_by is None


def test_added_tag_and_removal(recording, make_post, user):
    post = make_post()
    analysis = analysis_for(post, ("dog",))
    accepted, suggestion = services.add_tag(post, "#Frisbee", user)
    assert accepted.source == "added" and suggestion.state == "added" and suggestion.score is None
    assert suggestion.analysis == analysis
    # adding a tag that was suggested accepts the suggestion instead of duplicating it
    _, same = services.add_tag(post, "dog", user)
    assert same.state == "accepted" and analysis.suggestions.count() == 2
    assert services.remove_tag(post, Hashtag.objects.get(name="dog"), user)
    assert analysis.suggestions.get(hashtag__name="dog").state == "rejected"
    assert [t.name for t in tags_for(post)] == ["frisbee"]


def test_each_decision_says_which_tags_were_kept(recording, make_post, user):
    post = make_post()
    analysis = analysis_for(post, ("dog", "grass", "ball", "sky"))
    dog, grass, ball, sky = (analysis.suggestions.get(hashtag__name=n) for n in ("dog", "grass", "ball", "sky"))
    services.accept(dog, user)
    services.reject(grass, user)
    services.edit(ball, "#frisbee", user)
    _, added = services.add_tag(post, "#park", user)

    outcomes = [Suggestion.objects.get(pk=s.pk).outcomes() for s in (dog, grass, ball, sky, added)]
    assert outcomes == [
        [("dog", Outcome.KEPT)],
        [("grass", Outcome.REJECTED)],
        [("ball", Outcome.REPLACED), ("frisbee", Outcome.EDITED_TO)],
        [],  # pending: no decision yet
        [("park", Outcome.ADDED)],
    ]
    assert [o for o in Outcome if o.kept] == [Outcome.KEPT, Outcome.EDITED_TO, Outcome.ADDED]
    assert [o for o in Outcome if o.suggested] == [Outcome.KEPT, Outcome.REJECTED, Outcome.REPLACED]


def test_a_tag_added_after_a_new_upload_goes_to_the_new_images_analysis(recording, make_post, user):
    post = make_post()
    old = analysis_for(post, ("dog",))
    post.image.save("new.jpg", ContentFile(support.jpeg_bytes(seed=7)), save=False)
    post.save()
    new = ImageAnalysis.objects.create(
        content_type=content_type_for(post), object_id=str(post.pk), field_name="image",
        image_name=post.image.name, image_sha256="cd" * 32, model_version="v1", status="pending",
    )
    _, suggestion = services.add_tag(post, "#Frisbee", user)
    assert suggestion.analysis == new
    assert not old.suggestions.filter(hashtag__name="frisbee").exists()
    assert current_analysis(post) == new


def test_tags_without_analysis_and_deleting_the_post(recording, make_post, user):
    post = make_post()
    services.add_tag(post, "sunset", user)
    tag = Hashtag.objects.get(name="sunset")
    assert tag.usage_count == 1
    post.delete()
    tag.refresh_from_db()
    assert tag.usage_count == 0 and not AcceptedTag.objects.exists()


def test_migrations_match_the_models():
    """A model change without its migration fails here, not in a user's ``migrate``."""
    from django.core.management import call_command

    call_command("makemigrations", "hashtags", "--check", "--dry-run", verbosity=0)
