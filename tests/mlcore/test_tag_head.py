"""The tag head: targets, artifact round trip, and how its probabilities become hashtags."""

import numpy as np
import pytest

from mlcore.extractor import ExtractorConfig, extract_hashtags
from mlcore.tag_head import (TagHead, build_tag_head_model, load_tag_head, save_tag_head,
                             tag_targets)


def test_targets_are_the_share_of_captions_using_a_tag():
    tags, targets = tag_targets([
        [["dog", "grass"], ["dog"], ["dog", "ball"], [], ["cat"]],
        [["dog"], ["beach"]],
    ], min_images=2)
    assert tags == ["dog"]  # the only tag seen on two images
    np.testing.assert_allclose(targets[:, 0], [3 / 5, 1 / 2])


def test_round_trip_and_missing_head(tmp_path):
    model = build_tag_head_model(feature_dim=6, tag_count=3, hidden_units=4, dropout=0.0)
    head = TagHead(["dog", "grass", "ball"], model, 4, 0.0)
    assert load_tag_head(tmp_path) is None  # caption-only artifacts have no head
    save_tag_head(tmp_path, head)
    loaded = load_tag_head(tmp_path)
    features = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    assert loaded.tags == head.tags
    np.testing.assert_allclose(loaded.predict(features), head.predict(features), atol=2e-3)
    top = loaded.probabilities(features, top=2)
    assert len(top) == 5 and all(len(row) == 2 for row in top)
    assert all(0.0 <= p <= 1.0 for row in top for p in row.values())


def test_corrupt_head_fails_clearly(tmp_path):
    from mlcore.artifact import ArtifactError

    head = TagHead(["dog"], build_tag_head_model(4, 1, 0, 0.0), 0, 0.0)
    save_tag_head(tmp_path, head)
    (tmp_path / "tag_head_weights.npz").write_bytes(b"nope")
    with pytest.raises(ArtifactError, match="tag head"):
        load_tag_head(tmp_path)


def test_head_probabilities_rank_hashtags_and_rules_still_apply():
    captions = ["a dog runs on the grass", "a dog on the beach"]
    head = {"dog": 0.9, "puppy": 0.6, "nude": 0.99, "the": 0.8}
    tags = extract_hashtags(captions, [-1.0, -2.0], ExtractorConfig(), tag_probabilities=head)
    names = [tag.tag for tag in tags]
    assert names[:2] == ["#dog", "#puppy"]  # the head's order for the tags it knows
    assert "#nude" not in names and "#the" not in names  # blocklist and stopwords
    grass = next(tag for tag in tags if tag.tag == "#grass")  # only the captions know it
    beam_only = {t.tag: t.score for t in extract_hashtags(captions, [-1.0, -2.0])}
    assert grass.score == pytest.approx(0.1 * beam_only["#grass"], abs=1e-6)


def test_a_head_over_the_encoders_last_block_round_trips(tmp_path):
    import json

    model = build_tag_head_model(1280, 3, 8, 0.0, encoder="efficientnet_lite0", tap="block14_add")
    assert tuple(model.inputs[0].shape[1:]) == (7, 7, 192)
    head = TagHead(["dog", "grass", "ball"], model, 8, 0.0, encoder="efficientnet_lite0",
                   tap="block14_add")
    save_tag_head(tmp_path, head)
    stored = json.loads((tmp_path / "tag_head.json").read_text())
    assert stored["format"] == "mlcore.tag_head/2" and stored["feature_dim"] == 1280
    loaded = load_tag_head(tmp_path)
    assert (loaded.encoder, loaded.tap) == ("efficientnet_lite0", "block14_add")
    maps = np.random.default_rng(1).uniform(0, 3, size=(2, 7, 7, 192)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(maps), head.predict(maps), atol=5e-3)


def test_a_head_naming_a_missing_layer_fails_clearly(tmp_path):
    import json

    from mlcore.artifact import ArtifactError

    head = TagHead(["dog"], build_tag_head_model(4, 1, 0, 0.0), 0, 0.0)
    save_tag_head(tmp_path, head)
    config = json.loads((tmp_path / "tag_head.json").read_text())
    config.update(encoder="efficientnet_lite0", tap="block99_add")
    (tmp_path / "tag_head.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="block99_add"):
        load_tag_head(tmp_path)


def test_a_head_averages_its_views_and_keeps_them_in_the_artifact(tmp_path):
    import json

    from mlcore.artifact import ArtifactError

    model = build_tag_head_model(feature_dim=6, tag_count=3, hidden_units=4, dropout=0.0)
    head = TagHead(["dog", "grass", "ball"], model, 4, 0.0, views=("plain", "flipped"))
    rng = np.random.default_rng(2)
    plain, flipped = (rng.normal(size=(4, 6)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(head.predict([plain, flipped]),
                               (head.predict(plain) + head.predict(flipped)) / 2, atol=1e-6)
    save_tag_head(tmp_path, head)
    assert load_tag_head(tmp_path).views == ("plain", "flipped")
    config = json.loads((tmp_path / "tag_head.json").read_text())
    del config["views"]  # heads saved before views existed read the plain image only
    (tmp_path / "tag_head.json").write_text(json.dumps(config))
    assert load_tag_head(tmp_path).views == ("plain",)
    for views, message in ((["flipped", "plain"], "first view must be 'plain'"),
                           (["plain", "sideways"], "unknown image view")):
        config["views"] = views
        (tmp_path / "tag_head.json").write_text(json.dumps(config))
        with pytest.raises(ArtifactError, match=message):
            load_tag_head(tmp_path)
    with pytest.raises(ValueError, match="first view"):
        TagHead(["dog"], model, 4, 0.0, views=("corner0",))
