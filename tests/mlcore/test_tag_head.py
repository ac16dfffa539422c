"""The tag head: targets, artifact round trip, and how its probabilities become hashtags."""

import numpy as np
import pytest

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
    # int8 kernels: a 6-input layer rounds each weight by up to 1/254 of its column's largest
    np.testing.assert_allclose(loaded.predict(features), head.predict(features), atol=1e-2)
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


def test_a_head_over_the_encoders_last_block_round_trips(tmp_path):
    import json

    model = build_tag_head_model(1280, 3, 8, 0.0, encoder="efficientnet_lite0", tap="block14_add")
    assert tuple(model.inputs[0].shape[1:]) == (7, 7, 192)
    head = TagHead(["dog", "grass", "ball"], model, 8, 0.0, encoder="efficientnet_lite0",
                   tap="block14_add")
    save_tag_head(tmp_path, head)
    stored = json.loads((tmp_path / "tag_head.json").read_text())
    assert stored["format"] == "mlcore.tag_head/3" and stored["feature_dim"] == 1280
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


def test_kernels_are_stored_in_eight_bits_and_predictions_barely_move(tmp_path):
    from mlcore.tag_head import HEAD_WEIGHTS_FILE, dequantize_weights, quantize_weights

    rng = np.random.default_rng(3)
    kernel = rng.normal(scale=[0.01, 1.0, 30.0], size=(50, 3)).astype(np.float32)
    values, scale = quantize_weights(kernel)
    assert values.dtype == np.int8 and scale.shape == (3,)  # one scale per output column
    error = np.abs(dequantize_weights(values, scale) - kernel).max(axis=0)
    assert np.all(error <= np.abs(kernel).max(axis=0) / 254 + 1e-9)  # half a step per column
    assert not quantize_weights(np.zeros((4, 2), np.float32))[0].any()  # no division by zero

    model = build_tag_head_model(feature_dim=64, tag_count=40, hidden_units=32, dropout=0.0)
    head = TagHead([f"tag{i}" for i in range(40)], model, 32, 0.0)
    save_tag_head(tmp_path, head)
    with np.load(tmp_path / HEAD_WEIGHTS_FILE) as stored:
        kernels = [key for key in stored.files if stored[key].dtype == np.int8]
        assert len(kernels) == 2 and all(stored[key].ndim == 2 for key in kernels)
        assert all(stored[key].dtype == np.float16 for key in stored.files
                   if stored[key].ndim == 1 and not key.endswith("_scale"))  # biases
    features = rng.normal(size=(8, 64)).astype(np.float32)
    np.testing.assert_allclose(load_tag_head(tmp_path).predict(features), head.predict(features),
                               atol=5e-3)


def test_heads_saved_as_float16_before_format_3_still_load(tmp_path):
    import json

    model = build_tag_head_model(feature_dim=6, tag_count=2, hidden_units=0, dropout=0.0)
    head = TagHead(["dog", "ball"], model, 0, 0.0)
    save_tag_head(tmp_path, head)
    np.savez(tmp_path / "tag_head_weights.npz",  # what format 2 wrote: every array in float16
             **{v.path.replace("/", "__"): v.numpy().astype(np.float16) for v in model.weights})
    config = json.loads((tmp_path / "tag_head.json").read_text())
    (tmp_path / "tag_head.json").write_text(json.dumps({**config, "format": "mlcore.tag_head/2"}))
    features = np.random.default_rng(4).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(load_tag_head(tmp_path).predict(features), head.predict(features),
                               atol=2e-3)


def test_extra_heads_must_rank_the_same_tags_and_are_averaged(tmp_path):
    from mlcore.artifact import ArtifactError
    from mlcore.tag_head import average_probabilities, load_tag_heads, member_dir

    def head(tags, encoder=None):
        return TagHead(tags, build_tag_head_model(6, len(tags), 4, 0.0), 4, 0.0, encoder=encoder)

    assert load_tag_heads(tmp_path) == []
    save_tag_head(tmp_path, head(["dog", "ball"]))
    member_dir(tmp_path, "efficientnet_lite2").mkdir()
    save_tag_head(member_dir(tmp_path, "efficientnet_lite2"), head(["dog", "cat"],
                                                                     "efficientnet_lite2"))
    with pytest.raises(ArtifactError, match="other tags"):
        load_tag_heads(tmp_path)
    save_tag_head(member_dir(tmp_path, "efficientnet_lite2"), head(["dog", "ball"]))
    with pytest.raises(ArtifactError, match="encoder is None"):  # the directory names it
        load_tag_heads(tmp_path)
    save_tag_head(member_dir(tmp_path, "efficientnet_lite2"), head(["dog", "ball"],
                                                                     "efficientnet_lite2"))
    first, extra = load_tag_heads(tmp_path)
    features = np.random.default_rng(7).normal(size=(3, 6)).astype(np.float32)
    averaged = average_probabilities([first, extra], [features, features * 2])
    want = (first.predict(features) + extra.predict(features * 2)) / 2
    np.testing.assert_allclose([[row[tag] for tag in ("dog", "ball")] for row in averaged], want,
                               atol=1e-6)
    with pytest.raises(ValueError, match="2 tag heads but inputs for 1"):
        average_probabilities([first, extra], [features])
