"""One ranked list from three kinds of evidence: the beam's captions, the tag heads and the
encoders' ImageNet classifiers.

Each candidate tag of an image gets a few numbers — its share of the beam, its tag-head
probability, its classifier probability as some class's own name (``goldenretriever``) and as a
hypernym (``dog``), plus how sure the classifier and the heads are about the image at all — and
one logistic model turns them into the probability that the tag is right. The model's weights are
fitted on data by ``python -m training calibrate`` (Flickr8k's human captions and ImageNet-style
photos, :mod:`training.calibrate`) and live in the artifact's ``fusion.json``, so a score of 0.8
means the same thing whether a caption, a head or the classifier proposed the tag. An artifact
without ``fusion.json`` falls back to :func:`uncalibrated_score` (the best source's own number).

Why a logistic model and not a product or a maximum: the sources are not independent (caption
and tag head read the same CNN features), and the classifier's fine-grained class names are
right but rarely what people write; a fitted model learns both from the labels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlcore import thresholds
from mlcore.artifact import ArtifactError, write_json_atomically
from mlcore.classes import ClassTagMap, class_tag_map
from mlcore.decoding import CaptionSet
from mlcore.extractor import (SOURCES, ExtractorConfig, ScoredTag, canonical_word, caption_tag_shares,
                              caption_tags, usable_tag)

FUSION_FILE = "fusion.json"
FORMAT = "mlcore.fusion/1"

#: Below this caption confidence the caption is marked as uncertain (defined in the TF-free
#: :mod:`mlcore.thresholds` so the app's settings can read it without TensorFlow).
LOW_CAPTION_CONFIDENCE = thresholds.LOW_CAPTION_CONFIDENCE

#: A source is named as a reason for a tag when its own probability for it reaches this.
SOURCE_MIN_PROBABILITY = 0.05
#: Classifier tags considered per image: those the classifier gives at least this probability.
CLASSIFIER_MIN_PROBABILITY = 0.005
#: The classifier "is sure" of an image when its best tag has at least this probability.
CLASSIFIER_SURE = 0.5
#: Tags the captions and the classifier agree on need at least this classifier probability.
AGREEMENT_MIN = 0.05
#: Caption tags without a tag-head probability keep this share of their beam score
#: (:func:`uncalibrated_score`, as before the fusion existed).
CAPTION_WEIGHT = 0.1

#: The classifier's best tag is kept among the first :data:`CLASSIFIER_SLOT` + 1 suggestions when
#: its probability reaches :data:`SLOT_MIN_PROBABILITY` and the photo's classes are unlike
#: Flickr8k's (familiarity at most :data:`SLOT_MAX_FAMILIARITY`): the fitted model alone lets a
#: Flickr8k-looking caption (a shark photo captioned as a beach) crowd out the one tag the
#: classifier knows, and on Flickr8k-like photos the gate leaves the ranking alone.
CLASSIFIER_SLOT = 4
SLOT_MIN_PROBABILITY = 0.2
SLOT_MAX_FAMILIARITY = -1.0
#: Familiarity of a class never seen on Flickr8k photos (log of a 1/1000 share of the average).
FAMILIARITY_FLOOR = -math.log(1000.0)
#: The logistic model's inputs, in order (:func:`tag_features`).
FEATURES: tuple[str, ...] = (
    "bias", "caption", "head", "head_logit", "head_missing", "class_own", "class_own_logit",
    "class_hypernym", "class_hypernym_logit", "head_x_class_top", "head_x_head_top",
    "class_own_x_head_top", "class_hypernym_x_head_top", "class_own_x_class_top",
    "class_hypernym_x_class_top", "head_x_familiar", "class_own_x_familiar",
    "class_hypernym_x_familiar",
)
_EPSILON = 1e-3


def _logit(p: float) -> float:
    p = min(max(p, _EPSILON), 1 - _EPSILON)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Evidence:
    """One image's evidence for one tag (probabilities in [0, 1]; 0 = the source says nothing)."""

    caption: float = 0.0  # share of the beam's probability mass whose captions use the tag
    head: float | None = None  # tag-head probability; None: not among the head's top tags
    class_own: float = 0.0  # classifier probability of the classes this tag names
    class_hypernym: float = 0.0  # ... of the classes it is a hypernym of

    @property
    def classifier(self) -> float:
        return min(1.0, self.class_own + self.class_hypernym)

    def sources(self) -> tuple[str, ...]:
        present = {"caption": self.caption > 0,
                   "tag_head": (self.head or 0.0) >= SOURCE_MIN_PROBABILITY,
                   "classifier": self.classifier >= SOURCE_MIN_PROBABILITY}
        return tuple(source for source in SOURCES if present[source])


