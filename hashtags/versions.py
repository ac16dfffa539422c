"""The model registry: which artifact serves, promotion and rollback, and how each version fares
with the people who review its suggestions.

Which model serves (the precedence rule):

1. A version that a person **promoted** (``promote``, or ``rollback`` to it) — from the
   ``hashtags_models`` command, the admin or the API — serves, whatever ``HASHTAGS["MODEL_DIR"]``
   says. It stays pinned until the next promote/rollback.
2. Until then, the **configured artifact** serves: ``HASHTAGS["MODEL_DIR"]`` when set, else the
   model shipped with mlcore. It is registered automatically on first use, so existing installs
   need no command; when ``MODEL_DIR`` changes (or the artifact there is replaced by one with a new
   version) the new artifact is registered and serves, as before the registry existed.

Workers notice a switch without a restart: :func:`hashtags.inference.get_captioner` asks
:func:`serving_target` at every task start and otherwise at most every ``MODEL_CHECK_INTERVAL``
seconds.

Statistics per version (:func:`with_stats` / :func:`version_stats`) count the suggestions a version
made (``Suggestion.model_version``) that a signed-in person decided; decisions without a person
(``AUTO_ACCEPT_SCORE`` auto-accepts, scripts calling the services with ``user=None``) say nothing
about the model and are left out, and so are tags people added themselves (no model suggested them):

- ``decided``: accepted + rejected + edited suggestions;
- ``acceptance_rate``: accepted / decided — an edited suggestion was *not* accepted as suggested
  (the person replaced the tag), so it counts in the denominator only; ``None`` when nothing is decided;
- ``edits_per_post``: edited suggestions / posts (distinct objects) with a finished analysis by
  the version;
- ``mean_decision_seconds``: mean of ``decided_at - analysis.finished`` over the decided suggestions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import (
    Avg,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat, NullIf
from django.dispatch import Signal
from django.utils import timezone
from mlcore.artifact import DEFAULT_MODEL_DIR, ArtifactError, read_info

from . import events
from .conf import hashtags_settings
from .models import REVIEWED_STATES, ImageAnalysis, ModelVersion, ServingReason, Suggestion, SuggestionState

logger = logging.getLogger(__name__)

# Sent (after commit) when this process switched the serving model version; the per-process
# model cache (:mod:`hashtags.inference`) listens and asks the registry again on its next use.
serving_switched = Signal()



class VersionError(ValueError):
    """A registry operation that cannot be done; the message says why."""


# Artifacts ---------------------------------------------------------------------------------------

def configured_model_dir() -> Path:
    """``HASHTAGS["MODEL_DIR"]`` if set, else the model shipped with mlcore (absolute)."""
    configured = hashtags_settings.MODEL_DIR
    return Path(configured).expanduser().resolve() if configured else Path(DEFAULT_MODEL_DIR).resolve()


def _info(path: Path):
    """``model.json`` of an artifact, checked; raises mlcore's ArtifactError naming the problem."""
    return read_info(path)


def _metrics_from(info) -> dict:
    metrics = {}
    training = info.training or {}
    if training.get("dev_metrics"):
        metrics["dev"] = training["dev_metrics"]
    if training.get("feedback_metrics"):
        metrics["feedback"] = training["feedback_metrics"]
    return metrics


