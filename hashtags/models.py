"""Storage: tag vocabulary, one analysis per (object, image field, image content, model version),
the suggestions it produced and the tags people accepted.

Objects are referenced generically (content type + ``object_id`` as text) so any model with an image
field can be watched, whatever its primary key type.
"""

from __future__ import annotations

import enum

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from . import explain
from .watched import owner_id
from .tags import canonical_name, display


class HashtagQuerySet(models.QuerySet):
    def active(self) -> "HashtagQuerySet":
        """Tags that were not merged into another one."""
        return self.filter(merged_into__isnull=True)

    def get_normalized(self, text: str) -> "Hashtag":
        """The tag for user text (``"#Dog"``, ``"dog"``), following merges; DoesNotExist if none."""
        tag = self.get(name__iexact=canonical_name(text))
        return tag.resolve()

    def get_or_create_normalized(self, text: str) -> tuple["Hashtag", bool]:
        """Like ``get_or_create`` but case-insensitive on the canonical name and merge-aware."""
        name = canonical_name(text)
        existing = self.filter(name__iexact=name).first()
        if existing is not None:
            return existing.resolve(), False
        try:
            with transaction.atomic():
                return self.create(name=name), True
        except IntegrityError:  # created concurrently
            return self.get(name__iexact=name).resolve(), False


class Hashtag(models.Model):
    """A tag in the vocabulary; ``name`` is canonical (no ``#``) and unique ignoring case."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=120, unique=True, allow_unicode=True)
    usage_count = models.PositiveIntegerField(
        _("usage count"), default=0, help_text=_("Objects that carry this tag as an accepted tag.")
    )
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from",
        help_text=_("Set when this tag was merged; new uses go to the target."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    objects = HashtagQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="hashtags_hashtag_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.tag

    @property
    def tag(self) -> str:
        return display(self.name)

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = self._unique_slug()
        super().save(*args, **kwargs)

    def _unique_slug(self) -> str:
        base = slugify(self.name, allow_unicode=True)[:100] or "tag"
        slug, n = base, 1
        while Hashtag.objects.filter(slug=slug).exclude(pk=self.pk).exists():
            n += 1
            slug = f"{base}-{n}"
        return slug

    def resolve(self) -> "Hashtag":
        """Follow ``merged_into`` to the tag now in use."""
        tag, seen = self, set()
        while tag.merged_into_id and tag.pk not in seen:
            seen.add(tag.pk)
            tag = tag.merged_into
        return tag

    def refresh_usage_count(self) -> None:
        self.usage_count = self.accepted.count()
        self.save(update_fields=["usage_count"])


class AnalysisStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class ObjectRefQuerySet(models.QuerySet):
    def for_object(self, obj: models.Model) -> "ObjectRefQuerySet":
        return self.filter(
            content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
            object_id=str(obj.pk),
        )

    def for_field(self, model_or_obj, pk, field_name: str) -> "ObjectRefQuerySet":
        """The rows of one image field of one object (the object given as its model and pk)."""
        return self.filter(
            content_type=ContentType.objects.get_for_model(model_or_obj, for_concrete_model=False),
            object_id=str(pk),
            field_name=field_name,
        )


class ImageAnalysis(models.Model):
    """One model version's reading of one image content of one object's image field.

    Unique on (object, field, sha256, model version): the same content is never analysed twice by
    the same model, which also makes the task idempotent under ``acks_late`` redelivery.
    """

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64, db_index=True)
    content_object = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(max_length=100)
    image_name = models.CharField(max_length=255, blank=True, help_text=_("Storage name when analysed."))
    image_sha256 = models.CharField(max_length=64, blank=True, help_text=_("Empty when unreadable."))
    model_version = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=AnalysisStatus.choices, default=AnalysisStatus.PENDING)
    error = models.TextField(blank=True)
    caption = models.TextField(blank=True)
    caption_confidence = models.FloatField(
        null=True, blank=True,
        help_text=_("How far the caption agrees with the tag heads and the classifier, in [0, 1]; "
                    "empty when not known (an analysis that never finished, or one made before "
                    "confidences were recorded)."),
    )
    captions = models.JSONField(default=list, blank=True)
    attention = models.JSONField(
        null=True, blank=True,
        help_text=_("Where the model looked for each word of the caption: {\"grid\": [rows, columns], "
                    "\"words\": [[weight per grid cell, row-major] per word]}; empty for a model without "
                    "attention."),
    )
    corrected_caption = models.TextField(
        null=True, blank=True, help_text=_("A person's correction of the generated caption.")
    )
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected_at = models.DateTimeField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(
        max_length=64, blank=True,
        help_text=_("The task (delivery) that claimed the analysis to run the model; another delivery stops."),
    )
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    objects = ObjectRefQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "image analyses"
        ordering = ["-created", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "field_name", "image_sha256", "model_version"],
                name="hashtags_analysis_unique_content_version",
            )
        ]
        indexes = [models.Index(fields=["content_type", "object_id", "field_name"])]

    def __str__(self) -> str:
        return f"{self.content_type.app_label}.{self.content_type.model}:{self.object_id} ({self.status})"

    @property
    def duration(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None

    @property
    def caption_is_uncertain(self) -> bool:
        """The generated caption is too unsure to be shown as fact (see :mod:`hashtags.explain`)."""
        return explain.caption_is_uncertain(self.caption_confidence)

    def mark_failed(self, error: str) -> None:
        self.status = AnalysisStatus.FAILED
        self.error = error[:2000]
        self.finished = timezone.now()
        self.save(update_fields=["status", "error", "finished"])


class AnalysisRequest(models.Model):
    """An analysis someone asked for that has not finished: the outbox the broker is fed from.

    Written in the same transaction as the save that needs it, so a broker that is down, a message
    lost with a Redis restart or a process that dies between commit and send loses nothing: the
    reconciler (:mod:`hashtags.reconcile`) sends what is unsent or long overdue. Deleted when an
    analysis of the object's image finishes (done or failed). One row per object and image field.
    """

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    content_object = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(max_length=100)
    force = models.BooleanField(default=False, help_text=_("Redo even a finished analysis of the same content."))
    requested = models.DateTimeField(default=timezone.now, db_index=True)
    sent = models.DateTimeField(null=True, blank=True, help_text=_("Last handed to the executor; empty = not yet."))
    sends = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, help_text=_("Why the last send or run did not finish it."))

    objects = ObjectRefQuerySet.as_manager()

    class Meta:
        ordering = ["requested", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "field_name"], name="hashtags_analysisrequest_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.content_type.app_label}.{self.content_type.model}:{self.object_id}.{self.field_name}"


class SuggestionState(models.TextChoices):
    PENDING = "pending", _("pending")
    ACCEPTED = "accepted", _("accepted")
    REJECTED = "rejected", _("rejected")
    EDITED = "edited", _("edited")
    ADDED = "added", _("added by a person")


# The one definition of what the states mean, for every reader (services, export, statistics).
# A person keeps the tag: as suggested, as edited, or added themselves.
ACCEPTED_STATES = (SuggestionState.ACCEPTED, SuggestionState.EDITED, SuggestionState.ADDED)
# Every decision a person made (all but pending).
DECIDED_STATES = (*ACCEPTED_STATES, SuggestionState.REJECTED)
# A person ruled on a tag the model suggested (its acceptance rate); added tags were never suggested.
REVIEWED_STATES = (SuggestionState.ACCEPTED, SuggestionState.REJECTED, SuggestionState.EDITED)


class Outcome(enum.Enum):
    """What one decided suggestion says about one tag (:meth:`Suggestion.outcomes`): the one rule
    the re-ranker's labels and the training export both read."""

    KEPT = "kept"  # suggested, and the person kept it as suggested
    REJECTED = "rejected"  # suggested, and the person refused it
    REPLACED = "replaced"  # suggested, and the person's edit put another tag in its place
    EDITED_TO = "edited_to"  # the tag the person's edit put in place of a suggested one
    ADDED = "added"  # the person added it; it was not suggested

    @property
    def kept(self) -> bool:
        """The tag stays on the image."""
        return self in (Outcome.KEPT, Outcome.EDITED_TO, Outcome.ADDED)

    @property
    def suggested(self) -> bool:
        """The model suggested this tag (people saw it at the suggestion's rank)."""
        return self in (Outcome.KEPT, Outcome.REJECTED, Outcome.REPLACED)



