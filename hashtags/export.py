"""People's decisions → a training dataset in the Flickr8k layout (``training --extra-data DIR``).

Layout written under ``DIR`` (file names from :mod:`mlcore.dataset_layout`, which :class:`training.flickr8k.Flickr8k` reads)::

    Flicker8k_Dataset/<sha256>.jpg            the image, named by the sha256 of its stored content
    Flickr8k_text/Flickr8k.token.txt          <sha256>.jpg#N<TAB>caption
    Flickr8k_text/Flickr_8k.trainImages.txt   every exported image except the held-back ones
    Flickr8k_text/Flickr_8k.devImages.txt     the held-back ~10%: sha256 % 10 == 0 (see held_back)
    Flickr8k_text/Flickr_8k.testImages.txt    empty
    tags.tsv                                  image, accepted, rejected, added, edited tags

The held-back images are never in the train split: evaluate a fine-tuned model on them
(``python -m training evaluate --data DIR --split dev``) before promoting it.

**What is exported.** One entry per image *content* (sha256): every done analysis with a decided
suggestion (accepted, rejected, edited, added) or a corrected caption. Several analyses of the same
content (other model versions, other posts) are merged: per tag, the most recent decision wins.
Objects that were deleted, whose file is gone (or no longer has the analysed content), and objects
whose owner opted out of analysis are skipped and counted.

**The caption rule.** A corrected caption is used as written (whitespace collapsed); every distinct
correction of the image is one caption. Without a correction, each distinct model caption
(``ImageAnalysis.caption``, the best beam) becomes a caption by reading its words
(:func:`mlcore.text.clean_caption`) and, by the tag each word stands for
(:func:`mlcore.extractor.normalize_tag`, so "dogs" stands for ``#dog``):

1. a word whose tag was **edited** is replaced by the tag it was edited to ("dog" → "puppy");
2. a word whose tag was **rejected** is dropped;
3. every other word is kept: the words of accepted tags, content words nobody decided on, and
   the function words ("a", "the", "through") that make it a sentence.

Tags people *added* are not put into the caption (we cannot know where they belong in the
sentence); they are in ``tags.tsv``. A caption left without any word that could be a hashtag is
not written, and an image left without captions is skipped (counted as ``no_caption``).

Example: model caption "a black dog runs through the grass", ``#dog`` edited to ``#puppy``,
``#grass`` rejected, ``#black`` accepted → "a black puppy runs through the".

**Deterministic and safe to re-run.** Files are sorted and written atomically (temporary file +
rename); image names come from the content hash, so the same database gives byte-identical files.
``since`` exports only images with a decision (or correction) at or after that time and merges
them into what ``DIR`` already holds; a full export (no ``since``) rewrites ``DIR``'s listing and
removes images of earlier exports that no longer qualify.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db.models import Q
from mlcore.dataset_layout import IMAGE_DIR, SPLIT_FILES, TAGS_FILE, TAGS_HEADER, TOKEN_FILE
from mlcore.extractor import EVERY_TAG, extract_hashtags, normalize_tag
from mlcore.text import clean_caption
from PIL import Image
from tqdm import tqdm

from .models import DECIDED_STATES, HashtagOptOut, ImageAnalysis, Outcome, Suggestion, SuggestionState
from .watched import owner_id

logger = logging.getLogger(__name__)

TRAIN_FILE, DEV_FILE, TEST_FILE = SPLIT_FILES["train"], SPLIT_FILES["dev"], SPLIT_FILES["test"]
HELD_BACK_MODULO = 10  # one image in ten (by content hash) is held back for evaluation

_SHA_NAME = re.compile(r"^[0-9a-f]{64}\.jpg$")


@dataclass
class TagDecisions:
    """What people decided about one image's tags (canonical names, no ``#``)."""

    accepted: set[str] = field(default_factory=set)  # accepted, edited-to and added
    rejected: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)
    edited: dict[str, str] = field(default_factory=dict)  # suggested tag → the person's tag

    @classmethod
    def from_suggestions(cls, suggestions: Iterable[Suggestion]) -> TagDecisions:
        """Latest decision per tag wins (suggestions of several analyses of one image)."""
        latest: dict[str, Suggestion] = {}
        for s in sorted(suggestions, key=lambda s: (s.decided_at is not None, s.decided_at or 0, s.pk)):
            outcomes = s.outcomes()
            if not outcomes:  # pending
                continue
            latest[s.hashtag.name] = s
            for tag, outcome in outcomes:
                if outcome is Outcome.REPLACED:  # the edit is the latest word on the tag it replaced
                    latest.pop(tag, None)
        decisions = cls()
        for name, s in latest.items():
            for tag, outcome in s.outcomes():  # the label rule: hashtags.models.Outcome
                if outcome is Outcome.REPLACED:
                    decisions.edited[tag] = name
                elif outcome.kept:
                    decisions.accepted.add(tag)
                else:
                    decisions.rejected.add(tag)
                if outcome is Outcome.ADDED:
                    decisions.added.add(tag)
        return decisions


