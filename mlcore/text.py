"""The one caption tokenizer shared by training and inference.

Training builds the vocabulary with ``clean_caption`` and the hashtag extractor reads model
output with it, so both sides always agree on what a word is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_NOT_A_TO_Z = re.compile(r"[^a-z]+")


def ascii_fold(text: str) -> str:
    """Drop accents the way a reader would ("Café" → "Cafe"); other non-ASCII characters go.

    NFKD splits "é" into "e" plus a combining accent, and compatibility characters such as
    the "ﬁ" ligature or full-width letters into plain ones; encoding to ASCII then drops
    what is left (accents, emoji, CJK).
    """
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def clean_caption(text: str) -> list[str]:
    """Split a caption into lower-case ``a-z`` words.

    Lower-case; ``&`` becomes ``and``; every character that is not ``a-z`` becomes a space;
    split on whitespace; one-letter tokens are dropped except ``a``::

        >>> clean_caption("A dog's ball!")
        ['a', 'dog', 'ball']

    Accented letters are folded to ASCII first ("café" → ``cafe``, not ``caf``); captions
    that are plain ASCII, such as all of Flickr8k, are unaffected by that step.
    """
    if not isinstance(text, str):
        raise TypeError(f"caption must be a str, not {type(text).__name__}")
    text = ascii_fold(text).lower().replace("&", " and ")
    return [token for token in _NOT_A_TO_Z.sub(" ", text).split() if len(token) > 1 or token == "a"]


def caption_to_text(tokens: Iterable[str]) -> str:
    """Join caption words back into the sentence shown to people (single spaces, no blanks)."""
    return " ".join(token for token in tokens if token)
