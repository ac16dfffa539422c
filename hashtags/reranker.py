"""A Naive Bayes hashtag re-ranker learned from people's decisions (the seed paper's classifier).

**What it predicts.** P(a person keeps tag *t* | the image's beam captions, the person). One
scikit-learn :class:`~sklearn.naive_bayes.BernoulliNB` over binary features from a
:class:`~sklearn.feature_extraction.DictVectorizer`:

- ``word=w``            every content word of the beam captions (the captioner's own tag words);
- ``tag=t``             the candidate tag (its acceptance prior);
- ``tag=t|word=w``      candidate × caption word: "#dog is kept when the caption says *beach*";
- ``user=u``            tags the person accepted before, on other posts, and ``tag=t|mine`` /
  ``in_history`` when the candidate is one of them — Denton et al.'s user-conditional idea with
  the person's history as their metadata;
- ``origin=candidate`` / ``origin=absent``  whether the captioner suggested the tag at all.

**Labels.** A tag's label is whether it was kept (:class:`hashtags.models.Outcome`, the rule the
training export reads too): accepted, edited-to and added tags are 1; rejected tags are 0, and so
is the tag an edit replaced (the person did not keep it as suggested). Tags people *keep adding* (added or
edited-to at least ``PROPOSE_MIN_COUNT`` times) are "proposable": on every decided image that does
not carry one, it is an implicit 0 with ``origin=absent``, so the model also learns when to propose
a tag the captioner never says. Only real decisions count towards ``RERANKER_MIN_DECISIONS``.

**Measured before it is saved.** Decisions are split by analysis (a sha256 of its id, 1 in 5 held
out); a model fitted on the rest is scored on the held-out part — accuracy against the majority
baseline, ROC AUC, and the mean rank of the kept tags among each image's decided suggestions in
the order people saw (``Suggestion.rank``) versus the re-ranked order. The saved model is then refit
on everything; the numbers are in its ``metadata``.

**How it is used.** :func:`hashtags.analysis.run_analysis` calls :func:`apply_to_suggestion` on
every new analysis: when ``RERANKER_PATH`` holds a trained model the suggestions are re-ordered by
P(keep) (their new score) and up to ``MAX_PROPOSALS`` proposable tags scoring at least
``PROPOSE_THRESHOLD`` are added; with no file nothing changes. Re-ordered tags keep the sources
the captioner gave them; a proposed tag's source is ``feedback`` (:mod:`hashtags.explain`).
``manage.py hashtags_train_reranker`` and the ``hashtags.train_reranker`` Celery task (beat, every
``RERANKER_SCHEDULE``) train it and save its parameters as JSON (never a pickle) to ``RERANKER_PATH``,
by default in ``DATA_DIR``, outside MEDIA_ROOT; with fewer than ``RERANKER_MIN_DECISIONS`` decisions they refuse
(:class:`NotEnoughFeedback`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone
from mlcore.extractor import caption_words as extract_caption_words

from .conf import hashtags_settings
from .explain import FEEDBACK
from .extraction import extractor_config
from .models import AcceptedTag, Suggestion, SuggestionState

logger = logging.getLogger(__name__)

FORMAT = 2  # JSON parameters (format 1 was a joblib pickle, now refused)
PROPOSE_MIN_COUNT = 3  # a tag people added this often can be proposed
PROPOSE_THRESHOLD = 0.5  # ... when P(keep) is at least this
MAX_PROPOSALS = 3
HISTORY_SIZE = 20  # the person's most frequent past tags used as features
HELD_OUT_MODULO = 5  # one analysis in five is held out to measure the model before saving


class NotEnoughFeedback(RuntimeError):
    """Too few decisions to learn from; the re-ranker stays off (or keeps its last model)."""


@dataclass(frozen=True)
class RankedTag:
    """A suggestion after re-ranking: ``score`` is P(keep), ``model_score`` the captioner's;
    ``sources`` say why it is suggested, as the candidate's did (``("feedback",)`` for a tag the
    re-ranker proposed on its own)."""

    tag: str
    score: float
    model_score: float | None = None
    proposed: bool = False
    sources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.tag[1:]

    def as_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "score": self.score, "model_score": self.model_score, "proposed": self.proposed,
                "sources": list(self.sources)}


@dataclass
class Example:
    """One decision as the classifier sees it."""

    group: int  # analysis id: held-out split and per-image ranking
    tag: str
    label: int
    words: tuple[str, ...]
    history: tuple[str, ...]
    rank: int | None = None  # where people saw it (None: added, or implicit)
    origin: str = "candidate"  # "candidate" or "absent"
    real: bool = True  # a person's decision (False: implicit negative of a proposable tag)


def caption_words(captions: Sequence[str]) -> tuple[str, ...]:
    """Content words of stored beam captions, as the captioner extracts them with the app's settings
    (a new analysis' :attr:`~mlcore.captioner.CaptionResult.caption_words` are the same words)."""
    return extract_caption_words(captions, extractor_config())


def features(tag: str, words: Iterable[str], history: Iterable[str], origin: str = "candidate") -> dict[str, int]:
    history = tuple(history)
    result = {f"tag={tag}": 1, f"origin={origin}": 1}
    for word in words:
        result[f"word={word}"] = 1
        result[f"tag={tag}|word={word}"] = 1
    for past in history:
        result[f"user={past}"] = 1
    if tag in history:
        result["in_history"] = 1
        result[f"tag={tag}|mine"] = 1
    return result


def _name(tag: Any) -> str:
    text = tag if isinstance(tag, str) else getattr(tag, "tag", None) or tag[0]
    return str(text).lstrip("#")


def _score(tag: Any) -> float | None:
    if isinstance(tag, str):
        return None
    score = getattr(tag, "model_score", None)
    if score is None:
        score = getattr(tag, "score", None) if not isinstance(tag, (tuple, list)) else tag[1]
    return None if score is None else float(score)


def _sources(tag: Any) -> tuple[str, ...]:
    """A candidate's sources: mlcore Hashtags and RankedTags have them, pairs and strings none."""
    return tuple(getattr(tag, "sources", ()))


def _ranked(tag: Any, score: float) -> RankedTag:
    """``tag`` (a candidate) re-scored, keeping its captioner score and its sources."""
    return RankedTag(f"#{_name(tag)}", score, _score(tag), sources=_sources(tag))


@dataclass
class Reranker:
    vectorizer: Any
    model: Any
    proposable: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def probabilities(self, rows: list[dict[str, int]]) -> list[float]:
        if not rows:
            return []
        probs = self.model.predict_proba(self.vectorizer.transform(rows))
        positive = list(self.model.classes_).index(1)
        return [float(p) for p in probs[:, positive]]

    def rerank(
        self,
        candidates: Sequence[Any],
        captions: Sequence[str],
        history: Sequence[str] = (),
        *,
        propose: bool = True,
        blocklist: Iterable[str] = (),
        words: Sequence[str] | None = None,
    ) -> list[RankedTag]:
        """``candidates`` (mlcore Hashtags, ``(tag, score)`` pairs or tag strings) re-ordered by
        P(keep), ties in the captioner's order; plus proposals of tags people keep adding.
        ``words``: the captions' words when the captioner already extracted them."""
        words = caption_words(captions) if words is None else tuple(words)
        names = [_name(c) for c in candidates]
        probs = self.probabilities([features(n, words, history) for n in names])
        ranked = [(p, -i, _ranked(c, round(p, 6))) for i, (c, p) in enumerate(zip(candidates, probs))]
        if propose and self.proposable:
            blocked = {str(b).lstrip("#").lower() for b in blocklist}
            extra = [t for t in self.proposable if t not in set(names) and t not in blocked]
            extra_probs = self.probabilities([features(t, words, history, "absent") for t in extra])
            chosen = sorted(
                ((p, t) for t, p in zip(extra, extra_probs) if p >= PROPOSE_THRESHOLD), key=lambda x: (-x[0], x[1])
            )[:MAX_PROPOSALS]
            for j, (p, t) in enumerate(chosen):
                ranked.append((p, -(len(names) + j),
                               RankedTag(f"#{t}", round(p, 6), None, proposed=True, sources=(FEEDBACK,))))
        ranked.sort(key=lambda item: (-item[0], -item[1]))
        return [item[2] for item in ranked]


# Training data from the database ---------------------------------------------------------------------

def user_history(user_id, *, before=None, exclude_object: tuple[int, str] | None = None, limit: int = HISTORY_SIZE,
                 rows: list | None = None) -> tuple[str, ...]:
    """The person's most frequent accepted tags on other objects (optionally before a time)."""
    if user_id is None:
        return ()
    if rows is None:
        rows = list(
            AcceptedTag.objects.filter(added_by_id=user_id)
            .values_list("content_type_id", "object_id", "hashtag__name", "created")
            .order_by("-created")[:500]
        )
    counts: Counter[str] = Counter()
    for ct_id, object_id, name, created in rows:
        if before is not None and created >= before:
            continue
        if exclude_object is not None and (ct_id, object_id) == exclude_object:
            continue
        counts[name] += 1
    return tuple(sorted(name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]))