@dataclass(frozen=True)
class ImageContext:
    """How sure the heads and the classifier are about the image as a whole."""

    head_top: float = 0.0
    class_top: float = 0.0
    has_classifier: bool = False


def tag_features(evidence: Evidence, context: ImageContext, familiar: float = 0.0) -> np.ndarray:
    """The logistic model's input vector (:data:`FEATURES`) for one tag of one image.

    The products with the image's context let the model trust the heads on photos like those
    they were trained on and the classifier on the others: ``familiar`` says how much the
    photo's ImageNet classes look like Flickr8k's (:meth:`FusionConfig.familiarity`), the top
    probabilities how sure each source is. An absent source contributes zeros."""
    head = evidence.head or 0.0
    head_top, class_top = context.head_top, context.class_top
    own, hypernym = evidence.class_own, evidence.class_hypernym
    return np.array([
        1.0, evidence.caption, head, _logit(head), float(evidence.head is None),
        own, _logit(own), hypernym, _logit(hypernym),
        head * class_top, head * head_top, own * head_top, hypernym * head_top,
        own * class_top, hypernym * class_top,
        head * familiar, own * familiar, hypernym * familiar,
    ], np.float64)


def uncalibrated_score(evidence: Evidence) -> float:
    """Without a fitted model: the tag head's probability where it has one, else the classifier's
    or a tenth of the beam share (the extractor's rule before the classifier existed)."""
    if evidence.head is not None:
        return max(evidence.head, evidence.classifier)
    return max(CAPTION_WEIGHT * evidence.caption, evidence.classifier)


@dataclass(frozen=True)
class FusionConfig:
    """The fitted weights (None: :func:`uncalibrated_score`), the Flickr8k familiarity of each
    ImageNet class's own tag, and where they came from."""

    weights: tuple[float, ...] | None = None
    #: own tag → log(its mean classifier probability on Flickr8k photos / on average), clipped
    familiar_tags: Mapping[str, float] = field(default_factory=dict)
    fitted_on: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != len(FEATURES):
            raise ValueError(f"fusion weights: {len(self.weights)} values for {len(FEATURES)} features")

    def familiarity(self, image: ImageEvidence) -> float:
        """How Flickr8k-like the photo's classes are: their familiarity, weighted by probability."""
        total = sum(item.class_own for item in image.tags.values())
        if not total:
            return 0.0
        return sum(item.class_own * self.familiar_tags.get(tag, FAMILIARITY_FLOOR)
                   for tag, item in image.tags.items()) / total

    def scores(self, image: ImageEvidence, tags: Iterable[str] | None = None) -> dict[str, float]:
        """The probability that each of ``tags`` (default: every candidate) is right for ``image``;
        the photo's familiarity is computed once for all of them."""
        tags = image.tags if tags is None else tags
        if self.weights is None:
            return {tag: uncalibrated_score(image.tags[tag]) for tag in tags}
        familiar = self.familiarity(image)
        result = {}
        for tag in tags:
            z = float(np.dot(self.weights, tag_features(image.tags[tag], image.context, familiar)))
            result[tag] = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
        return result

    def to_json(self) -> dict:
        return {"format": FORMAT, "features": list(FEATURES),
                "weights": None if self.weights is None else [round(w, 6) for w in self.weights],
                "familiar_tags": {tag: round(value, 4) for tag, value in sorted(self.familiar_tags.items())},
                "fitted_on": self.fitted_on}


