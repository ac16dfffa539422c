"""Caption → hashtag extraction on real caption text (mlcore.extractor)."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcore.extractor import (
    DEFAULT_BLOCKLIST,
    DEFAULT_EXTRA_STOPWORDS,
    MAX_TAGS_LIMIT,
    ExtractorConfig,
    ScoredTag,
    extract_hashtags,
    normalize_tag,
    singularize,
)
from mlcore.nltk_setup import NLTK_DATA_DIR, english_stopwords, ensure_nltk_data

REPO_ROOT = Path(__file__).resolve().parents[2]

# Real Flickr8k-style captions (the style the captioner is trained on).
FLICKR_CAPTIONS = [
    "A black dog is running through the grass .",
    "A little girl in a pink dress is climbing the stairs into a wooden cabin .",
    "Two men in orange jackets are standing in front of a red truck .",
    "A boy in a blue shirt jumps off a rock into the water .",
    "A group of people are sitting on benches near the beach .",
    "A woman wearing sunglasses is holding a white puppy .",
    "Children are playing soccer on a grassy field .",
    "A skier is going down a snowy mountain while others watch .",
]


def tags(hashtags):
    return [hashtag.tag for hashtag in hashtags]


# --- NLTK stopwords, offline ----------------------------------------------------------------


def _run_python(script: str, cwd, env: dict) -> str:
    """Run ``script`` in a fresh interpreter that imports this checkout; its stripped stdout."""
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd,
                            env={**env, "PYTHONPATH": str(REPO_ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_shipped_stopword_file_is_nltks_english_list():
    words = (NLTK_DATA_DIR / "corpora" / "stopwords" / "english").read_text("utf-8").splitlines()
    assert len(words) == 198 == len(set(words))
    assert words == sorted(words)
    # The classic 179-word list is all there, from "i, me, my" to the n't contractions.
    for word in [
        "i",
        "me",
        "myself",
        "you're",
        "should've",
        "that'll",
        "ain",
        "mightn't",
        "wouldn't",
    ]:
        assert word in words
    assert {"the", "a", "in", "through", "while", "of", "on", "is", "are"} <= set(words)
    assert "dog" not in words and "black" not in words


def test_stopwords_load_through_nltk_without_nltk_data_and_without_downloading(tmp_path):
    # A fresh interpreter with no NLTK_DATA, an empty HOME and nltk.data.path emptied: the
    # only data NLTK can find is the copy this package ships, and nltk.download must not run.
    script = """
import nltk, nltk.data
def no_download(*args, **kwargs):
    raise AssertionError("nltk.download must never be called")
nltk.download = no_download
nltk.data.path[:] = []
from mlcore.nltk_setup import NLTK_DATA_DIR, ensure_nltk_data
ensure_nltk_data()
ensure_nltk_data()
assert nltk.data.path == [str(NLTK_DATA_DIR)], nltk.data.path
from nltk.corpus import stopwords
words = stopwords.words("english")
assert len(words) == 198 and "the" in words, len(words)
found = nltk.data.find("corpora/stopwords/english")
assert str(found).startswith(str(NLTK_DATA_DIR)), found
assert "english" in stopwords.fileids() and "README" not in stopwords.fileids()
from mlcore.extractor import extract_hashtags
assert [h.tag for h in extract_hashtags("the dog in the snow")] == ["#dog", "#snow"]
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env["HOME"] = str(tmp_path)
    assert _run_python(script, cwd=tmp_path, env=env) == "ok"


def test_ensure_nltk_data_is_idempotent_and_puts_ours_first():
    import nltk.data

    ensure_nltk_data()
    before = list(nltk.data.path)
    assert before[0] == str(NLTK_DATA_DIR)
    ensure_nltk_data()
    assert nltk.data.path == before
    assert nltk.data.path.count(str(NLTK_DATA_DIR)) == 1


def test_extractor_never_calls_nltk_download(monkeypatch):
    import nltk

    def no_download(*args, **kwargs):
        raise AssertionError("nltk.download must never be called")

    monkeypatch.setattr(nltk, "download", no_download)
    assert "the" in english_stopwords()
    assert tags(extract_hashtags("a dog on the beach")) == ["#dog", "#beach"]


# --- what becomes a tag ------------------------------------------------------------------------


def test_issue_example_caption():
    result = extract_hashtags("a black dog runs through the grass")
    assert tags(result) == ["#black", "#dog", "#running", "#grass"]
    assert all(hashtag.score == 1.0 for hashtag in result)


