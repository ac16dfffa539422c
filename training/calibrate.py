"""Fit the fusion's logistic model (:mod:`mlcore.fusion`) and measure hashtags on everyday photos.

Two kinds of labelled photos say whether a candidate tag is right:

* Flickr8k training photos: a tag is right when at least 2 of the photo's 5 human captions use it
  (the same reference as the dev tag P/R@5), so scene and action words (#beach, #running) and the
  words people really write (#dog, not the breed) are learnt;
* ImageNet-style photos named ``<wnid>_<name>.jpg`` (one class each, ``--imagenet DIR``): a tag
  is right when it names the class or a specific word above it in WordNet
  (:attr:`mlcore.classes.ImageNetClass.hits`), so objects the captioner never saw are learnt too.

Both kinds are weighted to the same total, and the model's inputs are source-agnostic
(:data:`mlcore.fusion.FEATURES`), so one score means one thing. ``evaluate-ood`` reports hit@1 and
hit@5 of the shipped ranking on such a folder; ``calibrate --folds 2`` also reports them
cross-fitted (each half of the classes scored by a model fitted without it).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from mlcore.classes import imagenet_classes
from mlcore.extractor import EVERY_TAG
from mlcore.fusion import (FAMILIARITY_FLOOR, FusionConfig, ImageEvidence, rank,
                           tag_features)
from training.evaluate import precision_recall_at_k, reference_tags

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(n\d{8})_")


@dataclass
class LabelledImage:
    evidence: ImageEvidence
    right: frozenset[str]  # canonical tags (no "#") that count as right for this photo
    kind: str  # "flickr8k" or "imagenet"
    group: int = 0  # cross-fitting fold (ImageNet: by class)


def imagenet_photos(folder: str | Path) -> list[tuple[Path, int]]:
    """``(path, class index)`` for every ``<wnid>_*.jpg`` in ``folder`` whose wnid is a class."""
    index = {entry.wnid: position for position, entry in enumerate(imagenet_classes())}
    photos = []
    for path in sorted(Path(folder).glob("*.jp*g")):
        match = _NAME.match(path.name)
        if match and match.group(1) in index:
            photos.append((path, index[match.group(1)]))
    if not photos:
        raise ValueError(f"no photos named <wnid>_<name>.jpg with an ImageNet-1k wnid in {folder}")
    return photos


def collect_evidence(captioner, paths: Sequence[Path], batch_size: int = 32, desc: str = "evidence",
                     ) -> list[ImageEvidence | None]:
    """The captioner's evidence per photo (None for an unreadable one), with a progress bar."""
    results: list[ImageEvidence | None] = []
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False) as bar:
        for start in range(0, len(paths), batch_size):
            batch = [str(path) for path in paths[start:start + batch_size]]
            for item in captioner.evidence(batch, config=EVERY_TAG):
                results.append(item if isinstance(item, ImageEvidence) else None)
            bar.update(len(batch))
    return results


def hits_at(ranked: Sequence[Sequence[str]], right: Sequence[frozenset[str]]) -> dict[str, float]:
    """hit@1 and hit@5: the share of photos whose first (any of the first five) tag is right."""
    count = max(len(ranked), 1)
    return {"hit_at_1": sum(bool(tags[:1]) and tags[0] in ok for tags, ok in zip(ranked, right)) / count,
            "hit_at_5": sum(bool(set(tags[:5]) & ok) for tags, ok in zip(ranked, right)) / count}


def ranked_tags(evidence: ImageEvidence, fusion: FusionConfig) -> list[str]:
    return [tag for tag, score, _ in rank(evidence, fusion) if score > 0]


def flickr8k_images(captioner, examples, desc: str = "flickr8k") -> list[LabelledImage]:
    evidence = collect_evidence(captioner, [example.image_path for example in examples], desc=desc)
    return [LabelledImage(item, frozenset(tag.lstrip("#") for tag in reference_tags(example.captions)),
                          "flickr8k")
            for item, example in zip(evidence, examples) if item is not None]


def imagenet_images(captioner, folder: str | Path) -> list[LabelledImage]:
    photos = imagenet_photos(folder)
    classes = imagenet_classes()
    evidence = collect_evidence(captioner, [path for path, _ in photos], desc="imagenet photos")
    return [LabelledImage(item, classes[index].hits, "imagenet", group=position % 2)
            for position, (item, (_, index)) in enumerate(zip(evidence, photos)) if item is not None]


