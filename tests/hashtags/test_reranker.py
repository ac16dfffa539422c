"""The Naive Bayes re-ranker: refuses without enough feedback, learns people's preferences from
real decisions in the database and moves the tags they keep up on decisions it never saw."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import pytest
from django.core.management import CommandError, call_command

from hashtags import reranker, services
from hashtags.models import ImageAnalysis, Suggestion
from hashtags.watched import content_type_for

pytestmark = pytest.mark.django_db

# A consistent reviewer: scenes with the captioner's tags, which ones the person rejects, and
# what they add. Colour words and "play"/"grass" are noise to them; dogs are "#puppy".
SCENES = {
    "dog": (["a black dog runs through the grass", "a dog runs on the grass", "a black dog in the grass"],
            ["black", "dog", "run", "grass"], {"black", "grass"}, "puppy"),
    "beach": (["two children play on the beach", "children play in the sand", "a child on the beach"],
              ["child", "play", "beach", "sand"], {"play"}, None),
    "bike": (["a man rides a bicycle down the street", "a man on a bicycle", "a man rides down the road"],
             ["man", "bicycle", "street", "road"], {"man", "road"}, None),
    "water": (["a brown dog jumps into the water", "a dog jumps in the water", "a brown dog swims"],
              ["brown", "dog", "jump", "water"], {"brown"}, "puppy"),
}


def decided_image(post, scene: str, rng: random.Random, user, *, decide: bool = True) -> ImageAnalysis:
    """A done analysis of ``post`` as the captioner would store it (tags in a varying order,
    noise often first), then the reviewer's decisions through the services."""
    captions, tags, rejected, added = SCENES[scene]
    order = list(tags)
    rng.shuffle(order)
    order.sort(key=lambda t: (t not in rejected) if rng.random() < 0.7 else 0)  # noise mostly on top
    analysis = ImageAnalysis.objects.create(
        content_type=content_type_for(post), object_id=str(post.pk), field_name="image",
        image_name=post.image.name, image_sha256=hashlib.sha256(post.image.read()).hexdigest(),
        model_version="tiny-test", status="done", caption=captions[0], captions=captions,
    )
    from hashtags.models import Hashtag

    for rank, name in enumerate(order, start=1):
        tag, _ = Hashtag.objects.get_or_create_normalized(name)
        Suggestion.objects.create(analysis=analysis, hashtag=tag, rank=rank, score=round(1 - rank / 10, 2),
                                  model_version="tiny-test")
    if decide:
        review(analysis, post, user)
    return analysis


def review(analysis: ImageAnalysis, post, user) -> None:
    scene = next(k for k, v in SCENES.items() if v[0][0] == analysis.caption)
    _, _, rejected, added = SCENES[scene]
    for s in analysis.suggestions.select_related("hashtag").order_by("rank"):
        (services.reject if s.hashtag.name in rejected else services.accept)(s, user)
    if added:
        services.add_tag(post, added, user)


@pytest.fixture
def reviewed(recording, make_post, user):
    """``reviewed(n, seed)``: n posts with captioner suggestions that ``user`` reviewed."""

    def make(n: int, seed: int = 0, decide: bool = True):
        rng = random.Random(seed)
        analyses = []
        for i in range(n):
            post = make_post(seed=seed * 1000 + i)
            analyses.append(decided_image(post, list(SCENES)[i % len(SCENES)], rng, user, decide=decide))
        return analyses

    return make


def mean_rank_of_kept(order: list[str], rejected: set[str]) -> float:
    ranks = [i + 1 for i, tag in enumerate(order) if tag not in rejected]
    return sum(ranks) / len(ranks)


def test_refuses_with_too_few_decisions_and_analysis_stays_unchanged(reviewed, hashtags_config, tmp_path):
    hashtags_config(RERANKER_PATH=str(tmp_path / "r.json"))
    reviewed(3)  # ~14 decisions, default minimum 50
    with pytest.raises(reranker.NotEnoughFeedback, match=r"decision\(s\), need 50"):
        reranker.train()
    with pytest.raises(CommandError, match="not enough feedback"):
        call_command("hashtags_train_reranker")
    assert not (tmp_path / "r.json").exists()
    assert reranker.get_reranker() is None
    from hashtags.tasks import train_reranker

    outcome = train_reranker()
    assert outcome["trained"] is False and "need 50" in outcome["reason"]
    # No model: the analysis hook returns the captioner's result as it is.
    result = object()
    assert reranker.apply_to_suggestion(result, None) is result