class Suggestion(models.Model):
    """A tag proposed for an analysed image, and what a person decided about it."""

    analysis = models.ForeignKey(ImageAnalysis, on_delete=models.CASCADE, related_name="suggestions")
    hashtag = models.ForeignKey(Hashtag, on_delete=models.PROTECT, related_name="suggestions")
    score = models.FloatField(null=True, blank=True, help_text=_("Model score in [0, 1]; empty when added."))
    rank = models.PositiveSmallIntegerField(null=True, blank=True)
    sources = models.JSONField(
        default=list, blank=True,
        help_text=_("Why it was suggested: names from hashtags.explain.SOURCES (caption, tag_head, "
                    "classifier, feedback); empty when added by a person or suggested before this was recorded."),
    )
    state = models.CharField(max_length=10, choices=SuggestionState.choices, default=SuggestionState.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    replaced = models.ForeignKey(
        Hashtag, null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by_edits",
        help_text=_("The suggested tag an edit replaced."),
    )
    replaced_text = models.CharField(max_length=100, blank=True, help_text=_("Suggested text before the edit."))
    model_version = models.CharField(max_length=100, blank=True, help_text=_("Model that suggested it."))
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["analysis_id", "rank", "pk"]
        indexes = [models.Index(fields=["state", "model_version"])]

    def __str__(self) -> str:
        return f"{self.hashtag} ({self.state})"

    @property
    def is_accepted(self) -> bool:
        return self.state in ACCEPTED_STATES

    @property
    def source_labels(self) -> list[str]:
        """Why it was suggested, in words (admin "why" column, demo page)."""
        return explain.source_labels(self.sources or ())

    @property
    def is_edited(self) -> bool:
        """A person's edit that keeps the model's suggested tag in ``replaced``."""
        return self.state == SuggestionState.EDITED and bool(self.replaced_id)

    def outcomes(self) -> list[tuple[str, Outcome]]:
        """Each tag name this decision is about, with its :class:`Outcome` (none while pending).

        An edit speaks of two tags: the suggested one it replaced and the person's own. An edited
        row that lost its replaced tag counts as kept, as an accepted one does."""
        if self.state == SuggestionState.PENDING:
            return []
        if self.state == SuggestionState.REJECTED:
            return [(self.hashtag.name, Outcome.REJECTED)]
        if self.is_edited:
            return [(self.replaced.name, Outcome.REPLACED), (self.hashtag.name, Outcome.EDITED_TO)]
        if self.state == SuggestionState.ADDED:
            return [(self.hashtag.name, Outcome.ADDED)]
        return [(self.hashtag.name, Outcome.KEPT)]

    def undo_edit(self) -> None:
        """Put the suggested tag back in place of the person's edit (the caller saves)."""
        self.hashtag, self.replaced, self.replaced_text = self.replaced, None, ""


class ReviewQueueItem(Suggestion):
    """Pending suggestions: the moderators' to-do list in the admin (a proxy of Suggestion)."""

    class Meta:
        proxy = True
        verbose_name = "pending suggestion"
        verbose_name_plural = "review queue"


class AcceptedTagSource(models.TextChoices):
    SUGGESTION = "suggestion", _("accepted suggestion")
    EDIT = "edit", _("edited suggestion")
    ADDED = "added", _("added by a person")
    AUTO = "auto", _("auto-accepted")


class AcceptedTag(models.Model):
    """A tag an object carries; query with :func:`hashtags.query.filter_by_tag`."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64, db_index=True)
    content_object = GenericForeignKey("content_type", "object_id")
    hashtag = models.ForeignKey(Hashtag, on_delete=models.CASCADE, related_name="accepted")
    source = models.CharField(max_length=10, choices=AcceptedTagSource.choices, default=AcceptedTagSource.SUGGESTION)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ObjectRefQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "hashtag"], name="hashtags_acceptedtag_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hashtag} on {self.content_type.model}:{self.object_id}"


class HashtagOptOut(models.Model):
    """A user who does not want their images analysed."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hashtags_opt_out")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "hashtag opt-out"

    def __str__(self) -> str:
        return f"opt-out: {self.user}"

    @classmethod
    def is_opted_out(cls, user_id) -> bool:
        return user_id is not None and cls.objects.filter(user_id=user_id).exists()

    @classmethod
    def covers(cls, obj: models.Model) -> bool:
        """The object's owner opted out: it is never analysed, not even when someone forces it."""
        return cls.is_opted_out(owner_id(obj))