def _user(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def register(path: str | Path, notes: str = "", *, user=None, metrics: dict | None = None) -> ModelVersion:
    """Add the artifact in ``path`` to the registry (not serving yet) and return its row.

    Registering the same directory again returns the existing row (notes and extra metrics are
    merged in). A version already registered from another directory is an error, unless that
    directory no longer holds it (the artifact was moved). Raises ``ArtifactError`` for a directory
    that is not a usable artifact and :class:`VersionError` for a clash.
    """
    path = Path(path).expanduser().resolve()
    info = _info(path)
    with transaction.atomic():
        existing = ModelVersion.objects.select_for_update().filter(version=info.version).first()
        if existing is None:
            try:
                with transaction.atomic():
                    return ModelVersion.objects.create(
                        version=info.version, path=str(path), encoder=str(info.encoder.get("name", "")),
                        registered_by=_user(user), metrics={**_metrics_from(info), **(metrics or {})},
                        notes=notes,
                    )
            except IntegrityError:  # registered concurrently
                existing = ModelVersion.objects.select_for_update().get(version=info.version)
        if existing.path != str(path) and _still_holds(existing):
            raise VersionError(
                f"model version {info.version!r} is already registered from {existing.path}; "
                f"give the artifact in {path} its own version (training's --version)"
            )
        existing.path = str(path)
        if metrics:
            existing.metrics = {**existing.metrics, **metrics}
        if notes:
            existing.notes = f"{existing.notes}\n{notes}".strip() if existing.notes else notes
        existing.save(update_fields=["path", "metrics", "notes"])
        return existing


def _still_holds(row: ModelVersion) -> bool:
    try:
        return _info(Path(row.path)).version == row.version
    except ArtifactError:
        return False


def get_version(version_or_obj: str | ModelVersion) -> ModelVersion:
    if isinstance(version_or_obj, ModelVersion):
        return version_or_obj
    try:
        return ModelVersion.objects.get(version=version_or_obj)
    except ModelVersion.DoesNotExist:
        known = ", ".join(ModelVersion.objects.values_list("version", flat=True)[:20]) or "none"
        raise VersionError(f"no registered model version {version_or_obj!r} (registered: {known})") from None


# Serving -----------------------------------------------------------------------------------------

def _switch(target: ModelVersion, reason: str, user=None) -> ModelVersion:
    """Make ``target`` the one serving row. Call inside ``transaction.atomic``."""
    rows = list(ModelVersion.objects.select_for_update().filter(Q(is_serving=True) | Q(pk=target.pk)).order_by("pk"))
    target = next(row for row in rows if row.pk == target.pk)
    current = [row for row in rows if row.is_serving and row.pk != target.pk]
    if target.is_serving and not current:
        if reason != ServingReason.SETTINGS and target.serving_reason == ServingReason.SETTINGS:
            # promoting what already serves pins it
            target.serving_reason, target.promoted_by = reason, _user(user)
            target.save(update_fields=["serving_reason", "promoted_by"])
        return target
    ModelVersion.objects.filter(pk__in=[row.pk for row in current]).update(is_serving=False)
    target.is_serving = True
    target.serving_reason = reason
    target.promoted_at = timezone.now()
    target.promoted_by = _user(user)
    if current and reason != ServingReason.ROLLBACK:
        # Rollback keeps the target's own history, so rolling back again walks further back.
        target.previous = current[0]
    target.save(update_fields=["is_serving", "serving_reason", "promoted_at", "promoted_by", "previous"])
    logger.info("hashtags: model version %s now serves (%s)", target.version, reason)
    transaction.on_commit(_notify_this_process)
    if reason != ServingReason.SETTINGS:
        events.send_model_promoted(target, current[0] if current else None, reason=reason)
    return target


def _notify_this_process() -> None:
    serving_switched.send(sender=ModelVersion)


def promote(version_or_obj: str | ModelVersion, user=None, *, reason: str = ServingReason.PROMOTED) -> ModelVersion:
    """Serve this version from now on (pinned: MODEL_DIR no longer decides). Its artifact must be
    readable here; workers pick it up at their next task."""
    target = get_version(version_or_obj)
    try:
        info = _info(Path(target.path))
    except ArtifactError as exc:
        raise VersionError(f"cannot promote {target.version}: {exc}") from None
    if info.version != target.version:
        raise VersionError(
            f"cannot promote {target.version}: {target.path} now holds version {info.version!r}; register it"
        )
    try:  # register what serves now (the configured model on a fresh install), so rollback finds it
        serving_version()
    except ArtifactError:
        pass
    with transaction.atomic():
        return _switch(target, reason, user)


def rollback(user=None) -> ModelVersion:
    """Serve the version that served before the current one; returns it."""
    with transaction.atomic():
        current = ModelVersion.objects.select_for_update().filter(is_serving=True).first()
        if current is None:
            raise VersionError("no model version is serving yet: nothing to roll back")
        if current.previous_id is None:
            raise VersionError(f"{current.version} has no previous version to roll back to")
        return promote(current.previous, user, reason=ServingReason.ROLLBACK)


def serving_version() -> ModelVersion:
    """The version that serves, following the precedence rule in this module's docstring;
    registers and serves the configured artifact when nobody promoted one. Raises ``ArtifactError``
    when the configured artifact is needed but unusable."""
    current = ModelVersion.objects.filter(is_serving=True).first()
    if current is not None and current.is_pinned:
        return current
    path = configured_model_dir()
    info = _info(path)
    if current is not None and current.version == info.version and current.path == str(path):
        return current
    for attempt in range(3):
        try:
            with transaction.atomic():
                row = ModelVersion.objects.select_for_update().filter(version=info.version).first()
                if row is None:
                    row = ModelVersion.objects.create(
                        version=info.version, path=str(path), encoder=str(info.encoder.get("name", "")),
                        metrics=_metrics_from(info), notes="registered automatically from the configured MODEL_DIR"
                        if hashtags_settings.MODEL_DIR else "the model shipped with mlcore, registered automatically",
                    )
                elif row.path != str(path):
                    row.path = str(path)
                    row.save(update_fields=["path"])
                # Somebody may have promoted a version meanwhile: that one wins.
                serving = ModelVersion.objects.select_for_update().filter(is_serving=True).first()
                if serving is not None and serving.is_pinned:
                    return serving
                return _switch(row, ServingReason.SETTINGS)
        except IntegrityError:  # another process registered or switched at the same moment
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ServingTarget:
    version: str
    path: str


def serving_target() -> ServingTarget:
    """What a worker should load: the serving version's artifact directory. One small query (and,
    while no version is pinned, a read of the configured ``model.json``)."""
    row = serving_version()
    return ServingTarget(version=row.version, path=row.path)


# Statistics --------------------------------------------------------------------------------------

def _decided_by_people(**filters) -> QuerySet:
    return Suggestion.objects.filter(
        model_version=OuterRef("version"), decided_by__isnull=False, state__in=REVIEWED_STATES, **filters
    ).order_by()


def _subquery_count(qs: QuerySet, expression="pk", distinct=False) -> Coalesce:
    counted = qs.values("model_version").annotate(n=Count(expression, distinct=distinct)).values("n")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def with_stats(qs: QuerySet | None = None) -> QuerySet:
    """``qs`` (default: every version) annotated with ``decided``, ``accepted``, ``rejected``,
    ``edited``, ``posts``, ``acceptance_rate``, ``edits_per_post`` and ``mean_decision``
    (a timedelta) — one query, sortable. Definitions in the module docstring."""
    qs = ModelVersion.objects.all() if qs is None else qs
    mean = (
        _decided_by_people(analysis__finished__isnull=False)
        .values("model_version")
        .annotate(m=Avg(ExpressionWrapper(F("decided_at") - F("analysis__finished"), output_field=DurationField())))
        .values("m")[:1]
    )
    posts = ImageAnalysis.objects.filter(model_version=OuterRef("version"), status="done").order_by()
    object_key = Concat(Cast("content_type_id", CharField()), Value(":"), "object_id", output_field=CharField())
    return qs.annotate(
        decided=_subquery_count(_decided_by_people()),
        accepted=_subquery_count(_decided_by_people(state=SuggestionState.ACCEPTED)),
        rejected=_subquery_count(_decided_by_people(state=SuggestionState.REJECTED)),
        edited=_subquery_count(_decided_by_people(state=SuggestionState.EDITED)),
        posts=_subquery_count(posts, object_key, distinct=True),
        mean_decision=Subquery(mean, output_field=DurationField()),
    ).annotate(
        acceptance_rate=ExpressionWrapper(
            Cast("accepted", FloatField()) / NullIf(Cast("decided", FloatField()), 0.0), output_field=FloatField()
        ),
        edits_per_post=ExpressionWrapper(
            Cast("edited", FloatField()) / NullIf(Cast("posts", FloatField()), 0.0), output_field=FloatField()
        ),
    )


def _seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1e6  # a backend that hands back microseconds


def stats_of(row: ModelVersion) -> dict:
    """The statistics of a row from :func:`with_stats`, as plain numbers."""
    return {
        "decided": row.decided,
        "accepted": row.accepted,
        "rejected": row.rejected,
        "edited": row.edited,
        "posts": row.posts,
        "acceptance_rate": row.acceptance_rate,
        "edits_per_post": row.edits_per_post,
        "mean_decision_seconds": _seconds(row.mean_decision),
    }


def version_stats(qs: QuerySet | None = None) -> dict[str, dict]:
    """``{version: stats}`` for the versions in ``qs`` (default all); see :func:`stats_of`."""
    return {row.version: stats_of(row) for row in with_stats(qs)}


def format_rate(value: float | None) -> str:
    """An acceptance rate for people: "73%", or "-" when nothing was decided."""
    return "-" if value is None else f"{value:.0%}"


def format_duration(seconds: float | None) -> str:
    """A mean time to decision for people, in the largest unit that keeps it readable."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