def test_no_stopword_or_filler_ever_becomes_a_tag():
    stopwords = english_stopwords()
    config = ExtractorConfig(max_tags=30)
    produced = {
        hashtag.name
        for caption in FLICKR_CAPTIONS
        for hashtag in extract_hashtags(caption, config=config)
    }
    assert not produced & stopwords
    assert not produced & DEFAULT_EXTRA_STOPWORDS
    for word in [
        "a",
        "the",
        "through",
        "in",
        "is",
        "are",
        "of",
        "on",
        "into",
        "off",
        "while",
        "front",
        "two",
        "group",
        "near",
        "wearing",
        "holding",
        "standing",
        "sitting",
        "little",
        "other",
        "watch",
        "going",
    ]:
        assert word not in produced, word


def test_expected_tags_for_flickr_captions():
    expected = {
        FLICKR_CAPTIONS[1]: [
            "#girl",
            "#pink",
            "#dress",
            "#climbing",
            "#stairs",
            "#wooden",
            "#cabin",
        ],
        FLICKR_CAPTIONS[2]: ["#man", "#orange", "#jacket", "#red", "#truck"],
        FLICKR_CAPTIONS[3]: ["#boy", "#blue", "#shirt", "#jumping", "#rock", "#water"],
        FLICKR_CAPTIONS[4]: ["#person", "#bench", "#beach"],
        FLICKR_CAPTIONS[5]: ["#woman", "#sunglasses", "#white", "#puppy"],
        FLICKR_CAPTIONS[6]: ["#child", "#playing", "#soccer", "#grassy", "#field"],
        FLICKR_CAPTIONS[7]: ["#skier", "#snowy", "#mountain"],
    }
    for caption, wanted in expected.items():
        assert tags(extract_hashtags(caption)) == wanted, caption


def test_plural_singular_and_case_duplicates_collapse():
    result = extract_hashtags("Two dogs and a Dog chase DOGS")
    assert tags(result) == ["#dog", "#chasing"]
    result = extract_hashtags(["Three puppies on the beach", "a puppy on a beach", "BEACHES"])
    assert [(h.tag, round(h.score, 3)) for h in result] == [("#beach", 1.0), ("#puppy", 0.667)]


@pytest.mark.parametrize(
    ("plural", "singular"),
    [
        ("dogs", "dog"),
        ("puppies", "puppy"),
        ("ladies", "lady"),
        ("babies", "baby"),
        ("men", "man"),
        ("women", "woman"),
        ("children", "child"),
        ("people", "person"),
        ("firemen", "fireman"),
        ("snowmen", "snowman"),
        ("feet", "foot"),
        ("teeth", "tooth"),
        ("mice", "mouse"),
        ("geese", "goose"),
        ("boxes", "box"),
        ("buses", "bus"),
        ("beaches", "beach"),
        ("benches", "bench"),
        ("bushes", "bush"),
        ("dresses", "dress"),
        ("leaves", "leaf"),
        ("wolves", "wolf"),
        ("knives", "knife"),
        ("scarves", "scarf"),
        ("waves", "wave"),
        ("gloves", "glove"),
        ("horses", "horse"),
        ("houses", "house"),
        ("shoes", "shoe"),
        ("skis", "ski"),
        ("photos", "photo"),
        ("tomatoes", "tomato"),
        ("movies", "movie"),
        ("cookies", "cookie"),
        ("pies", "pie"),
        ("boys", "boy"),
        ("runs", "run"),
        ("watches", "watch"),
        ("flies", "fly"),
        ("goes", "go"),
        ("trees", "tree"),
        ("mountains", "mountain"),
        ("headaches", "headache"),
    ],
)
def test_singularize_real_caption_plurals(plural, singular):
    assert singularize(plural) == singular


@pytest.mark.parametrize(
    "word",
    [
        "grass",
        "dress",
        "glass",
        "bus",
        "gas",
        "cactus",
        "octopus",
        "tennis",
        "iris",
        "jeans",
        "shorts",
        "pants",
        "glasses",
        "sunglasses",
        "goggles",
        "clothes",
        "stairs",
        "overalls",
        "series",
        "species",
        "news",
        "lens",
        "canvas",
        "christmas",
        "gymnastics",
        "dog",
        "sheep",
        "fish",
        "ramen",
        "business",
        "across",
        "famous",
    ],
)
def test_singularize_leaves_non_plurals_alone(word):
    assert singularize(word) == word


def test_numbers_one_letter_and_non_words_are_dropped():
    result = extract_hashtags("3 dogs , 1 b c x 42 ... !!! 2021 # @ a")
    assert tags(result) == ["#dog"]


def test_tags_are_lowercase_ascii_slugs():
    result = extract_hashtags(["A CAFÉ in Zürich with crème brûlée 🍰", "Ünïcödé ☃ façade"])
    assert tags(result) == ["#cafe", "#zurich", "#creme", "#brulee", "#unicode", "#facade"]
    for hashtag in result:
        assert hashtag.tag.startswith("#")
        assert hashtag.name.isascii() and hashtag.name.isalnum() and hashtag.name.islower()


