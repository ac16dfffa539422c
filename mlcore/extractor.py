"""Captions → ranked hashtags.

The captioner's beam search returns a few captions with their log-probabilities. Each caption is
tokenised with the shared tokenizer (:func:`mlcore.text.clean_caption`), stopwords and caption
filler are removed, plural/singular and case variants collapse to one canonical form, and each tag
is scored by the share of the beam's probability mass held by the captions that mention it. A tag
from the top caption therefore scores high, the runner-up captions add recall, and a word that only
one unlikely caption produced stays low.

No WordNet and no network: stopwords come from the NLTK list this package ships
(:mod:`mlcore.nltk_setup`), and plurals are reduced by the rules in :func:`singularize`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from mlcore.classes import verb_forms
from mlcore.nltk_setup import english_stopwords
from mlcore.text import ascii_fold, clean_caption

__all__ = [
    "DEFAULT_BLOCKLIST",
    "DEFAULT_EXTRA_STOPWORDS",
    "MAX_TAG_LENGTH",
    "MAX_TAGS_LIMIT",
    "SOURCES",
    "EVERY_TAG",
    "ExtractorConfig",
    "ScoredTag",
    "extract_hashtags",
    "canonical_word",
    "caption_tag_shares",
    "caption_tags",
    "caption_words",
    "usable_tag",
    "normalize_tag",
    "singularize",
]

#: Instagram's limit on hashtags per post; ``ExtractorConfig.max_tags`` may not exceed it.
MAX_TAGS_LIMIT = 30

#: Longest tag we produce or accept: Django's ``SlugField`` default ``max_length``.
MAX_TAG_LENGTH = 50

# Caption words that survive NLTK's stopword list but are useless as hashtags.
#
# How the list was made: every Flickr8k caption (40,460) was run through ``clean_caption`` and
# the NLTK stopwords, and the ~300 most frequent remaining words (by the number of captions that
# contain them) were read one by one. A word was kept out when it says nothing about *what* is in
# the photo, only how a sentence about it is built:
#   * position / direction: front, top, side, back, behind, near, next, across ...
#   * counts and quantifiers: one, two, three ..., several, many, another, group ...
#   * placeholders: something, someone, object, area, background, picture ...
#   * posture / perception / dressing verbs that every caption uses to link subject and object:
#     wearing, holding, standing, sitting, looking, watching, carrying, dressed, covered ...
#   * vague size / age adjectives: little, small, large, big, young, old, long, high, tall.
#   * "in the air" / "on the ground" / "brown colored" / "open mouth" fragments.
# Kept as tags: nouns (dog, beach, bike), colours (#black and #red are real hashtags), and
# action verbs (running, jumping, swimming) because those are what people search for.
# The singulariser runs before this check too, so "stands"/"sits"/"ones" are caught by their
# canonical forms "stand"/"sit"/"one"; both forms are listed where the -ing form differs.
DEFAULT_EXTRA_STOPWORDS: frozenset[str] = frozenset(
    {
        # position and direction
        "front", "top", "side", "back", "middle", "near", "nearby", "next", "behind", "beside",
        "around", "along", "across", "toward", "towards", "onto", "outside", "inside", "past",
        "away", "beneath", "underneath", "upon", "within", "left", "right", "foreground",
        "background", "center", "centre", "corner", "edge", "far", "close", "together",
        "sideways", "air", "ground",
        # counts and quantifiers
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "dozen",
        "several", "many", "another", "other", "others", "lot", "lots", "group", "bunch", "pair",
        "couple", "first", "second", "single", "alone", "various", "whole", "half", "much",
        # placeholders and generic nouns
        "something", "someone", "somebody", "thing", "object", "area", "part", "picture", "photo",
        "image", "view", "way", "kind", "type", "bottom", "end", "while", "whilst", "day",
        # posture, perception and dressing verbs that link subject and object
        "wearing", "wear", "holding", "hold", "standing", "stand", "sitting", "sit", "looking",
        "look", "watching", "watch", "carrying", "carry", "dressed", "covered", "surrounded",
        "taking", "take", "making", "make", "going", "go", "trying", "try", "getting", "get",
        "using", "use", "doing", "being", "having", "lying", "laying", "lay", "lie", "seen",
        "appears", "appear", "waiting", "wait", "posing", "pose", "stare", "staring", "shown",
        "coming", "come", "leaning", "lean", "facing", "filled", "haired",
        # vague size / age / amount adjectives
        "little", "small", "large", "big", "young", "old", "older", "long", "high", "tall",
        "short", "full", "different", "almost", "nearly", "open", "colored", "coloured",
    }
)

# Words never suggested: sexual content, violence/hate, insults a captioner could wrongly attach
# to a person in the photo, and engagement-bait spam tags. Canonical (singular) forms; matching is
# done on the canonical form, so plurals are caught too. Kept short on purpose: platforms extend
# it through ``ExtractorConfig.blocklist`` with their own moderation list.
DEFAULT_BLOCKLIST: frozenset[str] = frozenset(
    {
        # sexual content
        "nsfw", "nude", "naked", "porn", "porno", "pornography", "sex", "sexy", "xxx", "erotic",
        "fetish", "boob", "horny",
        # violence, hate, self-harm, drugs
        "kill", "killing", "murder", "hate", "racist", "nazi", "terrorist", "suicide", "rape",
        "gore", "cocaine", "heroin",
        # insults about people
        "ugly", "fat", "stupid", "idiot", "dumb", "loser",
        # engagement-bait and spam tags
        "spam", "followme", "follow4follow", "followforfollow", "f4f", "like4like", "likeforlike",
        "l4l", "clickbait",
    }
)

# --- singular / plural -------------------------------------------------------------------------

# Plurals the suffix rules in ``singularize`` would get wrong.
_IRREGULAR_PLURALS: dict[str, str] = {
    "men": "man",
    "women": "woman",
    "children": "child",
    "people": "person",
    "feet": "foot",
    "teeth": "tooth",
    "geese": "goose",
    "mice": "mouse",
    "lice": "louse",
    "oxen": "ox",
    "cacti": "cactus",
    "fungi": "fungus",
    "axes": "axe",
    "quizzes": "quiz",
    "buses": "bus",
    "busses": "bus",
    "gases": "gas",
    "lenses": "lens",
    "campuses": "campus",
    "circuses": "circus",
    "octopuses": "octopus",
    "walruses": "walrus",
    "viruses": "virus",
    "bonuses": "bonus",
    "cactuses": "cactus",
    "irises": "iris",
    "canvases": "canvas",
    "atlases": "atlas",
    # -oes plurals of -o nouns (other -oes words such as shoes/toes/canoes just lose the "s")
    "potatoes": "potato",
    "tomatoes": "tomato",
    "heroes": "hero",
    "echoes": "echo",
    "volcanoes": "volcano",
    "mosquitoes": "mosquito",
    "torpedoes": "torpedo",
    "mangoes": "mango",
    "buffaloes": "buffalo",
    "dominoes": "domino",
    # -ves plurals of -f/-fe nouns (other -ves words such as waves/gloves/caves lose the "s")
    "leaves": "leaf",
    "wolves": "wolf",
    "knives": "knife",
    "wives": "wife",
    "lives": "life",
    "calves": "calf",
    "halves": "half",
    "shelves": "shelf",
    "scarves": "scarf",
    "loaves": "loaf",
    "thieves": "thief",
    "elves": "elf",
    "hooves": "hoof",
    "selves": "self",
    "sheaves": "sheaf",
    # -ies plurals of -ie nouns (other -ies words such as puppies/ladies become -y)
    "movies": "movie",
    "cookies": "cookie",
    "selfies": "selfie",
    "zombies": "zombie",
    "brownies": "brownie",
    "smoothies": "smoothie",
    "rookies": "rookie",
    "goalies": "goalie",
    "hoodies": "hoodie",
    "veggies": "veggie",
    "birdies": "birdie",
    "beanies": "beanie",
    "genies": "genie",
    "prairies": "prairie",
    "boogies": "boogie",
    "aussies": "aussie",
    "calories": "calorie",
    "floaties": "floatie",
    # -ches words whose singular ends in -che
    "headaches": "headache",
    "moustaches": "moustache",
    "mustaches": "mustache",
    "niches": "niche",
    "caches": "cache",
    "cliches": "cliche",
    "quiches": "quiche",
    "avalanches": "avalanche",
    "aches": "ache",
    # -is / -us plurals of -i / -u nouns (other words ending in -is/-us are not plurals)
    "skis": "ski",
    "taxis": "taxi",
    "bikinis": "bikini",
    "kiwis": "kiwi",
    "safaris": "safari",
    "martinis": "martini",
    "yetis": "yeti",
    "menus": "menu",
    "emus": "emu",
    "tutus": "tutu",
    "gurus": "guru",
    # verbs in -oes
    "goes": "go",
    "does": "do",
}

# Words that end in "s" but are not plurals of something else (or whose plural is the usual tag).
_INVARIANT: frozenset[str] = frozenset(
    {
        "jeans", "shorts", "pants", "trousers", "tights", "leggings", "overalls", "trunks",
        "glasses", "sunglasses", "eyeglasses", "goggles", "binoculars", "scissors", "pliers",
        "tongs", "clothes", "stairs", "upstairs", "downstairs", "outdoors", "indoors", "news",
        "series", "species", "means", "headquarters", "always", "perhaps", "sometimes",
        "afterwards", "whereas", "thanks", "lens", "canvas", "atlas", "christmas", "texas",
        "chaos", "cosmos", "kudos", "ethos", "pathos", "bias", "alias", "gymnastics",
        "athletics", "acrobatics", "aerobics", "physics", "mathematics", "politics", "economics",
        "electronics", "ethics", "graphics", "olympics", "robotics", "tactics", "dynamics",
        "mumps", "measles", "diabetes", "rabies", "herpes", "billiards", "darts",
        "dominos", "chess", "checkers", "paralympics", "pajamas", "pyjamas", "slacks", "briefs",
        "suds", "rapids", "sideways", "lengthways",
    }
)

# Words ending in "men" that are not plurals of "-man".
_NOT_MEN_PLURALS: frozenset[str] = frozenset(
    {
        "amen", "omen", "ramen", "semen", "stamen", "specimen", "abdomen", "regimen", "hymen",
        "yemen", "carmen", "acumen", "rumen", "albumen", "bitumen", "lumen", "dolmen", "germen",
        "examen", "foramen",
    }
)


def singularize(word: str) -> str:
    """Reduce an English plural to its singular with rules and tables (no WordNet needed).

    ``word`` is one lower-case ``a-z0-9`` token. Applied to every caption word, so third-person
    verbs lose their "s" too ("runs" → "run", "watches" → "watch"), which merges them with the
    base form just as well. Words ending in -ss, -us or -is (bar a table of plurals such as
    "skis"), words of up to three letters ("bus", "gas") and pluralia tantum ("jeans",
    "glasses") are left alone.
    """
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    # Compounds of irregular plurals: firemen, policewomen, snowmen, grandchildren.
    if word.endswith("women"):
        return word[: -len("women")] + "woman"
    if word.endswith("men") and word not in _NOT_MEN_PLURALS:
        return word[: -len("men")] + "man"
    if word.endswith("children"):
        return word[: -len("children")] + "child"
    if len(word) <= 3 or not word.endswith("s") or word in _INVARIANT:
        return word
    if word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        # puppies → puppy, ladies → lady; but pies/ties/lies/dies → pie/tie/lie/die.
        return word[:-1] if len(word) <= 4 else word[:-3] + "y"
    if word.endswith("sses") or word.endswith(("ches", "shes", "xes", "zzes")):
        # dresses → dress, beaches → beach, bushes → bush, boxes → box, buzzes → buzz.
        return word[:-2]
    return word[:-1]  # dogs → dog, boys → boy, horses → horse, waves → wave, shoes → shoe


def canonical_word(word: str) -> str:
    """One form per word: singular nouns, and the ``-ing`` form for a verb's forms (``climbs``,
    ``climb`` → ``climbing``; :mod:`mlcore.classes` says which verbs and why that form)."""
    singular = singularize(word)
    return verb_forms().get(singular, singular)


# --- tags ------------------------------------------------------------------------------------

_NON_SLUG = re.compile(r"[^a-z0-9]+")
#: Tag text in its plainest spelling: optional ``#``, ASCII letters and digits, at least two
#: characters with a letter among them. Every match has a canonical name (:func:`normalize_tag`);
#: the API takes exactly this (with length at most ``MAX_TAG_LENGTH``), so its schema can say so.
TAG_PATTERN = r"^#?([A-Za-z][A-Za-z0-9]+|[0-9]+[A-Za-z][A-Za-z0-9]*)$"


def _is_valid_tag(tag: str) -> bool:
    return 2 <= len(tag) <= MAX_TAG_LENGTH and not tag.isdigit() and _NON_SLUG.search(tag) is None


def normalize_tag(text: str) -> str | None:
    """Canonical form of a tag, for model output and user input alike; ``None`` if unusable.

    ASCII-folded, lower-case, leading ``#`` and any character outside ``a-z0-9`` removed (so
    "Hot Dog" and "#hot-dog" both give ``hotdog``), then singularised: ``"#Dogs"`` → ``"dog"``
    (unless the singular would not be a valid tag).
    Empty, one-character, number-only and over-long (> ``MAX_TAG_LENGTH``) results give ``None``.
    """
    if not isinstance(text, str):
        return None
    tag = _NON_SLUG.sub("", ascii_fold(text).lower())
    if not tag:
        return None
    canonical = canonical_word(tag)
    if _is_valid_tag(canonical):
        return canonical
    # A word whose singular is no tag ("608s" -> "608", "ies" -> "y") keeps its own form, so every
    # text of TAG_PATTERN's shape (the API's contract) has a canonical name.
    return tag if _is_valid_tag(tag) else None


def _normalized_set(words: Iterable[str], name: str) -> frozenset[str]:
    """A word list as both its lower-case ASCII forms and canonical forms (for exact matching)."""
    if isinstance(words, frozenset):
        return _normalized_frozenset(words, name)
    if isinstance(words, (str, bytes)):
        raise TypeError(f"{name} must be a collection of words, not a single string")
    result: set[str] = set()
    for word in words:
        if not isinstance(word, str):
            raise TypeError(f"{name} must contain strings, got {type(word).__name__}")
        folded = _NON_SLUG.sub("", ascii_fold(word).lower())
        if folded:
            result.add(folded)
        canonical = normalize_tag(word)
        if canonical:
            result.add(canonical)
    return frozenset(result)


@lru_cache(maxsize=32)
def _normalized_frozenset(words: frozenset[str], name: str) -> frozenset[str]:
    # Cached so that the default config (made on every call without one) costs nothing.
    return _normalized_set(set(words), name)


@dataclass
class ExtractorConfig:
    """How many tags to return and which words never become tags.

    ``extra_stopwords`` and ``blocklist`` replace the defaults; to extend them pass e.g.
    ``DEFAULT_BLOCKLIST | {"brandname"}``. Entries are normalised like tags ("#Nudes" blocks
    "nude"). Invalid values raise ``ValueError``/``TypeError`` when the config is made.
    """

    max_tags: int = 10
    min_score: float = 0.0
    extra_stopwords: frozenset[str] = field(default=DEFAULT_EXTRA_STOPWORDS)
    blocklist: frozenset[str] = field(default=DEFAULT_BLOCKLIST)

    def __post_init__(self) -> None:
        self.validate()
        self.extra_stopwords = _normalized_set(self.extra_stopwords, "extra_stopwords")
        self.blocklist = _normalized_set(self.blocklist, "blocklist")

    def validate(self) -> None:
        """Check the numeric limits (also re-run by ``extract_hashtags`` after any mutation)."""
        if isinstance(self.max_tags, bool) or not isinstance(self.max_tags, int):
            raise TypeError(f"max_tags must be an int, not {type(self.max_tags).__name__}")
        if not 1 <= self.max_tags <= MAX_TAGS_LIMIT:
            raise ValueError(
                f"max_tags must be between 1 and {MAX_TAGS_LIMIT} (Instagram's limit), "
                f"got {self.max_tags}"
            )
        if isinstance(self.min_score, bool) or not isinstance(self.min_score, (int, float)):
            raise TypeError(f"min_score must be a number, not {type(self.min_score).__name__}")
        if not 0.0 <= self.min_score <= 1.0:  # also rejects NaN
            raise ValueError(f"min_score must be between 0 and 1, got {self.min_score}")


#: Every tag a caption yields (the hard cap, no score floor): for measuring and labelling, not display.
EVERY_TAG = ExtractorConfig(max_tags=MAX_TAGS_LIMIT, min_score=0.0)


#: Where a suggested tag's evidence came from: the beam's captions, the tag heads, the encoder's
#: ImageNet classifier (:mod:`mlcore.classes`).
SOURCES: tuple[str, ...] = ("caption", "tag_head", "classifier")


@dataclass(frozen=True)
class ScoredTag:
    """One suggested tag: ``tag`` is ``"#dog"``-style, ``score`` in [0, 1]; ``sources`` (a subset
    of :data:`SOURCES`, in that order) say why it is suggested."""

    tag: str
    score: float
    sources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The tag without its ``#`` (what tag models and URLs store)."""
        return self.tag[1:]

    def as_dict(self) -> dict[str, str | float | list[str]]:
        return {"tag": self.tag, "score": self.score, "sources": list(self.sources)}


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return english_stopwords()