def feedback_caption(caption: str, decisions: TagDecisions) -> str | None:
    """The model caption with people's decisions applied (the rule in the module docstring);
    None when nothing that could be a hashtag is left."""
    words: list[str] = []
    for word in clean_caption(caption or ""):
        tag = normalize_tag(word)
        if tag in decisions.edited:
            words.append(decisions.edited[tag])
        elif tag in decisions.rejected:
            continue
        else:
            words.append(word)
    text = " ".join(words)
    if not extract_hashtags(text, config=EVERY_TAG):
        return None
    return text


def clean_corrected_caption(text: str | None) -> str:
    """A person's caption on one line (the token file is line- and tab-separated)."""
    return " ".join((text or "").split())


def held_back(image_name: str) -> bool:
    """Deterministic ~10% of the images, by content hash: the feedback dev split."""
    return int(image_name[:8], 16) % HELD_BACK_MODULO == 0


@dataclass
class ExportSummary:
    images: int = 0  # exported by this run
    captions: int = 0
    corrected: int = 0  # of which corrected by a person
    skipped_deleted: int = 0
    skipped_missing: int = 0
    skipped_opted_out: int = 0
    skipped_no_caption: int = 0
    total_images: int = 0  # in DIR after the run
    train_images: int = 0
    dev_images: int = 0

    @property
    def skipped(self) -> int:
        return self.skipped_deleted + self.skipped_missing + self.skipped_opted_out + self.skipped_no_caption

    def __str__(self) -> str:
        return (
            f"exported {self.images} image(s) with {self.captions} caption(s) "
            f"({self.corrected} corrected by people); skipped {self.skipped} "
            f"(deleted {self.skipped_deleted}, file missing {self.skipped_missing}, "
            f"opted out {self.skipped_opted_out}, no caption left {self.skipped_no_caption}); "
            f"dataset now {self.total_images} image(s): {self.train_images} train, {self.dev_images} held back (dev)"
        )


# Reading the database -----------------------------------------------------------------------------

def _with_feedback(since: datetime | None):
    """Analyses (done, readable) with a decision or a correction, optionally at/after ``since``."""
    decided = Q(suggestions__state__in=DECIDED_STATES)
    corrected = Q(corrected_caption__isnull=False) & ~Q(corrected_caption="")
    if since is not None:
        decided &= Q(suggestions__decided_at__gte=since)
        corrected &= Q(corrected_at__gte=since)
    return ImageAnalysis.objects.filter(status="done").exclude(image_sha256="").filter(decided | corrected)


def _analyses_by_image(since: datetime | None) -> dict[str, list[ImageAnalysis]]:
    shas = set(_with_feedback(since).values_list("image_sha256", flat=True))
    analyses = (
        _with_feedback(None).filter(image_sha256__in=shas).distinct()
        .select_related("content_type").order_by("image_sha256", "pk")
    )
    groups: dict[str, list[ImageAnalysis]] = defaultdict(list)
    for analysis in analyses:
        groups[analysis.image_sha256].append(analysis)
    return groups


def _read_image(analysis: ImageAnalysis) -> tuple[bytes | None, str]:
    """The analysed content, or (None, reason) with reason "deleted" / "missing"."""
    obj = analysis.content_object
    if obj is None:
        return None, "deleted"
    try:
        storage = obj._meta.get_field(analysis.field_name).storage
    except Exception:
        return None, "missing"
    name = analysis.image_name or getattr(getattr(obj, analysis.field_name, None), "name", "")
    if not name:
        return None, "missing"
    try:
        with storage.open(name, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError):
        return None, "missing"
    if hashlib.sha256(data).hexdigest() != analysis.image_sha256:
        return None, "missing"  # the file was replaced: the decisions are about other content
    return data, ""


def _as_jpeg(data: bytes) -> bytes:
    """JPEGs are copied; anything else is re-encoded (deterministically) as an RGB JPEG."""
    if data[:3] == b"\xff\xd8\xff":
        return data

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=95)
        return out.getvalue()