def load_fusion_config(model_dir: str | Path) -> FusionConfig:
    """The artifact's ``fusion.json``, or the uncalibrated fallback when it has none."""
    path = Path(model_dir) / FUSION_FILE
    if not path.is_file():
        return FusionConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"expected format {FORMAT} with features {', '.join(FEATURES)}")
        weights = data.get("weights")
        return FusionConfig(None if weights is None else tuple(float(w) for w in weights),
                            {str(k): float(v) for k, v in data.get("familiar_tags", {}).items()},
                            dict(data.get("fitted_on", {})))
    except (ValueError, TypeError, AttributeError) as error:
        raise ArtifactError(f"{path} is not a valid fusion file: {error}") from None


def save_fusion_config(model_dir: str | Path, config: FusionConfig) -> Path:
    """Write ``fusion.json`` atomically (a worker never reads half of it)."""
    path = Path(model_dir) / FUSION_FILE
    write_json_atomically(path, config.to_json())
    return path


@dataclass(frozen=True)
class ImageEvidence:
    """Every candidate tag's evidence for one image, its context, and the tie-break order
    (captions first, most likely caption first; then the heads' tags; then the classifier's)."""

    tags: dict[str, Evidence]
    context: ImageContext
    order: dict[str, tuple[int, int]]
    best_caption_tags: tuple[str, ...]
    caption_words: tuple[str, ...] = ()  # mlcore.extractor.caption_words, from the same pass


def gather_evidence(caption_set: CaptionSet, head: Mapping[str, float] | None,
                    class_probabilities: np.ndarray | None, config: ExtractorConfig | None = None,
                    tag_map: ClassTagMap | None = None) -> ImageEvidence:
    """Collect the three sources' numbers per candidate tag, all in canonical tag form."""
    config = config or ExtractorConfig()
    captions = list(caption_set.captions) or [caption_set.caption]
    log_probs = list(caption_set.log_probs) if caption_set.captions else None
    shares, first_seen = caption_tag_shares(captions, log_probs, config)
    head_probabilities: dict[str, float] = {}
    for name, probability in (head or {}).items():
        tag = usable_tag(canonical_word(name), config)  # "climb" and "climbing": one tag
        if tag:
            head_probabilities[tag] = max(head_probabilities.get(tag, 0.0), float(probability))
    classified: dict[str, tuple[float, float]] = {}
    class_top = 0.0
    if class_probabilities is not None:
        tag_map = tag_map or class_tag_map()
        parts = tag_map.tag_probabilities(np.asarray(class_probabilities)[None])[0]
        totals = parts.sum(axis=1)
        class_top = float(totals.max())
        for position in np.argsort(-totals):
            if totals[position] < CLASSIFIER_MIN_PROBABILITY:
                break
            tag = usable_tag(tag_map.tags[position], config)
            if tag:
                classified[tag] = (float(parts[position, 0]), float(parts[position, 1]))
    order = dict(first_seen)
    for rank, tag in enumerate(sorted(head_probabilities, key=lambda t: -head_probabilities[t])):
        order.setdefault(tag, (len(captions), rank))
    for rank, tag in enumerate(classified):
        order.setdefault(tag, (len(captions) + 1, rank))
    tags = {tag: Evidence(caption=shares.get(tag, 0.0), head=head_probabilities.get(tag),
                          class_own=classified.get(tag, (0.0, 0.0))[0],
                          class_hypernym=classified.get(tag, (0.0, 0.0))[1])
            for tag in order}
    context = ImageContext(head_top=max(head_probabilities.values(), default=0.0), class_top=class_top,
                           has_classifier=class_probabilities is not None)
    return ImageEvidence(tags, context, order, tuple(caption_tags(caption_set.caption, config)),
                         caption_words=tuple(sorted(shares)))


