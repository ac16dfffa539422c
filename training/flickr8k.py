"""Loader for the Flickr8k layout (:mod:`mlcore.dataset_layout`): the real dataset and the
feedback export alike.

Missing images are skipped and counted, malformed lines are reported with their line number:
a real dataset has both, and neither should stop a training run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mlcore.dataset_layout import IMAGE_DIRS, SPLIT_FILES, TOKEN_FILE
from mlcore.text import clean_caption

logger = logging.getLogger(__name__)


class DatasetError(RuntimeError):
    """The dataset directory cannot be used at all (a missing token file, say)."""


@dataclass
class Example:
    """One image with all of its reference captions (raw text and tokens)."""

    image_id: str
    image_path: Path
    captions: list[str]

    @property
    def tokenized(self) -> list[list[str]]:
        return [clean_caption(caption) for caption in self.captions]


@dataclass
class Split:
    name: str
    examples: list[Example]
    missing_images: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class Flickr8k:
    root: Path
    captions: dict[str, list[str]]
    malformed_lines: list[tuple[int, str]]

    @classmethod
    def load(cls, root: str | Path) -> Flickr8k:
        root = Path(root)
        token_path = root / TOKEN_FILE
        if not token_path.is_file():
            raise DatasetError(f"{root} is not a Flickr8k-layout dataset: {TOKEN_FILE} is missing")
        captions: dict[str, list[str]] = defaultdict(list)
        malformed: list[tuple[int, str]] = []
        with token_path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                key, tab, caption = line.partition("\t")
                image_id, hash_sign, index = key.partition("#")
                if not tab or not hash_sign or not index.isdigit() or not caption.strip():
                    malformed.append((number, line[:80]))
                    continue
                captions[image_id.strip()].append(caption.strip())
        for number, text in malformed[:10]:
            logger.warning("%s:%d: malformed caption line skipped: %r", token_path, number, text)
        if len(malformed) > 10:
            logger.warning("%s: %d more malformed lines skipped", token_path, len(malformed) - 10)
        return cls(root, dict(captions), malformed)

    @property
    def image_dir(self) -> Path:
        for name in IMAGE_DIRS:
            if (self.root / name).is_dir():
                return self.root / name
        return self.root / IMAGE_DIRS[0]

    def split_ids(self, name: str) -> list[str]:
        if name not in SPLIT_FILES:
            raise ValueError(f"unknown split {name!r}; use one of {', '.join(SPLIT_FILES)}")
        path = self.root / SPLIT_FILES[name]
        if not path.is_file():
            raise DatasetError(f"split file missing: {path}")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def split(self, name: str) -> Split:
        """The split's images that exist and have captions; the missing ones are counted."""
        examples, missing = [], []
        image_dir = self.image_dir
        for image_id in self.split_ids(name):
            path = image_dir / image_id
            if image_id not in self.captions or not path.is_file():
                missing.append(image_id)
                continue
            examples.append(Example(image_id, path, self.captions[image_id]))
        if missing:
            logger.info("%s split: %d of %d images missing, skipped", name, len(missing),
                        len(missing) + len(examples))
        return Split(name, examples, missing)