def test_empty_and_stopword_only_input():
    assert extract_hashtags([]) == []
    assert extract_hashtags("") == []
    assert extract_hashtags("the of and a in on") == []
    assert extract_hashtags(["", "   "], [-1.0, -2.0]) == []


# --- beam weighting -----------------------------------------------------------------------------


def test_beam_weights_are_softmax_of_log_probs():
    captions = [
        "a dog runs on the beach",
        "a dog plays in the sand",
        "a cat sleeps on a sofa",
    ]
    log_probs = [-2.0, -3.0, -7.0]
    result = {
        h.tag: h.score for h in extract_hashtags(captions, log_probs, ExtractorConfig(max_tags=30))
    }
    z = sum(math.exp(lp) for lp in log_probs)
    w = [math.exp(lp) / z for lp in log_probs]
    assert result["#dog"] == pytest.approx(w[0] + w[1], abs=1e-6)
    assert result["#beach"] == pytest.approx(w[0], abs=1e-6)
    assert result["#sand"] == pytest.approx(w[1], abs=1e-6)
    assert result["#cat"] == pytest.approx(w[2], abs=1e-6)
    # A word only the unlikely caption produced stays below every word of the top caption.
    assert result["#cat"] < result["#beach"] < result["#dog"]
    assert all(0.0 <= score <= 1.0 for score in result.values())


def test_word_in_every_caption_scores_one_and_order_follows_scores():
    captions = ["a dog jumps into the pool", "a brown dog in a pool", "a dog swims"]
    result = extract_hashtags(captions, [-1.2, -1.9, -4.0])
    assert result[0] == ScoredTag("#dog", 1.0, ("caption",))
    scores = [h.score for h in result]
    assert scores == sorted(scores, reverse=True)
    assert tags(result)[:2] == ["#dog", "#pool"]


def test_uniform_weights_without_log_probs():
    result = {
        h.tag: h.score
        for h in extract_hashtags(["a dog on grass", "a dog on sand", "a cat on sand", "a cat"])
    }
    assert result == {"#dog": 0.5, "#cat": 0.5, "#sand": 0.5, "#grass": 0.25}
    # Equal scores: the most likely caption's words first, in caption order.
    assert tags(
        extract_hashtags(["a dog on grass", "a dog on sand", "a cat on sand", "a cat"])
    ) == [
        "#dog",
        "#sand",
        "#cat",
        "#grass",
    ]


def test_ties_broken_by_position_in_best_caption_not_list_order():
    captions = ["zebra by a lake", "a horse and a zebra by a lake"]
    # The second caption is the likelier one, so its order wins among the tied tags.
    result = extract_hashtags(captions, [-5.0, -1.0])
    assert tags(result) == ["#zebra", "#lake", "#horse"]
    result = extract_hashtags(["lake zebra", "zebra lake"], [-1.0, -1.0])
    assert tags(result) == ["#lake", "#zebra"]


def test_one_odd_caption_cannot_dominate():
    captions = ["a man rides a bike on a dirt road"] * 2 + ["a giraffe eating pizza"]
    result = {
        h.tag: h.score
        for h in extract_hashtags(captions, [-3.0, -3.1, -9.0], ExtractorConfig(max_tags=30))
    }
    assert result["#giraffe"] < 0.01 < 0.99 < result["#bike"]


def test_minus_infinity_log_probs_and_bad_log_probs():
    result = extract_hashtags(["a dog", "a cat"], [0.0, -math.inf])
    assert result == [ScoredTag("#dog", 1.0, ("caption",))]  # a caption of probability 0 adds nothing
    assert tags(extract_hashtags(["a dog", "a cat"], [-math.inf, -math.inf])) == ["#dog", "#cat"]
    with pytest.raises(ValueError, match="2 captions but 1 log_probs"):
        extract_hashtags(["a dog", "a cat"], [-1.0])
    with pytest.raises(ValueError):
        extract_hashtags(["a dog", "a cat"], [-1.0, math.nan])
    with pytest.raises(TypeError):
        extract_hashtags(["a dog", None])  # type: ignore[list-item]


def test_single_string_is_one_caption_with_weight_one():
    assert extract_hashtags("a dog", [-50.0]) == [ScoredTag("#dog", 1.0, ("caption",))]
    assert extract_hashtags("a dog") == extract_hashtags(["a dog"])


# --- config -------------------------------------------------------------------------------------