def load_examples() -> tuple[list[Example], list[str]]:
    """Every decided suggestion as an Example, plus implicit negatives of proposable tags."""
    decided = list(
        Suggestion.objects.filter(analysis__status="done")
        .exclude(state=SuggestionState.PENDING)
        .select_related("analysis", "hashtag", "replaced")
        .order_by("analysis_id", "pk")
    )
    history_rows: dict[Any, list] = defaultdict(list)
    for user_id, *row in AcceptedTag.objects.filter(added_by__isnull=False).values_list(
        "added_by_id", "content_type_id", "object_id", "hashtag__name", "created"
    ):
        history_rows[user_id].append(tuple(row))

    examples: list[Example] = []
    by_analysis: dict[int, list[Example]] = defaultdict(list)
    added_counts: Counter[str] = Counter()
    words_of: dict[int, tuple[str, ...]] = {}
    history_of: dict[tuple, tuple[str, ...]] = {}
    for s in decided:
        a = s.analysis
        if a.pk not in words_of:
            words_of[a.pk] = caption_words(a.captions or ([a.caption] if a.caption else []))
        key = (s.decided_by_id, a.pk)
        if key not in history_of:
            history_of[key] = user_history(
                s.decided_by_id, before=s.decided_at, exclude_object=(a.content_type_id, a.object_id),
                rows=history_rows.get(s.decided_by_id, []),
            )
        common = {"group": a.pk, "words": words_of[a.pk], "history": history_of[key]}
        new = []
        for tag, outcome in s.outcomes():  # the label rule: hashtags.models.Outcome
            if not outcome.suggested:  # the person's own tag (added, or edited to)
                added_counts[tag] += 1
            new.append(Example(tag=tag, label=int(outcome.kept), rank=s.rank if outcome.suggested else None,
                               origin="candidate" if outcome.suggested else "absent", **common))
        examples.extend(new)
        by_analysis[a.pk].extend(new)

    proposable = sorted(t for t, n in added_counts.items() if n >= PROPOSE_MIN_COUNT)
    for group, items in sorted(by_analysis.items()):
        present = {e.tag for e in items}
        first = items[0]
        for tag in proposable:
            if tag not in present:
                examples.append(Example(group, tag, 0, first.words, first.history, origin="absent", real=False))
    return examples, proposable


