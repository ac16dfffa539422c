"""The whole feedback loop on small data, with the real tiny model and real training:

posts are tagged by the real analysis code → a person accepts/rejects/edits/adds and corrects a
caption through the API → the export is written → the re-ranker trains and moves the tags people
keep up on posts it never saw → a model is fine-tuned on Flickr8k-layout data plus the export,
registered, promoted, and serves the next post.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import call_command

from hashtags import reranker, versions
from hashtags.inference import get_captioner
from hashtags.models import ImageAnalysis, Suggestion
from mlcore.artifact import read_info
from tests.hashtags import support
from tests.training.conftest import build_dataset
from training.flickr8k import Flickr8k
from training.train import TrainConfig, train

# The re-ranker holds out analyses by a hash of their id: ids from 1 in every run, whatever ran before.
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)
API = "/api/hashtags/"


def analysis_of(post) -> ImageAnalysis:
    analysis = ImageAnalysis.objects.for_object(post).get()
    assert analysis.status == "done", analysis.error
    return analysis


def order(analysis) -> list[str]:
    return list(analysis.suggestions.order_by("rank").values_list("hashtag__name", flat=True))


def mean_kept_rank(tags: list[str], disliked: str) -> float:
    ranks = [i + 1 for i, tag in enumerate(tags) if tag != disliked]
    return sum(ranks) / len(ranks)


def test_feedback_loop_end_to_end(model, hashtags_config, make_post, user, api_client, tmp_path,
                                  django_capture_on_commit_callbacks):
    hashtags_config(RERANKER_PATH=str(tmp_path / "reranker.json"), RERANKER_MIN_DECISIONS=30)
    api_client.force_authenticate(user)

    # 1. Posts are tagged by the real analysis code with the real (tiny) model.
    posts = []
    for seed in range(20):
        with django_capture_on_commit_callbacks(execute=True):
            posts.append(make_post(data=support.jpeg_bytes(seed=seed)))
    analyses = [analysis_of(p) for p in posts]
    assert sum(len(order(a)) >= 2 for a in analyses) >= 10
    # The person's habit: the tag the captioner most often puts second is noise to them.
    disliked = Counter(order(a)[1] for a in analyses if len(order(a)) >= 2).most_common(1)[0][0]

    # 2. A person decides through the API: reject the noise, edit one tag on some posts, accept the
    #    rest, add "#sunset" everywhere, and correct one caption.
    for i, (post, analysis) in enumerate(zip(posts, analyses)):
        kept = [s for s in analysis.suggestions.order_by("rank") if s.hashtag.name != disliked]
        for s in analysis.suggestions.order_by("rank"):
            if s.hashtag.name == disliked:
                response = api_client.post(f"{API}suggestions/{s.pk}/reject/")
            elif i % 4 == 0 and s == kept[-1]:
                response = api_client.post(f"{API}suggestions/{s.pk}/edit/", {"tag": "#doggo"}, format="json")
            else:
                response = api_client.post(f"{API}suggestions/{s.pk}/accept/")
            assert response.status_code == 200, response.content
        response = api_client.post(f"{API}posts/testapp.post/{post.pk}/tags/", {"tag": "#sunset"}, format="json")
        assert response.status_code == 201, response.content
    response = api_client.post(f"{API}posts/testapp.post/{posts[1].pk}/caption/",
                               {"caption": "a dog sits in the sunset"}, format="json")
    assert response.status_code == 200, response.content
    states = Counter(Suggestion.objects.values_list("state", flat=True))
    assert states["rejected"] == sum(disliked in order(a) for a in analyses) >= 5 and states["accepted"] and states["edited"] and states["added"] == 20

    # 3. The export, in the layout training reads.
    export = tmp_path / "feedback"
    call_command("hashtags_export_feedback", "--out", str(export), "--no-progress")
    dataset = Flickr8k.load(export)
    exported = dataset.split("train").examples + dataset.split("dev").examples
    # Every post is exported except those whose only caption word was the rejected tag.
    only_disliked = sum(1 for a in analyses if set(a.caption.split()) - {"a", "the", "two"} <= {disliked})
    assert len(exported) == 20 - only_disliked >= 15 and dataset.split("train").examples
    corrected = f"{analyses[1].image_sha256}.jpg"
    assert dataset.captions[corrected] == ["a dog sits in the sunset"]
    assert all(disliked not in caption.split() for caps in dataset.captions.values() for caption in caps)

    # 4. The re-ranker trains and moves the kept tags up on decisions it did not train on ...
    call_command("hashtags_train_reranker")
    held = reranker.get_reranker().metadata["held_out"]
    assert held["decisions"] > 0 and held["accuracy"] > held["majority_accuracy"]
    if held["ranked_images"]:
        assert held["mean_kept_rank_after"] < held["mean_kept_rank_before"]
    # ... and on new posts, analysed by the real code with the hook on.
    captioner = get_captioner()
    before, after, proposed = [], [], 0
    new_posts = 12
    for seed in range(100, 100 + new_posts):
        with django_capture_on_commit_callbacks(execute=True):
            post = make_post(data=support.jpeg_bytes(seed=seed))
        served = order(analysis_of(post))
        raw = [h.name for h in captioner.suggest([post.image.path], beam_width=3)[0].hashtags]
        raw = [t for t in raw if t in served]
        if disliked in raw[:-1]:  # there is something to move
            before.append(mean_kept_rank(raw, disliked))
            after.append(mean_kept_rank([t for t in served if t in raw], disliked))
        proposed += "sunset" in served and "sunset" not in raw
    assert before, "the held-out posts should show the disliked tag"
    assert sum(after) / len(after) < sum(before) / len(before)
    assert proposed >= new_posts // 2  # the tag people keep adding is proposed although the captioner never says it

    # 5. Fine-tune on Flickr8k-layout data plus the export, from the serving model.
    flickr = build_dataset(tmp_path / "flickr8k")
    finetuned = train(TrainConfig(
        data=str(flickr), extra_data=[str(export)], init=str(model), out=str(tmp_path / "finetuned"),
        epochs=1, batch_size=8, min_count=1, patience=5, cache_dir=str(tmp_path / "cache"),
        version="tiny-feedback-1",
    ))
    info = read_info(finetuned)
    assert info.version == "tiny-feedback-1"
    assert info.training["data"]["extra_images"] == len(dataset.split("train"))
    assert "beam3" in info.training["dev_metrics"]

    # 6. Registered, promoted, and it serves the next post.
    row = versions.register(finetuned, "fine-tuned on feedback", user=user)
    versions.promote(row, user)
    with django_capture_on_commit_callbacks(execute=True):
        post = make_post(data=support.jpeg_bytes(seed=500))
    analysis = analysis_of(post)
    assert analysis.model_version == "tiny-feedback-1"
    assert analysis.suggestions.filter(model_version="tiny-feedback-1").exists()
