"""Fusion of captions, tag heads and the ImageNet classifier; the WordNet word data it reads.

Real data files, real TensorFlow (the tiny trained captioner beside the real Lite0 encoder and its
ImageNet head), no mocks.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from mlcore.artifact import ArtifactError, DEFAULT_MODEL_DIR, read_info, set_version
from mlcore.classes import CLASS_COUNT, class_tag_map, imagenet_classes, verb_forms
from mlcore.decoding import CaptionSet
from mlcore.extractor import DEFAULT_BLOCKLIST, SOURCES, ExtractorConfig, caption_words, normalize_tag
from mlcore.fusion import (FEATURES, LOW_CAPTION_CONFIDENCE, FusionConfig, caption_confidence,
                           fuse_hashtags, gather_evidence, load_fusion_config, save_fusion_config)

TABBY, ESPRESSO, GOLDEN_RETRIEVER = 281, 967, 207
GENERIC = {"object", "artifact", "artefact", "organism", "device", "entity", "thing", "whole",
           "instrumentality", "equipment", "structure", "matter", "substance", "animal"}


def one_hot(index: int, probability: float = 0.9) -> np.ndarray:
    row = np.full(CLASS_COUNT, (1 - probability) / (CLASS_COUNT - 1), np.float32)
    row[index] = probability
    return row


def beam(*captions: str) -> CaptionSet:
    return CaptionSet(list(captions), [-1.0 - i for i in range(len(captions))])


def shipped_fusion() -> FusionConfig:
    return load_fusion_config(DEFAULT_MODEL_DIR)


# --- the WordNet data ---------------------------------------------------------------------------


def test_every_class_has_valid_canonical_tags_and_no_generic_word() -> None:
    classes = imagenet_classes()
    assert len(classes) == CLASS_COUNT and len({c.wnid for c in classes}) == CLASS_COUNT
    for entry in classes:
        assert entry.tags, entry.name
        for tag in entry.tags:
            assert normalize_tag(tag) == tag, (entry.name, tag)  # stored in canonical form
            assert tag not in DEFAULT_BLOCKLIST and tag not in GENERIC, (entry.name, tag)
        assert set(entry.tags) <= entry.hits
        assert not entry.hits & GENERIC, entry.name


def test_classes_get_their_name_and_the_kind_people_tag() -> None:
    classes = imagenet_classes()
    assert classes[GOLDEN_RETRIEVER].tags == ("goldenretriever", "dog")
    assert classes[ESPRESSO].tags[:2] == ("espresso", "coffee")
    assert "cat" in classes[TABBY].tags and "tabby" in classes[TABBY].hits
    assert classes[TABBY].wnid == "n02123045"


def test_verb_forms_are_one_tag_in_the_ing_form_and_nouns_stay_nouns() -> None:
    forms = verb_forms()
    assert forms["climb"] == "climbing" and forms["eat"] == "eating" and forms["run"] == "running"
    for noun in ("fish", "water", "bear", "lock", "dog", "crane"):
        assert noun not in forms
    assert normalize_tag("#Climbs") == normalize_tag("climb") == normalize_tag("climbing") == "climbing"
    assert normalize_tag("#bears") == "bear"


def test_class_tag_map_sums_the_classes_that_carry_a_tag() -> None:
    tag_map = class_tag_map()
    probabilities = np.zeros((1, CLASS_COUNT), np.float32)
    dogs = [i for i, c in enumerate(imagenet_classes()) if "dog" in c.tags][:3]
    probabilities[0, dogs] = [0.5, 0.2, 0.1]
    parts = tag_map.tag_probabilities(probabilities)[0]
    dog = tag_map.index["dog"]
    assert parts[dog, 1] == pytest.approx(0.8) and parts[dog, 0] == 0.0  # a hypernym of all three
    own = tag_map.index[imagenet_classes()[dogs[0]].tags[0]]
    assert parts[own, 0] == pytest.approx(0.5)


@pytest.mark.skipif(not Path("/usr/share/wordnet/index.sense").is_file(),
                    reason="Debian's wordnet-base + wordnet-sense-index are not installed")
def test_the_shipped_word_data_regenerates_from_wordnet(tmp_path: Path) -> None:
    from mlcore import classes
    from training.wordnet_tags import write

    written = write(output_dir=tmp_path)
    for path in written:
        assert json.loads(path.read_text()) == json.loads((classes.DATA_DIR / path.name).read_text())


# --- fusion -------------------------------------------------------------------------------------


def test_uncalibrated_fusion_keeps_the_heads_order_and_the_rules() -> None:
    captions = beam("a dog runs on the grass", "a dog on the beach")
    head = {"dog": 0.9, "puppy": 0.6, "nude": 0.99, "the": 0.8}
    evidence = gather_evidence(captions, head, None)
    tags = fuse_hashtags(evidence, ExtractorConfig(), FusionConfig())
    names = [tag.tag for tag in tags]
    assert names[:2] == ["#dog", "#puppy"]
    assert "#nude" not in names and "#the" not in names  # blocklist and stopwords
    grass = next(tag for tag in tags if tag.tag == "#grass")  # only the captions know it
    assert grass.score == pytest.approx(0.1 * evidence.tags["grass"].caption, abs=1e-6)
    assert grass.sources == ("caption",)
    assert next(tag for tag in tags if tag.tag == "#dog").sources == ("caption", "tag_head")


def test_verb_forms_of_head_and_captions_become_one_suggestion() -> None:
    evidence = gather_evidence(beam("a man is climbing a rock", "a man climbs a rock"),
                               {"climb": 0.7, "climbing": 0.4, "rock": 0.5}, None)
    names = [tag.tag for tag in fuse_hashtags(evidence, ExtractorConfig(), FusionConfig())]
    assert names.count("#climbing") == 1 and "#climb" not in names
    assert evidence.tags["climbing"].head == 0.7


@pytest.mark.parametrize("fusion", [FusionConfig(), "shipped"], ids=["uncalibrated", "shipped"])
def test_a_candidate_no_source_vouches_for_is_not_suggested(fusion) -> None:
    fusion = shipped_fusion() if fusion == "shipped" else fusion
    probabilities = one_hot(TABBY, 0.97)
    probabilities[GOLDEN_RETRIEVER] = 0.02  # a candidate for the classifier, below SOURCE_MIN_PROBABILITY
    evidence = gather_evidence(beam("a cat on a sofa"), {"cat": 0.6, "grass": 0.01}, probabilities)
    assert "goldenretriever" in evidence.tags and "grass" in evidence.tags  # candidates...
    names = [tag.tag for tag in fuse_hashtags(evidence, ExtractorConfig(min_score=0.0), fusion)]
    assert "#cat" in names and "#sofa" in names
    assert "#goldenretriever" not in names and "#grass" not in names  # ...that nobody vouches for


@pytest.mark.parametrize("fusion", [FusionConfig(), "shipped"], ids=["uncalibrated", "shipped"])
def test_a_confident_classifier_tag_ranks_first_on_a_photo_the_captioner_cannot_know(fusion) -> None:
    fusion = shipped_fusion() if fusion == "shipped" else fusion
    captions = beam("a small white dog is playing with a tennis ball", "a white dog plays with a ball")
    head = {"dog": 0.35, "ball": 0.3, "white": 0.3, "grass": 0.2}
    evidence = gather_evidence(captions, head, one_hot(ESPRESSO, 0.92))
    tags = fuse_hashtags(evidence, ExtractorConfig(), fusion)
    assert tags[0].tag in {"#espresso", "#coffee"}
    assert {"#espresso", "#coffee"} <= {tag.tag for tag in tags[:3]}
    assert tags[0].sources == ("classifier",)
    assert all(0.0 <= tag.score <= 1.0 for tag in tags)
    assert all(set(tag.sources) <= set(SOURCES) and tag.sources for tag in tags)


def test_shipped_fusion_keeps_flickr8k_tags_on_a_flickr8k_photo() -> None:
    captions = beam("a black dog runs through the grass", "a dog runs on the grass")
    head = {"dog": 0.95, "grass": 0.7, "running": 0.6, "black": 0.6, "field": 0.3}
    dog_breed = one_hot(GOLDEN_RETRIEVER, 0.6)
    tags = [tag.tag for tag in fuse_hashtags(gather_evidence(captions, head, dog_breed),
                                             ExtractorConfig(), shipped_fusion())]
    assert tags[0] == "#dog"
    assert {"#grass", "#running", "#black"} <= set(tags[:5])


def test_caption_confidence_is_low_when_the_classifier_is_sure_of_something_else() -> None:
    captions = beam("a small white dog is playing with a tennis ball")
    head = {"dog": 0.6, "ball": 0.4}
    for fusion in (FusionConfig(), shipped_fusion()):
        on_a_cat = caption_confidence(gather_evidence(captions, head, one_hot(TABBY, 0.9)), fusion)
        on_a_dog = caption_confidence(gather_evidence(captions, head, one_hot(GOLDEN_RETRIEVER, 0.9)),
                                      fusion)
        assert on_a_cat < LOW_CAPTION_CONFIDENCE <= on_a_dog
        assert on_a_cat <= 0.1 + 1e-6  # at most 1 - the classifier's certainty
    unsure = one_hot(TABBY, 0.3)  # an unsure classifier does not veto
    assert caption_confidence(gather_evidence(captions, head, unsure), FusionConfig()) >= 0.6


def test_fusion_file_round_trips_and_bad_files_fail_clearly(tmp_path: Path) -> None:
    assert load_fusion_config(tmp_path) == FusionConfig()  # no file: the uncalibrated rule
    fitted = FusionConfig(tuple(float(i) / 10 for i in range(len(FEATURES))), {"dog": 1.5}, {"images": {"x": 1}})
    save_fusion_config(tmp_path, fitted)
    assert load_fusion_config(tmp_path) == fitted
    assert (tmp_path / "fusion.json").stat().st_mode & 0o044  # readable by the worker's user
    (tmp_path / "fusion.json").write_text(json.dumps({"format": "mlcore.fusion/1", "features": ["x"]}))
    with pytest.raises(ArtifactError, match="fusion.json is not a valid fusion file"):
        load_fusion_config(tmp_path)
    with pytest.raises(ValueError, match="values for"):
        FusionConfig((1.0, 2.0))


def test_shipped_model_has_a_fitted_fusion_and_a_new_version() -> None:
    fusion = shipped_fusion()
    assert fusion.weights is not None and len(fusion.weights) == len(FEATURES)
    assert fusion.fitted_on["images"]["flickr8k"] > 0 and fusion.fitted_on["images"]["imagenet"] > 0
    info = read_info(DEFAULT_MODEL_DIR)
    assert info.version != "efficientnet_lite0-flickr8k-1.3"


def test_set_version_keeps_the_old_one(tmp_path: Path) -> None:
    from mlcore.testing import make_tiny_artifact

    artifact = make_tiny_artifact(tmp_path / "tiny", epochs=1, version="v1")
    set_version(artifact, "v2")
    assert read_info(artifact).version == "v2"
    assert json.loads((artifact / "model.json").read_text())["derived_from"] == ["v1"]


# --- the captioner, end to end ------------------------------------------------------------------


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory):
    from mlcore.captioner import Captioner
    from mlcore.testing import make_tiny_artifact

    return Captioner.load(make_tiny_artifact(tmp_path_factory.mktemp("fusion") / "tiny", epochs=20))


def test_captioner_names_coffee_and_cat_it_was_never_trained_on(tiny_captioner) -> None:
    """The tiny captioner only knows dogs, beaches, bikes: the classifier names the photos."""
    coffee, cat = tiny_captioner.suggest([png(skimage_data.coffee()), png(skimage_data.chelsea())])
    assert coffee.hashtags[0].tag in {"#espresso", "#coffee", "#cup"}
    assert "classifier" in coffee.hashtags[0].sources
    assert cat.hashtags[0].tag == "#cat" and "classifier" in cat.hashtags[0].sources
    assert cat.caption_confidence < LOW_CAPTION_CONFIDENCE  # a dog/beach/bike caption on a cat
    assert cat.as_dict()["hashtags"][0]["sources"] == list(cat.hashtags[0].sources)
    # The captions' words come from the same extraction (the re-ranker reads them, not a second one).
    assert cat.caption_words and cat.caption_words == caption_words(cat.captions)


def test_class_probabilities_come_from_the_captioners_own_forward_pass(tiny_captioner) -> None:
    encoder = tiny_captioner.encoder
    calls = []
    original = encoder.encode

    def counting(images, *args, **kwargs):
        calls.append(len(images))
        return original(images, *args, **kwargs)

    encoder.encode = counting
    try:
        images = [png(skimage_data.coffee()), png(skimage_data.chelsea())]
        evidence = tiny_captioner.evidence(images)
    finally:
        del encoder.encode
    assert calls == [2]  # one CNN pass for both images: captions and classes share it
    from mlcore.images import load_image

    pooled = encoder.encode(np.stack([load_image(image) for image in images]))
    expected = class_tag_map().tag_probabilities(encoder.classify(pooled))
    cat = evidence[1].tags["cat"]
    assert cat.class_own + cat.class_hypernym == pytest.approx(
        float(expected[1, class_tag_map().index["cat"]].sum()), abs=1e-4)


def test_captioner_without_classifier_uses_captions_only(tmp_path_factory) -> None:
    from mlcore.captioner import Captioner
    from mlcore.testing import make_tiny_artifact

    captioner = Captioner.load(make_tiny_artifact(tmp_path_factory.mktemp("nocls") / "t", epochs=5),
                               classifier=False)
    result = captioner.suggest([png(skimage_data.chelsea())])[0]
    assert all("classifier" not in tag.sources for tag in result.hashtags)
    assert "#cat" not in [tag.tag for tag in result.hashtags]


def test_the_classifiers_best_tag_keeps_the_fifth_slot_on_an_unfamiliar_photo() -> None:
    """A fitted model that trusts the heads far more than the classifier (as on a Flickr8k-looking
    caption of a shark): the classifier's best tag still gets the fifth slot, scored like the tag
    it displaces, unless the photo's classes are Flickr8k-like or the classifier is unsure."""
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("head")], weights[FEATURES.index("head_missing")] = 5.0, -5.0
    captions = beam("a man in a red shirt stands on the beach near the water")
    head = {"beach": 0.9, "water": 0.8, "man": 0.8, "ocean": 0.7, "red": 0.6, "shirt": 0.6, "sand": 0.5}

    def ranked(probability: float, familiar: dict[str, float]) -> list:
        fusion = FusionConfig(tuple(weights), familiar)
        return fuse_hashtags(gather_evidence(captions, head, one_hot(ESPRESSO, probability)),
                             ExtractorConfig(), fusion)

    tags = ranked(0.3, {})
    assert tags[4].tag in {"#coffee", "#espresso"} and tags[4].sources == ("classifier",)
    assert tags[4].score == tags[5].score  # raised to the displaced tag's score: still ordered
    assert [tag.score for tag in tags] == sorted((tag.score for tag in tags), reverse=True)
    assert all(0.0 <= tag.score <= 1.0 for tag in tags)
    familiar = {"espresso": 1.0}  # a Flickr8k-like photo: no slot
    assert not {"#coffee", "#espresso"} & {tag.tag for tag in ranked(0.3, familiar)[:5]}
    assert not {"#coffee", "#espresso"} & {tag.tag for tag in ranked(0.1, {})[:5]}  # unsure: no slot