def _held_out(group: int) -> bool:
    return int(hashlib.sha256(str(group).encode()).hexdigest()[:8], 16) % HELD_OUT_MODULO == 0


def _fit(examples: list[Example]):
    # lazy: scikit-learn start-up stays out of web processes until a re-ranker is trained
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.naive_bayes import BernoulliNB  # lazy: scikit-learn start-up, as above

    vectorizer = DictVectorizer(sparse=True)
    matrix = vectorizer.fit_transform([features(e.tag, e.words, e.history, e.origin) for e in examples])
    model = BernoulliNB(alpha=1.0)
    model.fit(matrix, [e.label for e in examples])
    return vectorizer, model


def _mean_rank(order: list[Example]) -> float:
    return sum(i + 1 for i, e in enumerate(order) if e.label) / max(1, sum(e.label for e in order))


def evaluate(reranker: Reranker, examples: list[Example]) -> dict:
    """Held-out metrics: classification of the real decisions and ranking of each image's
    decided suggestions (people's order = ``Suggestion.rank``)."""
    from sklearn.metrics import roc_auc_score  # lazy: scikit-learn start-up only when training

    real = [e for e in examples if e.real]
    probs = reranker.probabilities([features(e.tag, e.words, e.history, e.origin) for e in real])
    labels = [e.label for e in real]
    metrics: dict[str, Any] = {"decisions": len(real)}
    if real:
        positives = sum(labels)
        metrics["accuracy"] = round(sum((p >= 0.5) == bool(y) for p, y in zip(probs, labels)) / len(real), 4)
        metrics["majority_accuracy"] = round(max(positives, len(real) - positives) / len(real), 4)
        metrics["auc"] = round(float(roc_auc_score(labels, probs)), 4) if 0 < positives < len(real) else None
    groups: dict[int, list[tuple[Example, float]]] = defaultdict(list)
    for e, p in zip(real, probs):
        if e.rank is not None:
            groups[e.group].append((e, p))
    before, after = [], []
    for items in groups.values():
        if not any(e.label for e, _ in items) or all(e.label for e, _ in items):
            continue  # nothing to re-order: all kept or all rejected
        seen = [e for e, _ in sorted(items, key=lambda x: x[0].rank)]
        reranked = [e for e, _ in sorted(items, key=lambda x: (-x[1], x[0].rank))]
        before.append(_mean_rank(seen))
        after.append(_mean_rank(reranked))
    metrics["ranked_images"] = len(before)
    metrics["mean_kept_rank_before"] = round(sum(before) / len(before), 4) if before else None
    metrics["mean_kept_rank_after"] = round(sum(after) / len(after), 4) if after else None
    return metrics