def _beam_weights(count: int, log_probs: Sequence[float] | None) -> list[float]:
    """Softmax of the beam's log-probabilities (uniform without them)."""
    if log_probs is None:
        return [1.0 / count] * count
    values = [float(value) for value in log_probs]
    if len(values) != count:
        raise ValueError(f"got {count} captions but {len(values)} log_probs")
    if any(math.isnan(value) or value == math.inf for value in values):
        raise ValueError(f"log_probs must be finite or -inf, got {values}")
    top = max(values)
    if top == -math.inf:  # every caption impossible: fall back to treating them alike
        return [1.0 / count] * count
    exps = [math.exp(value - top) for value in values]
    total = sum(exps)
    return [value / total for value in exps]


def _caption_tags(caption: str, config: ExtractorConfig, stopwords: frozenset[str]) -> list[str]:
    """Canonical tags of one caption, in order of first appearance, without duplicates."""
    tags: list[str] = []
    seen: set[str] = set()
    for token in clean_caption(caption):
        if token in stopwords or token in config.extra_stopwords or token in config.blocklist:
            continue
        tag = canonical_word(token)
        if (
            tag in seen
            or not _is_valid_tag(tag)
            or tag in stopwords
            or tag in config.extra_stopwords
            or tag in config.blocklist
        ):
            continue
        seen.add(tag)
        tags.append(tag)
    return tags


