"""Why a tag is suggested and how far to trust the caption: the names and rules that the admin,
the API and the demo share, so that they never disagree.

Source names say which evidence put a tag on the list. mlcore names its own
(:data:`mlcore.extractor.SOURCES`: ``caption``, ``tag_head``, ``classifier``); the app adds
``feedback`` for a tag the feedback re-ranker (:mod:`hashtags.reranker`) proposes on its own
because people keep adding it. A caption whose confidence is below
``HASHTAGS["MIN_CAPTION_CONFIDENCE"]`` is shown hedged ("Possibly: ..."), never as fact.

Importing this module imports :mod:`mlcore.extractor`, which is light (no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.translation import gettext_lazy as _
from mlcore.extractor import SOURCES as MODEL_SOURCES
from mlcore.extractor import caption_tags

from .conf import hashtags_settings
from .extraction import extractor_config

#: The feedback re-ranker proposed the tag although the model did not suggest it.
FEEDBACK = "feedback"

#: Every name a stored suggestion's ``sources`` may hold, in display order.
SOURCES: tuple[str, ...] = (*MODEL_SOURCES, FEEDBACK)

#: Words people read for each source name (a name mlcore adds later shows as itself).
SOURCE_LABELS = {
    "caption": _("caption"),
    "tag_head": _("tag head"),
    "classifier": _("image classifier"),
    FEEDBACK: _("people's feedback"),
}


def _label(name: str) -> str:
    return SOURCE_LABELS.get(name, name)


#: ``(name, label)`` pairs, for choices (the API schema's enum).
SOURCE_CHOICES: tuple[tuple[str, str], ...] = tuple((name, _label(name)) for name in SOURCES)

#: What an uncertain caption is prefixed with wherever it is shown (admin, demo page, alt text).
UNCERTAIN_PREFIX = _("Possibly:")


def source_labels(sources: Iterable[str]) -> list[str]:
    """Readable names of ``sources``, in their stored order."""
    return [str(_label(name)) for name in sources]


def caption_is_uncertain(confidence: float | None) -> bool:
    """True when a caption's confidence is known and below ``MIN_CAPTION_CONFIDENCE``
    (analyses made before confidences existed have none and are not second-guessed)."""
    return confidence is not None and confidence < hashtags_settings.MIN_CAPTION_CONFIDENCE


def hedged_caption(caption: str) -> str:
    """``caption`` worded as a guess, for places that show an uncertain caption as text."""
    return f"{UNCERTAIN_PREFIX} {caption}"


def attention_overlay(analysis) -> dict | None:
    """Where the model looked, as the pages overlay it on the photo: per word of the generated
    caption its weights over the encoder's grid and the tag it became (None for a stopword), and
    per caption tag the indices of its words. None when the model has no attention, or when the
    caption shown is a person's correction (the weights belong to the model's words)."""
    attention = analysis.attention
    if not attention or analysis.corrected_caption:
        return None
    words = analysis.caption.split()
    rows = attention.get("words") or []
    grid = attention.get("grid") or []
    if len(rows) != len(words) or len(grid) != 2:
        return None
    config = extractor_config()
    entries, tags = [], {}
    for index, (word, weights) in enumerate(zip(words, rows)):
        found = caption_tags(word, config)
        tag = found[0] if found else None
        entries.append({"word": word, "tag": tag, "weights": weights})
        if tag:
            tags.setdefault(tag, []).append(index)
    return {"grid": grid, "words": entries, "tags": tags}
