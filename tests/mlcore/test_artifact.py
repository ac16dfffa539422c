"""Model artifacts: save → load gives identical captions; broken artifacts fail clearly."""

import json
import shutil

import numpy as np
import pytest

from mlcore.artifact import ArtifactError, load_artifact, read_info
from mlcore.decoding import StepDecoder
from mlcore.testing import make_tiny_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return make_tiny_artifact(tmp_path_factory.mktemp("models") / "tiny", epochs=20)


@pytest.fixture
def copy(artifact, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(artifact, target)
    return target


def _captions(model_dir, features):
    info, decoder, vocabulary = load_artifact(model_dir)
    return [r.captions for r in StepDecoder(decoder, vocabulary).beam_search(features, 3)]


def test_round_trip_gives_identical_captions(artifact, tmp_path):
    from mlcore.artifact import save_artifact

    features = np.random.default_rng(0).normal(size=(6, 1280)).astype(np.float32)
    info, decoder, vocabulary = load_artifact(artifact)
    saved = save_artifact(tmp_path / "again", decoder=decoder, vocabulary=vocabulary,
                          encoder=info.encoder, version="again-1", weights_dtype="float32")
    assert read_info(saved).version == "again-1"
    assert _captions(saved, features) == _captions(artifact, features)
    assert any(any(c) for c in _captions(saved, features))


def test_manifest_describes_the_model(artifact):
    info = read_info(artifact)
    assert info.encoder["name"] == "efficientnet_lite0"
    assert info.encoder["feature_dim"] == 1280
    assert info.decoder["max_length"] == 12
    assert info.version.startswith("tiny-")


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "vocabulary.json").unlink(), "vocabulary.json is missing"),
    (lambda d: (d / "decoder_weights.npz").unlink(), "decoder_weights.npz is missing"),
    (lambda d: (d / "model.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "model.json").unlink(), "model.json is missing"),
    (lambda d: (d / "decoder_weights.npz").write_bytes(b"garbage"), "checksum"),
    (lambda d: (d / "vocabulary.json").write_text('{"format": "x"}'), "not a valid vocabulary"),
])
def test_broken_artifacts_fail_with_a_clear_error(copy, breakage, message):
    breakage(copy)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(copy)


def test_truncated_weights_without_checksum(copy):
    manifest = json.loads((copy / "model.json").read_text())
    manifest["weights"]["sha256"] = ""
    (copy / "model.json").write_text(json.dumps(manifest))
    data = (copy / "decoder_weights.npz").read_bytes()
    (copy / "decoder_weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="cannot be read"):
        load_artifact(copy)


def test_mismatched_vocabulary_size(copy):
    vocabulary = json.loads((copy / "vocabulary.json").read_text())
    vocabulary["words"].append("extraword")
    (copy / "vocabulary.json").write_text(json.dumps(vocabulary))
    with pytest.raises(ArtifactError, match="vocabulary has"):
        load_artifact(copy)


def test_mismatched_weight_shapes(copy):
    manifest = json.loads((copy / "model.json").read_text())
    manifest["decoder"]["units"] = 64
    manifest["weights"]["sha256"] = ""
    (copy / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="shape"):
        load_artifact(copy)


def test_missing_directory():
    with pytest.raises(ArtifactError, match="not found"):
        load_artifact("/nonexistent/model")


def test_a_tag_head_continuing_another_encoder_is_refused(copy):
    from mlcore.captioner import Captioner
    from mlcore.tag_head import TagHead, build_tag_head_model, save_tag_head

    model = build_tag_head_model(1280, 1, 0, 0.0, encoder="efficientnet_lite1", tap="block14_add")
    save_tag_head(copy, TagHead(["dog"], model, 0, 0.0, encoder="efficientnet_lite1",
                                tap="block14_add"))
    with pytest.raises(ArtifactError, match="efficientnet_lite1"):
        Captioner.load(copy)


def test_the_captioner_averages_the_tag_head_over_its_views(copy, tmp_path):
    from PIL import Image

    from mlcore.captioner import Captioner
    from mlcore.images import load_image
    from mlcore.tag_head import TagHead, build_tag_head_model, save_tag_head
    from mlcore.views import apply_view

    views = ("plain", "flipped", "corner1")
    model = build_tag_head_model(1280, 4, 8, 0.0, encoder="efficientnet_lite0", tap="block14_add")
    save_tag_head(copy, TagHead(["dog", "grass", "ball", "beach"], model, 8, 0.0,
                                encoder="efficientnet_lite0", tap="block14_add", views=views))
    captioner = Captioner.load(copy)
    assert captioner.tag_head.views == views
    rng = np.random.default_rng(5)
    images = []
    for index in range(2):
        images.append(tmp_path / f"photo{index}.png")
        Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)).save(images[-1])
    loaded = [load_image(image, size=224) for image in images]

    def head_probabilities(captioner):
        return [item[1] for item in captioner._caption_with_timings(images, beam_width=2)]

    def expected(view_names):
        per_view = [captioner.tag_head.predict(captioner.encoder.encode_tapped(
            np.stack([apply_view(image, view) for image in loaded]), "block14_add")[1])
            for view in view_names]
        return np.mean(per_view, axis=0)

    for got, want in zip(head_probabilities(captioner), expected(views)):
        assert [got[tag] for tag in captioner.tag_head.tags] == pytest.approx(list(want), abs=1e-5)
    plain_only = Captioner.load(copy, tag_views=["plain"])
    assert plain_only.tag_head.views == ("plain",)
    for got, want in zip(head_probabilities(plain_only), expected(["plain"])):
        assert [got[tag] for tag in plain_only.tag_head.tags] == pytest.approx(list(want), abs=1e-5)
    # the captions come from the plain image whatever the head's views
    assert ([s.captions for s in captioner.caption_images(images, 2)]
            == [s.captions for s in plain_only.caption_images(images, 2)])
    with pytest.raises(ValueError, match="unknown image view"):
        Captioner.load(copy, tag_views=["plain", "zoom"])