def usable_tag(tag: str, config: ExtractorConfig) -> str | None:
    """``tag`` (canonical, no ``#``) if it may be suggested: valid, no stopword, not blocked."""
    if not _is_valid_tag(tag) or tag in _stopwords() or tag in config.extra_stopwords or tag in config.blocklist:
        return None
    return tag


def caption_tags(caption: str, config: ExtractorConfig | None = None) -> list[str]:
    """Canonical tags of one caption, in order of first appearance (no ``#``)."""
    return _caption_tags(caption, config or ExtractorConfig(), _stopwords())


def caption_words(captions: Sequence[str] | str, config: ExtractorConfig | None = None) -> tuple[str, ...]:
    """Every tag any of the beam's captions uses, sorted, unscored and uncapped: the keys of
    :func:`caption_tag_shares` (which :func:`mlcore.fusion.gather_evidence` keeps for a new result),
    what the re-ranker reads of an image's captions."""
    if isinstance(captions, str):
        captions = [captions]
    if not captions:
        return ()
    shares, _ = caption_tag_shares(list(captions), None, config or ExtractorConfig())
    return tuple(sorted(shares))


def caption_tag_shares(captions: Sequence[str], log_probs: Sequence[float] | None,
                       config: ExtractorConfig) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
    """Each tag's share of the beam (sum of ``softmax(log_probs)`` over the captions using it)
    and where it first appears, as ``(caption rank, position)`` reading the most likely first."""
    weights = _beam_weights(len(captions), log_probs)
    stopwords = _stopwords()
    # Most likely caption first; ties keep the given order (sorted() is stable).
    order = sorted(range(len(captions)), key=lambda index: -weights[index])
    scores: dict[str, float] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    for rank, index in enumerate(order):
        for position, tag in enumerate(_caption_tags(captions[index], config, stopwords)):
            scores[tag] = scores.get(tag, 0.0) + weights[index]
            first_seen.setdefault(tag, (rank, position))
    return scores, first_seen


