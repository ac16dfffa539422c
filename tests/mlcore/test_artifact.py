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