def test_needs_both_kept_and_rejected_tags(recording, make_post, user, hashtags_config):
    from hashtags.models import Hashtag

    for i in range(3):
        post = make_post(seed=i)
        analysis = ImageAnalysis.objects.create(
            content_type=content_type_for(post), object_id=str(post.pk), field_name="image",
            image_sha256=f"{i:064d}", model_version="v", status="done", caption="a dog", captions=["a dog"])
        s = Suggestion.objects.create(analysis=analysis, hashtag=Hashtag.objects.get_or_create_normalized("dog")[0], rank=1)
        services.accept(s, user)
    with pytest.raises(reranker.NotEnoughFeedback, match="both kept and rejected"):
        reranker.train(min_decisions=1)


def test_learns_preferences_and_moves_kept_tags_up_on_held_out_decisions(reviewed, hashtags_config, tmp_path, user):
    hashtags_config(RERANKER_PATH=str(tmp_path / "reranker.json"))
    reviewed(48, seed=1)
    call_command("hashtags_train_reranker")
    model = reranker.get_reranker()
    assert model is not None
    meta = model.metadata
    assert meta["decisions"] >= 50 and meta["kept"] and meta["rejected"]
    held = meta["held_out"]
    assert held["decisions"] > 0 and held["ranked_images"] > 0
    assert held["accuracy"] > held["majority_accuracy"]
    assert held["mean_kept_rank_after"] < held["mean_kept_rank_before"]
    assert held["auc"] > 0.8
    assert "puppy" in meta["proposable"]

    # Brand-new images, decided after training: the re-ranked order puts kept tags higher.
    fresh = reviewed(12, seed=2, decide=False)
    before, after = [], []
    for analysis in fresh:
        scene = next(k for k, v in SCENES.items() if v[0][0] == analysis.caption)
        rejected = SCENES[scene][2]
        candidates = [(f"#{s.hashtag.name}", s.score) for s in analysis.suggestions.order_by("rank")]
        ranked = reranker.rerank(candidates, analysis.captions, user, propose=False)
        assert sorted(r.tag for r in ranked) == sorted(c[0] for c in candidates)  # re-ordered, none lost
        assert all(0.0 <= r.score <= 1.0 and r.model_score is not None for r in ranked)
        before.append(mean_rank_of_kept([c[0][1:] for c in candidates], rejected))
        after.append(mean_rank_of_kept([r.name for r in ranked], rejected))
    assert sum(after) / len(after) < sum(before) / len(before) - 0.3
    # Every rejected-by-habit tag ends up below every kept tag on these images.
    assert all(b >= a for a, b in zip(after, before))

    # Proposals: "#puppy", which the captioner never says, for dog photos only.
    dog = reranker.rerank([("#dog", 0.9), ("#grass", 0.5)], SCENES["dog"][0], user)
    assert any(r.tag == "#puppy" and r.proposed for r in dog)
    bike = reranker.rerank([("#bicycle", 0.9), ("#street", 0.5)], SCENES["bike"][0], user)
    assert not any(r.proposed for r in bike)
    hashtags_config(BLOCKLIST=["puppy"])
    dog = reranker.rerank([("#dog", 0.9)], SCENES["dog"][0], user)
    assert not any(r.tag == "#puppy" for r in dog)