def train(min_decisions: int | None = None) -> Reranker:
    """Learn a re-ranker from every decision in the database (raises NotEnoughFeedback)."""
    import sklearn  # lazy: scikit-learn start-up only when training

    examples, proposable = load_examples()
    real = [e for e in examples if e.real]
    needed = hashtags_settings.RERANKER_MIN_DECISIONS if min_decisions is None else min_decisions
    labels = {e.label for e in real}
    if len(real) < needed:
        raise NotEnoughFeedback(
            f"not enough feedback to train the re-ranker: {len(real)} decision(s), need {needed} "
            f"(HASHTAGS['RERANKER_MIN_DECISIONS']); suggestions stay in the captioner's order"
        )
    if labels != {0, 1}:
        raise NotEnoughFeedback(
            "not enough feedback to train the re-ranker: it needs both kept and rejected tags, "
            f"all {len(real)} decision(s) are {'kept' if labels == {1} else 'rejections'}"
        )
    train_part = [e for e in examples if not _held_out(e.group)]
    test_part = [e for e in examples if _held_out(e.group)]
    held_out: dict[str, Any] = {"decisions": 0}
    if test_part and {e.label for e in train_part if e.real} == {0, 1}:
        held_out = evaluate(Reranker(*_fit(train_part), proposable), test_part)
    vectorizer, model = _fit(examples)
    metadata = {
        "format": FORMAT,
        "trained_at": timezone.now().isoformat(),
        "decisions": len(real),
        "kept": sum(e.label for e in real),
        "rejected": sum(1 for e in real if not e.label),
        "images": len({e.group for e in real}),
        "implicit_negatives": len(examples) - len(real),
        "features": len(vectorizer.vocabulary_),
        "proposable": proposable,
        "held_out": held_out,
        "classifier": "BernoulliNB", "sklearn": sklearn.__version__,
    }
    return Reranker(vectorizer, model, proposable, metadata)


# Persistence and the per-process cache -------------------------------------------------------------------
#
# Saved as JSON (format 2): the DictVectorizer's feature names and the BernoulliNB's fitted arrays,
# from which the two estimators are rebuilt. Never a pickle: whoever can write the file must not be
# able to run code in every worker (issue 17). The old joblib pickles (format 1) are recognised by
# their bytes and refused without being opened by pickle; retrain to replace them.

LEGACY_PATH = Path("hashtags") / "reranker.joblib"  # under MEDIA_ROOT, where format 1 was saved
PICKLE_MAGIC = (b"\x80", b"\x78")  # pickle protocol 2+ and zlib (joblib's compressed pickles)


