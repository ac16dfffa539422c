"""Point NLTK at the data this package ships, so nothing ever needs ``nltk.download``.

Machines running the worker often have no internet access, and ``nltk.download`` is a
network call at import time that fails there. The only corpus the hashtag extractor needs is
the English stopword list, which lives in ``mlcore/data/nltk_data`` (see its README).
"""

from __future__ import annotations

import threading
from pathlib import Path

NLTK_DATA_DIR: Path = Path(__file__).resolve().parent / "data" / "nltk_data"

_lock = threading.Lock()


def ensure_nltk_data() -> Path:
    """Put the shipped ``nltk_data`` directory first on ``nltk.data.path``; idempotent.

    First, not last: the shipped list then wins over whatever version of the corpus a
    machine happens to have, so every worker filters captions with the same words.
    Returns the directory.
    """
    import nltk.data  # lazy: NLTK takes seconds to import; importing this module stays cheap

    path = str(NLTK_DATA_DIR)
    with _lock:
        if not nltk.data.path or nltk.data.path[0] != path:
            while path in nltk.data.path:
                nltk.data.path.remove(path)
            nltk.data.path.insert(0, path)
    return NLTK_DATA_DIR


def english_stopwords() -> frozenset[str]:
    """NLTK's English stopwords, read through ``nltk.corpus`` from the shipped data.

    Raises ``RuntimeError`` with a clear message if the shipped file is missing (a broken
    install); it never tries to download anything.
    """
    ensure_nltk_data()
    from nltk.corpus import stopwords  # lazy: NLTK start-up (seconds), see ensure_nltk_data

    try:
        words = stopwords.words("english")
    except LookupError as error:  # pragma: no cover - only on a broken installation
        raise RuntimeError(
            "NLTK's English stopword list was not found. It should be installed with this "
            f"package at {NLTK_DATA_DIR / 'corpora' / 'stopwords' / 'english'}; reinstall "
            "the package (this code never calls nltk.download)."
        ) from error
    return frozenset(words)