def test_analysis_hook_reorders_a_captioner_result(reviewed, hashtags_config, tmp_path, user, make_post,
                                                   monkeypatch):
    from mlcore.captioner import CaptionResult as Result
    from mlcore.extractor import ScoredTag

    from hashtags.analysis import _store

    hashtags_config(RERANKER_PATH=str(tmp_path / "reranker.json"))
    reviewed(48, seed=3)
    trained, path = reranker.train_and_save()
    # Saved as JSON parameters (no pickle), rebuilt into the same classifier.
    saved = json.loads(path.read_text())
    assert saved["format"] == 2 and saved["classifier"] == "BernoulliNB" and len(saved["features"]) > 10
    rows = [reranker.features(t, ("dog", "grass"), ("puppy",)) for t in ("dog", "black", "puppy", "unseen")]
    assert reranker.load(path).probabilities(rows) == trained.probabilities(rows)
    captions = SCENES["dog"][0]
    sources = {"#black": ("caption",), "#grass": ("caption", "tag_head"), "#dog": ("tag_head", "classifier")}
    result = Result(caption=captions[0], captions=list(captions), log_probs=[-1.0, -2.0, -3.0],
                    hashtags=[ScoredTag("#black", 0.9, sources["#black"]), ScoredTag("#grass", 0.8, sources["#grass"]),
                              ScoredTag("#dog", 0.7, sources["#dog"])],
                    model_version="tiny", timings={"total_s": 0.1}, caption_confidence=0.4)
    out = reranker.apply_to_suggestion(result, user.pk)
    tags = [h.tag for h in out.hashtags]
    assert tags[0] in ("#dog", "#puppy") and tags.index("#dog") < tags.index("#black")
    assert "rerank_s" in out.timings and out.model_version == "tiny" and out.caption_confidence == 0.4
    # Why each tag is suggested survives the re-ordering; a proposal is the re-ranker's own.
    assert {h.tag: h.sources for h in out.hashtags if not h.proposed} == sources
    assert [(h.tag, h.sources) for h in out.hashtags if h.proposed] == [("#puppy", ("feedback",))]
    # ... and is what the analysis stores.
    post = make_post(seed=99)
    analysis = ImageAnalysis.objects.create(content_type=content_type_for(post), object_id=str(post.pk),
                                            field_name="image", image_sha256="f" * 64, model_version="tiny")
    _store(analysis.pk, out, out.timings)
    stored = {s.hashtag.tag: s.sources for s in analysis.suggestions.all()}
    assert stored == {**{tag: list(found) for tag, found in sources.items()}, "#puppy": ["feedback"]}
    # A new analysis carries its captions' words: the re-ranker reads them instead of extracting
    # them again, and ranks the same.
    words = reranker.caption_words(captions)
    assert "dog" in words

    def extract_again(*args, **kwargs):
        raise AssertionError("the captions were extracted a second time")

    monkeypatch.setattr(reranker, "extract_caption_words", extract_again)
    again = reranker.apply_to_suggestion(dataclasses.replace(result, caption_words=words), user.pk)
    assert [h.tag for h in again.hashtags] == tags
    monkeypatch.undo()
    # A broken model file switches it off instead of failing analyses.
    (tmp_path / "reranker.json").write_bytes(b"not a model")
    assert reranker.get_reranker() is None
    assert reranker.apply_to_suggestion(result, user.pk) is result


def test_without_a_trained_model_rerank_keeps_order_scores_and_sources(hashtags_config, tmp_path):
    from mlcore.extractor import ScoredTag

    hashtags_config(RERANKER_PATH=str(tmp_path / "none.json"))
    ranked = reranker.rerank([ScoredTag("#dog", 0.9, ("caption", "classifier")), ("#grass", 0.5)], ["a dog"])
    assert [(r.tag, r.score, r.sources) for r in ranked] == [("#dog", 0.9, ("caption", "classifier")),
                                                             ("#grass", 0.5, ())]
    assert ranked[0].as_dict()["sources"] == ["caption", "classifier"]


def test_periodic_training_follows_the_setting(hashtags_config, tmp_path):
    from celery import Celery
    from celery.beat import Service

    from hashtags.tasks import add_periodic_tasks, periodic_tasks

    hashtags_config(RECONCILE_EVERY=None)  # the reconciler's entry is tested in test_reconcile.py
    assert periodic_tasks() == {}
    hashtags_config(RERANKER_SCHEDULE=3600)
    assert periodic_tasks() == {
        "hashtags-train-reranker": {"task": "hashtags.train_reranker", "schedule": 3600}
    }
    app = Celery("beat-test", broker="memory://", set_as_current=False)
    service = Service(app, schedule_filename=str(tmp_path / "beat-schedule"))
    add_periodic_tasks(sender=service)
    entry = service.scheduler.schedule["hashtags-train-reranker"]
    assert entry.task == "hashtags.train_reranker" and entry.schedule.run_every.total_seconds() == 3600
    service.scheduler.close()