def familiar_tags(images: Sequence[LabelledImage]) -> dict[str, float]:
    """Per ImageNet own tag, log(mean classifier probability on the Flickr8k photos / the mean
    over all classes), floored at :data:`mlcore.fusion.FAMILIARITY_FLOOR`: positive for the
    classes Flickr8k's photos look like (dogs, seashores, jerseys), very negative for espresso."""
    flickr8k = [image for image in images if image.kind == "flickr8k"]
    sums: dict[str, float] = {}
    for image in flickr8k:
        for tag, item in image.evidence.tags.items():
            if item.class_own:
                sums[tag] = sums.get(tag, 0.0) + item.class_own
    average = 1.0 / 1000
    return {tag: max(FAMILIARITY_FLOOR, float(np.log(total / len(flickr8k) / average)))
            for tag, total in sums.items() if total / len(flickr8k) > average * np.exp(FAMILIARITY_FLOOR)}


def design_matrix(images: Sequence[LabelledImage], flickr8k_share: float = 0.5,
                  familiar_config: FusionConfig | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of :data:`mlcore.fusion.FEATURES` for every candidate tag, its label, and a weight that gives the
    Flickr8k photos ``flickr8k_share`` of the total and the ImageNet photos the rest."""
    rows, labels, weights = [], [], []
    totals = {kind: sum(image.kind == kind for image in images)
              for kind in {image.kind for image in images}}
    shares = {"flickr8k": flickr8k_share, "imagenet": 1.0 - flickr8k_share}
    for image in images:
        weight = ((shares[image.kind] if len(totals) > 1 else 1.0)
                  / (totals[image.kind] * max(len(image.evidence.tags), 1)))
        familiar = familiar_config.familiarity(image.evidence)
        for tag, item in image.evidence.tags.items():
            rows.append(tag_features(item, image.evidence.context, familiar))
            labels.append(tag in image.right)
            weights.append(weight)
    return np.array(rows), np.array(labels), np.array(weights) * len(rows)


def fit_fusion(images: Sequence[LabelledImage], regularisation: float = 10.0,
               flickr8k_share: float = 0.5) -> FusionConfig:
    """The logistic model on every candidate tag of ``images`` (sklearn, L2); each photo weighs
    the same within its kind, each kind its share."""
    familiar = FusionConfig(familiar_tags=familiar_tags(images))
    rows, labels, weights = design_matrix(images, flickr8k_share, familiar)
    model = LogisticRegression(C=regularisation, fit_intercept=False, max_iter=5000)
    model.fit(rows, labels, sample_weight=weights)
    counts = {kind: sum(image.kind == kind for image in images) for kind in ("flickr8k", "imagenet")}
    return FusionConfig(tuple(float(w) for w in model.coef_[0]), familiar.familiar_tags,
                        {"images": counts, "candidates": int(len(rows)), "flickr8k_share": flickr8k_share,
                         "label": "flickr8k: >= 2 of 5 human captions; imagenet: WordNet hit"})


def fusion_report(fusion: FusionConfig, flickr8k: Sequence[LabelledImage],
                  imagenet: Sequence[LabelledImage]) -> dict[str, float]:
    """Flickr8k tag P/R@5 and ImageNet hit@1/5 of ``fusion``'s ranking."""
    report: dict[str, float] = {}
    if flickr8k:
        precision, recall = precision_recall_at_k(
            [["#" + tag for tag in ranked_tags(image.evidence, fusion)] for image in flickr8k],
            [{"#" + tag for tag in image.right} for image in flickr8k])
        report.update(tag_precision_at_5=round(precision, 4), tag_recall_at_5=round(recall, 4))
    if imagenet:
        hits = hits_at([ranked_tags(image.evidence, fusion) for image in imagenet],
                       [image.right for image in imagenet])
        report.update({key: round(value, 4) for key, value in hits.items()})
    return report


def sample(examples: Sequence, count: int, seed: int = 0) -> list:
    """A fixed random subset (all when ``count`` is 0 or too large)."""
    if not count or count >= len(examples):
        return list(examples)
    return random.Random(seed).sample(list(examples), count)


__all__ = ["LabelledImage", "collect_evidence", "design_matrix", "fit_fusion",
           "flickr8k_images", "fusion_report", "hits_at", "imagenet_images", "imagenet_photos",
           "ranked_tags", "sample"]
