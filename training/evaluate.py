"""Caption and hashtag quality: corpus BLEU-1..4, CIDEr-D and hashtag precision/recall@5.

CIDEr is the COCO caption evaluation's scorer (``pycocoevalcap``'s CIDEr-D: tf-idf weighted
n-gram similarity with a length penalty, document frequencies from the evaluated split's
references), so the number compares with the literature's. Captions are tokenised by
:func:`mlcore.text.clean_caption` for it too, as for BLEU, where the COCO tool runs Stanford's
Java PTB tokenizer; on these lower-case, punctuation-free captions both give the same words.

Hashtag references come from the people: for each image, the tags (after the same extractor the
product uses) that at least 2 of its 5 human captions give. Scoring one human caption against the
other four the same way gives the "human level" we compare with (``human_tag_scores``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
from pycocoevalcap.cider.cider import Cider

import numpy as np

from mlcore.decoding import CaptionSet
from mlcore.extractor import EVERY_TAG, ExtractorConfig, extract_hashtags
from mlcore.fusion import FusionConfig, fuse_hashtags, gather_evidence
from mlcore.text import clean_caption

BLEU_WEIGHTS = {
    "bleu1": (1.0,),
    "bleu2": (0.5, 0.5),
    "bleu3": (1 / 3, 1 / 3, 1 / 3),
    "bleu4": (0.25, 0.25, 0.25, 0.25),
}
TOP_K = 5


def bleu_scores(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU of tokenised hypotheses against every reference caption of their image."""
    tokenized_references = [[clean_caption(text) for text in captions] for captions in references]
    tokenized_hypotheses = [clean_caption(text) for text in hypotheses]
    smoothing = SmoothingFunction().method1
    return {name: float(corpus_bleu(tokenized_references, tokenized_hypotheses, weights=weights,
                                    smoothing_function=smoothing))
            for name, weights in BLEU_WEIGHTS.items()}


def cider_score(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> float:
    """Corpus CIDEr-D of the hypotheses against every reference caption of their image."""
    if not hypotheses:
        return 0.0
    references_by_image = {index: [" ".join(clean_caption(text)) for text in captions]
                           for index, captions in enumerate(references)}
    hypotheses_by_image = {index: [" ".join(clean_caption(text))] for index, text in enumerate(hypotheses)}
    score, _ = Cider().compute_score(references_by_image, hypotheses_by_image)
    return float(score)


def caption_tags(caption: str) -> list[str]:
    return [tag.tag for tag in extract_hashtags([caption], None, EVERY_TAG)]


def reference_tags(captions: Sequence[str], min_votes: int = 2) -> set[str]:
    votes = Counter(tag for caption in captions for tag in set(caption_tags(caption)))
    return {tag for tag, count in votes.items() if count >= min_votes}


def precision_recall_at_k(predicted: Sequence[Sequence[str]], references: Sequence[set[str]],
                          k: int = TOP_K) -> tuple[float, float]:
    """Mean P@k and R@k over the images that have at least one reference tag."""
    precisions, recalls = [], []
    for tags, reference in zip(predicted, references):
        if not reference:
            continue
        top = list(tags)[:k]
        hits = len(set(top) & reference)
        precisions.append(hits / len(top) if top else 0.0)
        recalls.append(hits / len(reference))
    count = max(len(precisions), 1)
    return sum(precisions) / count, sum(recalls) / count


def human_tag_scores(references: Sequence[Sequence[str]]) -> tuple[float, float]:
    """One human caption's tags against the tags 2 of the *other* captions use, averaged."""
    predicted, targets = [], []
    for captions in references:
        for index, caption in enumerate(captions):
            others = [text for i, text in enumerate(captions) if i != index]
            predicted.append(caption_tags(caption))
            targets.append(reference_tags(others))
    return precision_recall_at_k(predicted, targets)


def human_caption_scores(references: Sequence[Sequence[str]]) -> dict[str, float]:
    """BLEU and CIDEr of one human caption per image against the *other* four, averaged over
    which caption is left out: the human level of the caption metrics (against 4 references,
    where a model is scored against 5, so slightly low)."""
    rounds = min((len(captions) for captions in references), default=0)
    if rounds < 2:
        return {}
    totals: Counter = Counter()
    for index in range(rounds):
        others = [[text for i, text in enumerate(captions) if i != index] for captions in references]
        held_out = [captions[index] for captions in references]
        totals.update({**bleu_scores(others, held_out), "cider": cider_score(others, held_out)})
    return {f"human_{name}": value / rounds for name, value in totals.items()}


def evaluate_caption_sets(references: Sequence[Sequence[str]], caption_sets: Sequence[CaptionSet],
                          extractor: ExtractorConfig | None = None,
                          tag_probabilities: Sequence[dict[str, float]] | None = None,
                          class_probabilities: np.ndarray | None = None,
                          fusion: FusionConfig | None = None) -> dict[str, float]:
    """BLEU and CIDEr of the best caption plus hashtag P/R@5 of the product's hashtags for the image
    (fused like :meth:`mlcore.captioner.Captioner.suggest` from the heads' and classifier's
    numbers when given)."""
    best = [result.caption for result in caption_sets]
    scores = {**bleu_scores(references, best), "cider": cider_score(references, best)}
    heads = tag_probabilities if tag_probabilities is not None else [None] * len(caption_sets)
    classes = class_probabilities if class_probabilities is not None else [None] * len(caption_sets)
    extractor = extractor or ExtractorConfig()
    fusion = fusion or FusionConfig()
    predicted = [[tag.tag for tag in fuse_hashtags(gather_evidence(result, head, row, extractor),
                                                   extractor, fusion)]
                 for result, head, row in zip(caption_sets, heads, classes)]
    precision, recall = precision_recall_at_k(predicted, [reference_tags(r) for r in references])
    scores.update(tag_precision_at_5=precision, tag_recall_at_5=recall)
    return scores