def test_max_tags_default_cap_and_limit():
    caption = (
        "dog cat horse cow sheep goat pig duck goose swan eagle hawk owl crow sparrow robin "
        "parrot lion tiger bear wolf fox deer moose rabbit squirrel mouse rat bat frog toad "
        "snake lizard turtle fish shark whale dolphin seal otter beaver"
    )
    assert len(extract_hashtags(caption)) == 10
    assert len(extract_hashtags(caption, config=ExtractorConfig(max_tags=3))) == 3
    capped = extract_hashtags(caption, config=ExtractorConfig(max_tags=MAX_TAGS_LIMIT))
    assert MAX_TAGS_LIMIT == 30 and len(capped) == 30
    assert tags(capped)[:3] == ["#dog", "#cat", "#horse"]
    with pytest.raises(ValueError, match="30"):
        ExtractorConfig(max_tags=31)
    with pytest.raises(ValueError):
        ExtractorConfig(max_tags=0)
    with pytest.raises(TypeError):
        ExtractorConfig(max_tags="10")  # type: ignore[arg-type]
    config = ExtractorConfig()
    config.max_tags = 100  # mutated after creation: still refused when used
    with pytest.raises(ValueError):
        extract_hashtags(caption, config=config)


def test_min_score_filter():
    captions = ["a dog on the beach", "a dog in the sand", "a dog with a frisbee"]
    config = ExtractorConfig(min_score=0.5)
    result = extract_hashtags(captions, [-0.5, -1.5, -2.5], config)
    assert tags(result) == ["#dog", "#beach"]
    assert all(h.score >= 0.5 for h in result)
    assert tags(extract_hashtags(captions, [-0.5, -1.5, -2.5], ExtractorConfig(min_score=1.0))) == [
        "#dog"
    ]
    with pytest.raises(ValueError):
        ExtractorConfig(min_score=1.5)
    with pytest.raises(ValueError):
        ExtractorConfig(min_score=math.nan)


def test_default_blocklist_and_custom_blocklist():
    assert {"nsfw", "porn", "nude", "sex", "xxx", "kill", "hate"} <= DEFAULT_BLOCKLIST
    assert tags(extract_hashtags("a sexy nude woman on the beach, nsfw xxx")) == [
        "#woman",
        "#beach",
    ]
    assert tags(extract_hashtags("nudes and dogs")) == ["#dog"]  # plural of a blocked word
    config = ExtractorConfig(blocklist=DEFAULT_BLOCKLIST | {"#Beaches", "Dog"})
    assert tags(extract_hashtags("two dogs on a beach with a ball", config=config)) == ["#ball"]
    with pytest.raises(TypeError):
        ExtractorConfig(blocklist="porn")  # type: ignore[arg-type]


def test_extra_stopwords_are_configurable():
    caption = "a man standing in front of a red car"
    assert tags(extract_hashtags(caption)) == ["#man", "#red", "#car"]
    everything = ExtractorConfig(extra_stopwords=frozenset())
    assert tags(extract_hashtags(caption, config=everything)) == [
        "#man",
        "#standing",
        "#front",
        "#red",
        "#car",
    ]
    fewer = ExtractorConfig(extra_stopwords=DEFAULT_EXTRA_STOPWORDS | {"Reds"})
    assert tags(extract_hashtags(caption, config=fewer)) == ["#man", "#car"]


def test_hashtag_as_dict():
    hashtag = extract_hashtags("a dog")[0]
    assert hashtag.as_dict() == {"tag": "#dog", "score": 1.0, "sources": ["caption"]}
    assert hashtag.name == "dog"
    with pytest.raises(AttributeError):
        hashtag.score = 0.5  # type: ignore[misc]


# --- normalize_tag ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#Dogs", "dog"),
        ("dog", "dog"),
        ("  #DOG  ", "dog"),
        ("##puppies", "puppy"),
        ("Café", "cafe"),
        ("#Hot Dog", "hotdog"),
        ("#hot-dogs", "hotdog"),
        ("#covid19", "covid19"),
        ("#Grass", "grass"),
        ("#Jeans", "jeans"),
        ("#Women", "woman"),
        ("###", None),
        ("", None),
        ("#a", None),
        ("#2024", None),
        ("🐶", None),
        ("#" + "x" * 51, None),
    ],
)
def test_normalize_tag(text, expected):
    assert normalize_tag(text) == expected


def test_normalize_tag_agrees_with_extractor_output():
    for caption in FLICKR_CAPTIONS:
        for hashtag in extract_hashtags(caption):
            assert normalize_tag(hashtag.tag) == hashtag.name
    assert normalize_tag(None) is None  # type: ignore[arg-type]


def test_text_and_extractor_import_neither_tensorflow_nor_django():
    script = (
        "import sys, mlcore.text, mlcore.extractor, mlcore.nltk_setup\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(loaded & {'tensorflow', 'keras', 'django'})\n"
        "print(heavy)\n"
    )
    assert _run_python(script, cwd=REPO_ROOT, env=dict(os.environ)) == "[]"