def test_an_extra_tag_head_on_another_encoder_is_averaged_in(copy, tmp_path):
    from PIL import Image

    from mlcore.captioner import Captioner
    from mlcore.images import load_image
    from mlcore.tag_head import TagHead, build_tag_head_model, member_dir, save_tag_head

    tags = ["dog", "grass", "ball"]
    save_tag_head(copy, TagHead(tags, build_tag_head_model(
        1280, 3, 8, 0.0, encoder="efficientnet_lite0", tap="block14_add"), 8, 0.0,
        encoder="efficientnet_lite0", tap="block14_add"))
    member_dir(copy, "efficientnet_lite2").mkdir()
    save_tag_head(member_dir(copy, "efficientnet_lite2"), TagHead(tags, build_tag_head_model(
        1280, 3, 8, 0.0, encoder="efficientnet_lite2", tap="block19_add"), 8, 0.0,
        encoder="efficientnet_lite2", tap="block19_add"))
    captioner = Captioner.load(copy)
    (extra, extra_encoder), = captioner.extra_heads
    assert (extra.encoder, extra_encoder.spec.input_size) == ("efficientnet_lite2", 260)
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (90, 130, 3), dtype=np.uint8)
                    ).save(image)
    got = captioner._caption_with_timings([image], beam_width=2)[0][1]
    loaded = load_image(image, size=224)  # the extra encoder gets it resized to its own size
    resized = np.asarray(Image.fromarray(loaded).resize((260, 260), Image.BILINEAR))
    own = captioner.tag_head.predict(captioner.encoder.encode_tapped(loaded[None],
                                                                     "block14_add")[1])[0]
    other = extra.predict(extra_encoder.encode_tapped(resized[None], "block19_add")[1])[0]
    assert not np.allclose(own, other, atol=1e-3)  # they differ, so the average is seen
    assert [got[tag] for tag in tags] == pytest.approx(list((own + other) / 2), abs=1e-5)
    assert Captioner.load(copy, extra_tag_heads=False).extra_heads == []
    flipped = Captioner.load(copy, tag_views=["plain", "flipped"])  # TAG_VIEWS: every head
    assert {head.views for head in [flipped.tag_head] + [h for h, _ in flipped.extra_heads]} == {
        ("plain", "flipped")}


# --- changing an artifact: atomic, and always under a new version ---------------------------


def _files(model_dir):
    """Every file of an artifact with its bytes, by relative path."""
    return {str(path.relative_to(model_dir)): path.read_bytes()
            for path in sorted(model_dir.rglob("*")) if path.is_file()}


def _head(tags, seed=0, encoder=None):
    import keras

    from mlcore.tag_head import TagHead, build_tag_head_model

    keras.utils.set_random_seed(seed)
    return TagHead(tags, build_tag_head_model(1280, len(tags), 4, 0.0), 4, 0.0, encoder=encoder)


def test_a_retrained_tag_head_gives_the_artifact_a_new_version(copy):
    from mlcore.artifact import revise, tag_head_version
    from mlcore.tag_head import load_tag_head, load_tag_heads

    first = read_info(copy).version
    with revise(copy) as revision:
        revision.write_tag_head(_head(["dog", "ball"]))
        revision.manifest["training"]["tag_head"] = {"epochs": 1}
        revision.version = tag_head_version(first, revision.directory)
    second = read_info(copy)
    assert second.version.startswith(first + "-th") and len(second.version) == len(first) + 11
    assert second.training["tag_head"] == {"epochs": 1}
    assert json.loads((copy / "model.json").read_text())["derived_from"] == [first]
    assert load_tag_head(copy).tags == ["dog", "ball"]
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]  # no copy left

    with revise(copy) as revision:  # retrained again: other weights, another version
        revision.write_tag_head(_head(["dog", "ball"], seed=1))
        revision.write_tag_head(_head(["dog", "ball"], seed=2, encoder="efficientnet_lite2"),
                                extra=True)
        revision.version = tag_head_version(second.version, revision.directory)
    third = read_info(copy).version
    assert third != second.version and third.startswith(first + "-th")  # one suffix, not two
    assert third.count("-th") == first.count("-th") + 1
    assert [head.encoder for head in load_tag_heads(copy)] == [None, "efficientnet_lite2"]
    assert json.loads((copy / "model.json").read_text())["derived_from"] == [first, second.version]
    assert tag_head_version(third, copy) == third  # the same heads: the same name


