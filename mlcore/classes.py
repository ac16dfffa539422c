"""ImageNet classes as hashtags, and verb forms as one tag: the word data generated from WordNet.

Both files in ``mlcore/data/`` are written once by ``python -m training wordnet-data``
(:mod:`training.wordnet_tags` documents the rules), so no machine needs WordNet or NLTK corpora
at run time. A class's tags are its own name and the hypernyms people tag with
(``golden retriever`` → ``#goldenretriever #dog``); a tag's classifier probability is the summed
probability of the classes that carry it, so ``#dog`` gathers every breed's share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
CLASS_TAGS_FILE = DATA_DIR / "imagenet_tags.json"
VERB_FORMS_FILE = DATA_DIR / "verb_forms.json"
CLASS_COUNT = 1000


def _read(path: Path, format_name: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RuntimeError(f"mlcore's word data {path} is missing or unreadable ({error}); reinstall "
                           "the package or regenerate it with `python -m training wordnet-data`") from None
    if data.get("format") != format_name:
        raise RuntimeError(f"{path}: expected format {format_name!r}, got {data.get('format')!r}")
    return data


@lru_cache(maxsize=1)
def verb_forms() -> dict[str, str]:
    """Base verb → the ``-ing`` form that stands for all its forms (``climb`` → ``climbing``)."""
    return dict(_read(VERB_FORMS_FILE, "mlcore.verb_forms/1")["forms"])


@dataclass(frozen=True)
class ImageNetClass:
    wnid: str
    name: str
    tags: tuple[str, ...]  # suggested, best first: the class's own name, then hypernyms
    hits: frozenset[str]  # words that name the class for evaluation (own lemmas + specific hypernyms)


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1,000 ImageNet-1k classes in class-index order."""
    entries = _read(CLASS_TAGS_FILE, "mlcore.imagenet_tags/1")["classes"]
    if len(entries) != CLASS_COUNT:
        raise RuntimeError(f"{CLASS_TAGS_FILE}: {len(entries)} classes, expected {CLASS_COUNT}")
    return tuple(ImageNetClass(entry["wnid"], entry["name"], tuple(entry["tags"]),
                               frozenset(entry["hits"])) for entry in entries)


class ClassTagMap:
    """Class probabilities → tag probabilities: a sparse 0/1 map, classes × tags.

    A tag's probability is the sum over the classes that carry it, i.e. the classifier's
    probability that the photo shows something of that kind, kept in two parts: from classes it
    names (``goldenretriever``) and from classes it is a hypernym of (``dog``), which the fusion
    weighs apart (people write "dog", rarely the breed).

    Stored as (class, tag part) pairs and summed with ``np.bincount``, not as a dense matrix
    product: a product would start the BLAS library's threads, which keep spinning after it and
    take CPU from TensorFlow's encoder and decoder on a small machine.
    """

    def __init__(self, classes: tuple[ImageNetClass, ...]) -> None:
        self.tags: list[str] = sorted({tag for entry in classes for tag in entry.tags})
        self.index = {tag: position for position, tag in enumerate(self.tags)}
        pairs = [(row, 2 * self.index[tag] + (0 if position == 0 else 1))
                 for row, entry in enumerate(classes) for position, tag in enumerate(entry.tags)]
        #: the class of each pair, and its column in the (tags, 2) result flattened:
        #: 2 * tag + 0 when the tag is the class's own name, + 1 when it is a hypernym of it
        self._classes = np.array([row for row, _ in pairs], np.intp)
        self._columns = np.array([column for _, column in pairs], np.intp)

    def tag_probabilities(self, class_probabilities: np.ndarray) -> np.ndarray:
        """``(N, 1000)`` → ``(N, len(tags), 2)``: each tag's probability as an own name and as a
        hypernym (the sum of the two is at most 1: a class carries a tag once)."""
        probabilities = np.asarray(class_probabilities, np.float32)
        count, width = len(probabilities), 2 * len(self.tags)
        columns = (np.arange(count)[:, None] * width + self._columns[None, :]).ravel()
        sums = np.bincount(columns, weights=probabilities[:, self._classes].ravel(),
                           minlength=count * width)
        return sums.astype(np.float32).reshape(count, len(self.tags), 2)


@lru_cache(maxsize=1)
def class_tag_map() -> ClassTagMap:
    return ClassTagMap(imagenet_classes())