class UnsafeReranker(ValueError):
    """A re-ranker file that is a pickle: refused, never unpickled."""


def data_dir() -> Path:
    """``DATA_DIR``: the app's own trained files; default the user's data directory."""
    configured = hashtags_settings.DATA_DIR
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "django-hashtags"


def reranker_path() -> Path:
    """``RERANKER_PATH``, default ``DATA_DIR/reranker.json`` (never under MEDIA_ROOT)."""
    configured = hashtags_settings.RERANKER_PATH
    if configured:
        return Path(configured).expanduser()
    return data_dir() / "reranker.json"


def to_dict(reranker: Reranker) -> dict[str, Any]:
    """The re-ranker as plain JSON data: enough to rebuild the fitted estimators exactly."""
    model, vectorizer = reranker.model, reranker.vectorizer
    return {
        "format": FORMAT,
        "classifier": "BernoulliNB",
        "features": [str(name) for name in vectorizer.feature_names_],
        "classes": [int(c) for c in model.classes_],
        "class_log_prior": [float(v) for v in model.class_log_prior_],
        "feature_log_prob": [[float(v) for v in row] for row in model.feature_log_prob_],
        "binarize": model.binarize,
        "alpha": float(model.alpha),
        "proposable": list(reranker.proposable),
        "metadata": reranker.metadata,
    }