def test_a_failure_midway_leaves_the_old_artifact_intact(copy):
    from mlcore.artifact import revise

    before = _files(copy)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        with revise(copy) as revision:
            revision.write_tag_head(_head(["dog"]))
            revision.version = "v-new"
            raise RuntimeError("evaluation failed")
    assert _files(copy) == before
    for version in (None, read_info(copy).version):  # no version, or the old one: refused
        with pytest.raises(ArtifactError, match="needs a new version"):
            with revise(copy, version=version) as revision:
                revision.write_tag_head(_head(["dog"]))
        assert _files(copy) == before
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]
    load_artifact(copy)  # still a valid artifact


def test_an_artifact_is_not_overwritten_by_other_weights_under_its_version(tmp_path):
    from mlcore.testing import make_tiny_artifact

    target = make_tiny_artifact(tmp_path / "model", epochs=1, seed=0, version="v1")
    before = _files(target)
    with pytest.raises(ArtifactError, match="already holds version 'v1' with other weights"):
        make_tiny_artifact(target, epochs=1, seed=1, version="v1")
    assert _files(target) == before
    make_tiny_artifact(target, epochs=1, seed=1, version="v2")  # a new version may replace it
    assert read_info(target).version == "v2"


@pytest.fixture(scope="module")
def attention_artifact(tmp_path_factory):
    return make_tiny_artifact(tmp_path_factory.mktemp("models") / "attending", epochs=20,
                              attention=True)


def test_an_attention_artifact_round_trips_with_its_format(attention_artifact, artifact,
                                                           tmp_path):
    from mlcore.artifact import ATTENTION_FORMAT, FORMAT, save_artifact

    manifest = json.loads((attention_artifact / "model.json").read_text())
    assert manifest["format"] == ATTENTION_FORMAT
    assert manifest["decoder"]["attention_layer"] == "head_relu6"
    assert json.loads((artifact / "model.json").read_text())["format"] == FORMAT  # unchanged
    maps = np.random.default_rng(1).normal(size=(4, 49, 1280)).astype(np.float32)
    info, decoder, vocabulary = load_artifact(attention_artifact)
    assert decoder.config.attends
    saved = save_artifact(tmp_path / "again", decoder=decoder, vocabulary=vocabulary,
                          encoder=info.encoder, version="again-2", weights_dtype="float32")
    assert _captions(saved, maps) == _captions(attention_artifact, maps)
    manifest["format"] = "mlcore.captioner/3"
    (saved / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="captioner/3"):
        read_info(saved)


def test_the_captioner_attends_over_the_encoders_map_of_the_same_pass(attention_artifact,
                                                                     tmp_path):
    from PIL import Image

    from mlcore.captioner import Captioner
    from mlcore.images import load_image
    from mlcore.tag_head import TagHead, build_tag_head_model, save_tag_head

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(8).integers(0, 256, (120, 90, 3), dtype=np.uint8)
                    ).save(image)
    captioner = Captioner.load(attention_artifact)
    assert captioner.attention_layer == "head_relu6"
    result, = captioner.suggest([image], beam_width=2)
    words = result.caption.split()
    assert words and result.attention_grid == (7, 7)
    assert result.attention.shape == (len(words), 49)
    np.testing.assert_allclose(result.attention.sum(axis=1), 1.0, rtol=1e-4)
    served = result.as_dict()["attention"]
    assert served["grid"] == [7, 7] and len(served["words"]) == len(words)
    # the same captions as decoding the encoder's map directly
    loaded = load_image(image, size=224)
    _, (maps,) = captioner.encoder.encode_layers(loaded[None], ("head_relu6",))
    direct = captioner.caption_features(maps.reshape(1, 49, 1280), beam_width=2)[0]
    assert direct.captions == result.captions
    # with a tag head that taps another layer, one pass serves both
    copy = tmp_path / "with_head"
    shutil.copytree(attention_artifact, copy)
    model = build_tag_head_model(1280, 2, 8, 0.0, encoder="efficientnet_lite0", tap="block14_add")
    save_tag_head(copy, TagHead(["dog", "beach"], model, 8, 0.0, encoder="efficientnet_lite0",
                                tap="block14_add"))
    with_head = Captioner.load(copy)
    assert with_head.caption_images([image], 2)[0].captions == result.captions
