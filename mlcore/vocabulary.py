"""Word <-> id mapping that travels with a model artifact.

Ids 0..3 are reserved so that padding is always 0 (masking in Keras relies on it) and the
special tokens never collide with real words, whatever corpus the vocabulary was built from.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD = "<pad>"
START = "<start>"
END = "<end>"
UNKNOWN = "<unk>"
SPECIAL_TOKENS = (PAD, START, END, UNKNOWN)


class Vocabulary:
    """An ordered list of words; the position of a word is its id."""

    pad_id = 0
    start_id = 1
    end_id = 2
    unknown_id = 3

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if tuple(words[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIAL_TOKENS}")
        if len(set(words)) != len(words):
            raise ValueError("a vocabulary may not contain the same word twice")
        self.words: list[str] = words
        self._ids = {word: index for index, word in enumerate(words)}

    @classmethod
    def build(cls, tokenized_captions: Iterable[Sequence[str]], min_count: int = 5) -> Vocabulary:
        """Keep words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(word for caption in tokenized_captions for word in caption)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS),
                      key=lambda w: (-counts[w], w))
        return cls([*SPECIAL_TOKENS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def encode(self, tokens: Sequence[str], add_start_end: bool = True) -> list[int]:
        ids = [self._ids.get(token, self.unknown_id) for token in tokens]
        return [self.start_id, *ids, self.end_id] if add_start_end else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids → words, stopping at the end token and skipping padding/start."""
        words: list[str] = []
        for index in ids:
            index = int(index)
            if index == self.end_id:
                break
            if index in (self.pad_id, self.start_id):
                continue
            words.append(self.words[index] if 0 <= index < len(self.words) else UNKNOWN)
        return words

    def to_json(self) -> dict:
        return {"format": "mlcore.vocabulary/1", "words": self.words}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        if not isinstance(data, dict) or data.get("format") != "mlcore.vocabulary/1":
            raise ValueError("not an mlcore vocabulary file")
        return cls(data["words"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