class ServingReason(models.TextChoices):
    SETTINGS = "settings", _("configured artifact (MODEL_DIR or the shipped model)")
    PROMOTED = "promoted", _("promoted")
    ROLLBACK = "rollback", _("rolled back to")


class ModelVersion(models.Model):
    """A registered model artifact, and whether it is the one workers serve.

    Exactly one row is serving at a time (:mod:`hashtags.versions` switches under
    ``select_for_update``; a conditional unique constraint backs it where the database supports
    one). ``version`` is the artifact's ``model.json`` version, the same string analyses and
    suggestions store in their ``model_version``, which is how per-version statistics are joined.
    """

    version = models.CharField(_("version"), max_length=100, unique=True)
    path = models.CharField(_("artifact directory"), max_length=500)
    encoder = models.CharField(_("encoder"), max_length=50, blank=True)
    created = models.DateTimeField(_("registered"), auto_now_add=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_serving = models.BooleanField(_("serving"), default=False)
    serving_reason = models.CharField(
        _("serving because"), max_length=10, choices=ServingReason.choices, blank=True,
        help_text=_("A promoted or rolled-back version serves regardless of MODEL_DIR; a configured "
                    "artifact is replaced when MODEL_DIR changes."),
    )
    promoted_at = models.DateTimeField(_("serving since"), null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("The version that served before this one started serving (what rollback returns to)."),
    )
    metrics = models.JSONField(
        _("metrics"), default=dict, blank=True,
        help_text=_('Offline evaluation: {"dev": model.json training.dev_metrics, ...extra evaluations}.'),
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        # Switching the serving model changes every new suggestion: its own permission, apart
        # from editing a version's notes (change_modelversion).
        permissions = [("promote_modelversion", "Can promote or roll back the serving model version")]
        constraints = [
            models.UniqueConstraint(
                fields=["is_serving"], condition=models.Q(is_serving=True), name="hashtags_modelversion_one_serving"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} (serving)" if self.is_serving else self.version

    @property
    def is_pinned(self) -> bool:
        """Serving because a person promoted it (or rolled back to it): MODEL_DIR no longer decides."""
        return self.is_serving and self.serving_reason in (ServingReason.PROMOTED, ServingReason.ROLLBACK)