# Writing files ----------------------------------------------------------------------------------------

def atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _lines(rows: Iterable[str]) -> bytes:
    text = "\n".join(rows)
    return (text + "\n").encode("utf-8") if text else b""


def _read_existing(out: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Captions and tags.tsv rows of an earlier export in ``out`` (for incremental runs)."""
    captions: dict[str, list[str]] = defaultdict(list)
    token_path = out / TOKEN_FILE
    if token_path.is_file():
        for line in token_path.read_text(encoding="utf-8").splitlines():
            key, tab, caption = line.partition("\t")
            image, _, _ = key.partition("#")
            if tab and caption.strip():
                captions[image].append(caption)
    tags: dict[str, str] = {}
    tags_path = out / TAGS_FILE
    if tags_path.is_file():
        for line in tags_path.read_text(encoding="utf-8").splitlines()[1:]:
            image = line.partition("\t")[0]
            if image:
                tags[image] = line
    return dict(captions), tags


def _tags_row(image: str, decisions: TagDecisions) -> str:
    edited = " ".join(f"{old}>{new}" for old, new in sorted(decisions.edited.items()))
    return "\t".join([
        image, " ".join(sorted(decisions.accepted)), " ".join(sorted(decisions.rejected)),
        " ".join(sorted(decisions.added)), edited,
    ])


def export_feedback(out_dir: str | os.PathLike, since: datetime | None = None, *, progress: bool = True) -> ExportSummary:
    """Write (or, with ``since``, update) the feedback dataset in ``out_dir``; see the module docstring."""
    out = Path(out_dir)
    image_dir = out / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    (out / TOKEN_FILE).parent.mkdir(parents=True, exist_ok=True)
    captions, tag_rows = _read_existing(out) if since is not None else ({}, {})
    summary = ExportSummary()
    opted_out = set(HashtagOptOut.objects.values_list("user_id", flat=True))
    groups = _analyses_by_image(since)
    suggestions: dict[int, list[Suggestion]] = defaultdict(list)
    for s in (
        Suggestion.objects.filter(analysis__image_sha256__in=list(groups))
        .exclude(state=SuggestionState.PENDING).select_related("hashtag", "replaced")
    ):
        suggestions[s.analysis_id].append(s)

    for sha in tqdm(sorted(groups), desc="export feedback", unit="image", disable=not progress):
        analyses = groups[sha]
        data, reason = None, "missing"
        for analysis in analyses:
            obj = analysis.content_object
            if obj is not None and owner_id(obj) in opted_out:
                reason = "opted_out"
                continue
            data, why = _read_image(analysis)
            if data is not None:
                break
            if reason != "opted_out":
                reason = why
        if data is None:
            setattr(summary, f"skipped_{reason}", getattr(summary, f"skipped_{reason}") + 1)
            continue
        decisions = TagDecisions.from_suggestions(s for a in analyses for s in suggestions[a.pk])
        corrected = sorted({clean_corrected_caption(a.corrected_caption) for a in analyses} - {""})
        if corrected:
            texts = corrected
        else:
            texts = sorted({c for c in (feedback_caption(a.caption, decisions) for a in analyses) if c})
        if not texts:
            summary.skipped_no_caption += 1
            continue
        name = f"{sha}.jpg"
        target = image_dir / name
        if not target.is_file():
            atomic_write(target, _as_jpeg(data))
        captions[name] = texts
        tag_rows[name] = _tags_row(name, decisions)
        summary.images += 1
        summary.captions += len(texts)
        summary.corrected += len(corrected)

    names = sorted(captions)
    train = [n for n in names if not held_back(n)]
    dev = [n for n in names if held_back(n)]
    atomic_write(out / TOKEN_FILE, _lines(f"{n}#{i}\t{c}" for n in names for i, c in enumerate(captions[n])))
    atomic_write(out / TRAIN_FILE, _lines(train))
    atomic_write(out / DEV_FILE, _lines(dev))
    atomic_write(out / TEST_FILE, b"")
    atomic_write(out / TAGS_FILE, _lines([TAGS_HEADER, *(tag_rows[n] for n in sorted(tag_rows) if n in captions)]))
    if since is None:  # a full export: images of earlier exports that no longer qualify go
        keep = set(names)
        for path in image_dir.iterdir():
            if _SHA_NAME.match(path.name) and path.name not in keep:
                path.unlink()
    summary.total_images, summary.train_images, summary.dev_images = len(names), len(train), len(dev)
    logger.info("hashtags feedback export to %s: %s", out, summary)
    return summary