def rank(evidence: ImageEvidence, fusion: FusionConfig) -> list[tuple[str, float, tuple[str, ...]]]:
    """``(tag, score, sources)`` for every candidate that some source vouches for, best first.

    A candidate below every source's :data:`SOURCE_MIN_PROBABILITY` is left out: a suggestion
    must be able to say why it is there."""
    scores = fusion.scores(evidence)
    scored = [(tag, round(min(1.0, max(0.0, scores[tag])), 6), item.sources())
              for tag, item in evidence.tags.items()]
    scored = [entry for entry in scored if entry[2]]
    scored.sort(key=lambda entry: (-entry[1], evidence.order[entry[0]], entry[0]))
    return _keep_classifier_slot(scored, evidence, fusion)


def _keep_classifier_slot(scored: list[tuple[str, float, tuple[str, ...]]], evidence: ImageEvidence,
                          fusion: FusionConfig) -> list[tuple[str, float, tuple[str, ...]]]:
    """Move the classifier's best tag up to :data:`CLASSIFIER_SLOT` on an un-Flickr8k-like photo
    (the rule beside :data:`SLOT_MIN_PROBABILITY`); its score is raised to the one it displaces,
    so the list stays ordered by score. Only a fitted fusion does this (the fallback keeps the
    old rule)."""
    if fusion.weights is None or not evidence.context.has_classifier or len(scored) <= CLASSIFIER_SLOT:
        return scored
    best = max(evidence.tags, key=lambda tag: evidence.tags[tag].classifier, default=None)
    if best is None or evidence.tags[best].classifier < SLOT_MIN_PROBABILITY:
        return scored
    position = next((i for i, entry in enumerate(scored) if entry[0] == best), None)
    if position is None or position <= CLASSIFIER_SLOT or fusion.familiarity(evidence) > SLOT_MAX_FAMILIARITY:
        return scored
    tag, _, sources = scored.pop(position)
    scored.insert(CLASSIFIER_SLOT, (tag, scored[CLASSIFIER_SLOT][1], sources))
    return scored


def fuse_hashtags(evidence: ImageEvidence, config: ExtractorConfig, fusion: FusionConfig,
                  ) -> list[ScoredTag]:
    """The image's ranked hashtags, each with its score in [0, 1] and its sources."""
    config.validate()
    return [ScoredTag("#" + tag, score, sources) for tag, score, sources in rank(evidence, fusion)
            if score > 0.0 and score >= config.min_score][: config.max_tags]


def caption_confidence(evidence: ImageEvidence, fusion: FusionConfig) -> float:
    """How far the best caption can be taken as fact, in [0, 1].

    The rule: the fused score of the best caption's best-supported tag, except when the
    classifier is sure of the image (a tag at :data:`CLASSIFIER_SURE` or more) and gives none of
    the caption's tags that it knows even :data:`AGREEMENT_MIN` — a "dog" caption on a confident
    cat — where it is at most ``1 -`` the classifier's certainty. Why the classifier decides: it
    is the one source trained on other photos than the captioner (ImageNet, not Flickr8k), so it
    catches the captioner's out-of-world mistakes; it only vetoes when it is sure, so
    Flickr8k-like photos, where it is often unsure, keep their captions.
    """
    tags = [tag for tag in evidence.best_caption_tags if tag in evidence.tags]
    if not tags:
        return 0.0
    support = max(fusion.scores(evidence, tags).values())
    context = evidence.context
    if context.has_classifier and context.class_top >= CLASSIFIER_SURE:
        known = [tag for tag in tags if tag in class_tag_map().index]
        if known and all(evidence.tags[tag].classifier < AGREEMENT_MIN for tag in known):
            support = min(support, 1.0 - context.class_top)
    return round(min(1.0, max(0.0, support)), 6)