def extract_hashtags(
    captions: Sequence[str] | str,
    log_probs: Sequence[float] | None = None,
    config: ExtractorConfig | None = None,
) -> list[ScoredTag]:
    """Rank hashtags for one image from its beam of captions alone.

    With captions ``c_i`` and log-probabilities ``l_i``, weights ``w = softmax(l)`` (uniform when
    ``log_probs`` is None; a single string is one caption of weight 1). A tag's score is the sum
    of ``w_i`` over the captions that contain it, so it lies in [0, 1] and is 1.0 when every
    caption mentions it. Ties are broken by where the tag first appears, reading the captions
    from the most to the least likely one (earlier words in a caption are usually its subject),
    then alphabetically. Tags scoring below ``min_score`` (or 0, i.e. only from captions of
    probability 0) are dropped and at most ``max_tags`` are returned. Scores are rounded to 6
    decimals. The captioner fuses these with the tag heads and the classifier
    (:mod:`mlcore.fusion`).
    """
    config = config or ExtractorConfig()
    config.validate()
    if isinstance(captions, str):
        captions = [captions]
    captions = list(captions)
    for caption in captions:
        if not isinstance(caption, str):
            raise TypeError(f"captions must be strings, got {type(caption).__name__}")
    if not captions:
        if log_probs is not None and len(log_probs) != 0:
            raise ValueError(f"got 0 captions but {len(log_probs)} log_probs")
        return []
    scores, first_seen = caption_tag_shares(captions, log_probs, config)
    ranked = sorted(
        ((min(1.0, max(0.0, round(score, 6))), tag) for tag, score in scores.items()),
        key=lambda item: (-item[0], first_seen[item[1]], item[1]),
    )
    return [
        ScoredTag(tag="#" + tag, score=score, sources=("caption",))
        for score, tag in ranked
        if score > 0.0 and score >= config.min_score
    ][: config.max_tags]