def from_dict(data: Any, source: str = "re-ranker") -> Reranker:
    """Rebuild the DictVectorizer and BernoulliNB from :func:`to_dict` data (ValueError if malformed)."""
    # lazy: scikit-learn start-up only when a trained re-ranker is loaded
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.naive_bayes import BernoulliNB  # lazy: scikit-learn start-up, as above

    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("classifier") != "BernoulliNB":
        raise ValueError(f"{source} is not a re-ranker of format {FORMAT}; train it again")
    try:
        features = [str(name) for name in data["features"]]
        log_prob = np.asarray(data["feature_log_prob"], dtype=np.float64)
        prior = np.asarray(data["class_log_prior"], dtype=np.float64)
        classes = np.asarray(data["classes"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source} is malformed: {exc}") from None
    if log_prob.shape != (len(classes), len(features)) or prior.shape != (len(classes),) \
            or len(set(features)) != len(features):
        raise ValueError(f"{source} is malformed: {log_prob.shape} feature log-probabilities for "
                         f"{len(classes)} classes and {len(features)} features")
    vectorizer = DictVectorizer(sparse=True)
    vectorizer.feature_names_ = features
    vectorizer.vocabulary_ = {name: i for i, name in enumerate(features)}
    model = BernoulliNB(alpha=float(data.get("alpha", 1.0)), binarize=data.get("binarize", 0.0))
    model.classes_, model.class_log_prior_, model.feature_log_prob_ = classes, prior, log_prob
    model.n_features_in_ = len(features)
    return Reranker(vectorizer, model, [str(t) for t in data.get("proposable", [])], dict(data.get("metadata", {})))


def save(reranker: Reranker, path: str | os.PathLike | None = None) -> Path:
    """Write JSON atomically (temporary file + rename), so workers never read half a model."""
    path = Path(path) if path else reranker_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(to_dict(reranker), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    reset_cache()
    return path


def load(path: str | os.PathLike) -> Reranker:
    """Read a saved re-ranker. Raises :class:`UnsafeReranker` for a pickle (the old joblib format,
    or anything else that is not JSON) without unpickling it, ValueError for other bad files."""
    data = Path(path).read_bytes()
    if data[:1] in PICKLE_MAGIC:
        raise UnsafeReranker(
            f"{path} is a pickle (the old joblib re-ranker format): refused, never unpickled, because a "
            f"pickle can run code. Delete it and retrain with 'manage.py hashtags_train_reranker' "
            f"(saves JSON to {reranker_path()})"
        )
    try:
        parsed = json.loads(data)
    except ValueError:
        raise ValueError(f"{path} is not a re-ranker (not JSON); train it again") from None
    return from_dict(parsed, str(path))


def train_and_save(min_decisions: int | None = None, path: str | os.PathLike | None = None) -> tuple[Reranker, Path]:
    reranker = train(min_decisions)
    return reranker, save(reranker, path)


_lock = threading.Lock()
_cache: dict[str, Any] = {"key": None, "reranker": None, "legacy_warned": None}


def _warn_about_legacy_file() -> None:
    """Say once per process why a re-ranker trained before format 2 no longer applies."""
    legacy = Path(settings.MEDIA_ROOT) / LEGACY_PATH
    if _cache["legacy_warned"] != str(legacy) and legacy.exists():
        _cache["legacy_warned"] = str(legacy)
        logger.warning(
            "hashtags: ignoring the pickled re-ranker %s (old format, inside MEDIA_ROOT): it is never "
            "loaded; delete it and retrain with 'manage.py hashtags_train_reranker' (saves JSON to %s)",
            legacy, reranker_path(),
        )


def get_reranker() -> Reranker | None:
    """The trained re-ranker at ``reranker_path()`` (reloaded when the file changes), else None."""
    path = reranker_path()
    try:
        stat = path.stat()
    except OSError:
        with _lock:
            _warn_about_legacy_file()
        return None
    key = f"{path.resolve()}@{stat.st_mtime_ns}@{stat.st_size}"
    with _lock:
        if _cache["key"] != key:
            try:
                _cache["reranker"] = load(path)
            except UnsafeReranker as exc:
                logger.error("hashtags: %s", exc)
                _cache["reranker"] = None
            except Exception as exc:  # a broken file must not break analyses: stay off and say so
                logger.warning("hashtags: re-ranker %s unusable, suggestions not re-ranked: %s", path, exc)
                _cache["reranker"] = None
            _cache["key"] = key
        return _cache["reranker"]


def reset_cache() -> None:
    with _lock:
        _cache.update(key=None, reranker=None, legacy_warned=None)


def rerank(candidates: Sequence[Any], captions: Sequence[str], user=None, *, propose: bool = True,
           words: Sequence[str] | None = None) -> list[RankedTag]:
    """Re-order ``candidates`` for ``user`` (a user or user id) with the trained re-ranker; with
    none trained, the candidates come back in their order with their scores."""
    reranker = get_reranker()
    if reranker is None:
        return [_ranked(c, _score(c) or 0.0) for c in candidates]
    user_id = getattr(user, "pk", user)
    return reranker.rerank(candidates, captions, user_history(user_id), propose=propose,
                           blocklist=extractor_config().blocklist, words=words)


def apply_to_suggestion(result, user_id):
    """The analysis hook: ``result`` (an mlcore CaptionResult) with re-ranked hashtags, or unchanged
    when no re-ranker is trained or it fails (logged; an analysis never fails because of it)."""
    if get_reranker() is None or not getattr(result, "hashtags", None):
        return result
    started = time.perf_counter()
    try:
        ranked = rerank(result.hashtags, result.captions or [result.caption], user_id,
                        words=getattr(result, "caption_words", None) or None)
    except Exception:
        logger.exception("hashtags: re-ranking failed; keeping the captioner's order")
        return result
    timings = dict(result.timings or {})
    timings["rerank_s"] = round(time.perf_counter() - started, 4)
    return dataclasses.replace(result, hashtags=ranked, timings=timings)


def describe(reranker: Reranker) -> str:
    """One paragraph for the command line."""
    m = reranker.metadata
    h = m.get("held_out") or {}
    parts = [f"{m.get('decisions')} decisions ({m.get('kept')} kept, {m.get('rejected')} rejected) on "
             f"{m.get('images')} images, {m.get('features')} features"]
    if h.get("decisions"):
        parts.append(
            f"held-out: {h['decisions']} decisions, accuracy {h.get('accuracy')} "
            f"(majority {h.get('majority_accuracy')}), AUC {h.get('auc')}, mean rank of kept tags "
            f"{h.get('mean_kept_rank_before')} -> {h.get('mean_kept_rank_after')} over {h.get('ranked_images')} images"
        )
    else:
        parts.append("held-out: too few decisions to measure")
    if m.get("proposable"):
        parts.append("may propose: " + ", ".join("#" + t for t in m["proposable"][:20]))
    return "; ".join(parts)

