"""Admin: a review queue of pending suggestions, the tag vocabulary with merge, and analyses with
their errors and a re-run action. Every decision goes through :mod:`hashtags.services`.

Every action that changes something declares the permission it needs (``@admin.action(permissions=)``)
and Django hides and refuses it for everyone else, so a view-only staff account can look but not
act: deciding on suggestions, merging tags and re-running analyses need
``hashtags.change_suggestion`` (:data:`~hashtags.watched.REVIEW_PERMISSION`, the moderator's
permission the API and the demo ask for too), promoting and rolling back need
``hashtags.promote_modelversion``."""

from __future__ import annotations

import json
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from mlcore.artifact import ArtifactError, read_info

from . import review, services, versions
from .conf import hashtags_settings
from .dispatch import enqueue_analysis
from .explain import attention_overlay, hedged_caption
from .models import (
    AcceptedTag,
    Hashtag,
    HashtagOptOut,
    ImageAnalysis,
    ModelVersion,
    ReviewQueueItem,
    Suggestion,
    SuggestionState,
)
from .reconcile import health
from .watched import REVIEW_PERMISSION, can_promote, content_type_for, watched_fields, watched_models
from .tags import InvalidTag, canonical_name


def _image_url(analysis: ImageAnalysis | None) -> str | None:
    obj = analysis.content_object if analysis else None
    file = getattr(obj, analysis.field_name, None) if obj is not None else None
    if not file:
        return None
    try:
        return file.url
    except ValueError:
        return None


def _thumbnail(analysis: ImageAnalysis | None, size: int = 64) -> str:
    url = _image_url(analysis)
    if url is None:
        return "-"
    return format_html(
        '<img src="{}" alt="" style="width:{}px;height:{}px;object-fit:cover;border-radius:4px">', url, size, size
    )


def _caption(analysis: ImageAnalysis) -> str:
    """The generated caption, worded and styled as a guess when it is uncertain."""
    if not analysis.caption_is_uncertain:
        return analysis.caption
    return format_html(
        '<span class="hashtags-uncertain-caption" style="color:#b54708" title="{}">{}</span>',
        _("caption confidence {confidence:.2f}, below {minimum:.2f}: not shown as fact").format(
            confidence=analysis.caption_confidence, minimum=hashtags_settings.MIN_CAPTION_CONFIDENCE),
        hedged_caption(analysis.caption),
    )


def _why(suggestion: Suggestion) -> str:
    return ", ".join(suggestion.source_labels) or "-"


def _object_link(analysis: ImageAnalysis) -> str:
    obj = analysis.content_object
    if obj is None:
        return f"{analysis.content_type.model} {analysis.object_id} (deleted)"
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(obj)
    return format_html('<a href="{}">{}</a>', url, obj)


class TagForm(forms.Form):
    tag = forms.CharField(max_length=100, help_text='The tag to use instead, e.g. "#puppy".')


class SuggestionChangeForm(forms.ModelForm):
    """Decide in the change page: pick a state, or type a tag to replace the suggestion with."""

    new_tag = forms.CharField(
        required=False, max_length=100, label=_("Replace with tag"),
        help_text=_('Type a tag (e.g. "#puppy") to edit the suggestion; it is accepted.'),
    )

    class Meta:
        model = Suggestion
        fields = ["state"]

    def clean_new_tag(self):
        text = self.cleaned_data.get("new_tag", "").strip()
        if text:
            try:
                canonical_name(text)
            except InvalidTag as exc:
                raise forms.ValidationError(str(exc))
        return text


DECISIONS = {
    SuggestionState.ACCEPTED: services.accept,
    SuggestionState.REJECTED: services.reject,
    SuggestionState.PENDING: services.reset,
}


class WatchedModelFilter(admin.SimpleListFilter):
    """Only the watched models (``HASHTAGS["WATCH"]``), not every content type of the site."""

    title = _("model")
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return [(content_type_for(m).pk, m._meta.verbose_name_plural) for m in watched_models()]

    def queryset(self, request, queryset):
        return queryset.filter(analysis__content_type_id=self.value()) if self.value() else queryset


class SuggestionAdminBase(admin.ModelAdmin):
    form = SuggestionChangeForm
    list_display = [
        "thumbnail", "tag", "score_display", "why", "rank", "state", "caption", "post", "model_version", "decided_by",
    ]
    list_display_links = ["tag"]
    list_editable = ["state"]
    list_filter = ["state", "model_version", ("hashtag", admin.RelatedOnlyFieldListFilter), WatchedModelFilter]
    search_fields = ["hashtag__name", "analysis__caption"]
    list_select_related = ["hashtag", "replaced", "decided_by", "analysis__content_type"]
    list_per_page = 50
    actions = ["accept_selected", "reject_selected", "reset_selected", "edit_selected"]
    readonly_fields = [
        "thumbnail_large", "tag", "replaced", "score", "why", "rank", "caption", "post", "model_version", "decided_by",
        "decided_at",
    ]
    fieldsets = [
        (None, {"fields": ["thumbnail_large", "tag", "caption", "post", "score", "why", "rank", "model_version"]}),
        (_("Decision"), {"fields": ["state", "new_tag", "replaced", "decided_by", "decided_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("analysis__content_object")

    def has_add_permission(self, request):
        return False

    # The review queue is a proxy of Suggestion: both ask Suggestion's permissions, so one
    # moderator permission (REVIEW_PERMISSION) opens both, and Django's proxy permissions don't.
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("hashtags.view_suggestion") or self.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("hashtags.delete_suggestion")

    # Columns --------------------------------------------------------------------------------

    @admin.display(description=_("image"))
    def thumbnail(self, obj):
        return _thumbnail(obj.analysis)

    @admin.display(description=_("image"))
    def thumbnail_large(self, obj):
        return _thumbnail(obj.analysis, 240)

    @admin.display(description=_("tag"), ordering="hashtag__name")
    def tag(self, obj):
        if obj.replaced_id:
            return format_html("{} <small>(was {})</small>", obj.hashtag.tag, obj.replaced.tag)
        return obj.hashtag.tag

    @admin.display(description=_("score"), ordering="score")
    def score_display(self, obj):
        return "-" if obj.score is None else f"{obj.score:.2f}"

    @admin.display(description=_("why"))
    def why(self, obj):
        return _why(obj)

    @admin.display(description=_("caption"))
    def caption(self, obj):
        return _caption(obj.analysis)

    @admin.display(description=_("post"))
    def post(self, obj):
        return _object_link(obj.analysis)

    # Saving goes through the services ---------------------------------------------------------

    def get_changelist_form(self, request, **kwargs):
        form = super().get_changelist_form(request, **kwargs)
        choices = [(s.value, s.label) for s in DECISIONS]
        form.base_fields["state"] = forms.ChoiceField(choices=choices)
        return form

    def save_model(self, request, obj, form, change):
        new_tag = form.cleaned_data.get("new_tag") if "new_tag" in form.fields else None
        current = Suggestion.objects.get(pk=obj.pk)
        if new_tag:
            services.edit(current, new_tag, request.user)
        elif "state" in form.changed_data and obj.state in DECISIONS:
            DECISIONS[obj.state](current, request.user)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.base_fields["state"] = forms.ChoiceField(
            choices=[(s.value, s.label) for s in DECISIONS], required=False,
            help_text=_("Edited and added tags keep their state unless you change it."),
        )
        return form

    def save_related(self, request, form, formsets, change):
        pass

    # Bulk actions -------------------------------------------------------------------------------

    def _bulk(self, request, queryset, decide, verb):
        with transaction.atomic():
            for suggestion in queryset:
                decide(suggestion, request.user)
        self.message_user(request, f"{verb} {queryset.count()} suggestion(s).", messages.SUCCESS)

    @admin.action(description=_("Accept selected suggestions"), permissions=["change"])
    def accept_selected(self, request, queryset):
        self._bulk(request, queryset, services.accept, "Accepted")

    @admin.action(description=_("Reject selected suggestions"), permissions=["change"])
    def reject_selected(self, request, queryset):
        self._bulk(request, queryset, services.reject, "Rejected")

    @admin.action(description=_("Reset selected suggestions to pending"), permissions=["change"])
    def reset_selected(self, request, queryset):
        self._bulk(request, queryset, services.reset, "Reset")

    @admin.action(description=_("Replace selected suggestions with another tag…"), permissions=["change"])
    def edit_selected(self, request, queryset):
        form = TagForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            try:
                with transaction.atomic():
                    for suggestion in queryset:
                        services.edit(suggestion, form.cleaned_data["tag"], request.user)
            except InvalidTag as exc:
                form.add_error("tag", str(exc))
            else:
                self.message_user(request, f"Edited {queryset.count()} suggestion(s).", messages.SUCCESS)
                return None
        return TemplateResponse(
            request,
            "admin/hashtags/action_form.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Replace suggestions with a tag"),
                "intro": _("The selected suggestions are replaced by this tag and accepted."),
                "objects": queryset,
                "form": form,
                "action": "edit_selected",
                "opts": self.model._meta,
            },
        )


@admin.register(ReviewQueueItem)
class ReviewQueueAdmin(SuggestionAdminBase):
    """The per-suggestion list, kept for sorting and list edits; the per-image queue
    (:mod:`hashtags.review`) is at ``review/`` and linked from the app index and this list."""

    list_filter = ["model_version", ("hashtag", admin.RelatedOnlyFieldListFilter), WatchedModelFilter]
    change_list_template = "admin/hashtags/reviewqueueitem/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(partial(review.queue_view, self))
        return [path("review/", view, name="hashtags_review_queue"), *super().get_urls()]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(state=SuggestionState.PENDING).order_by("-analysis__created", "rank")


@admin.register(Suggestion)
class SuggestionAdmin(SuggestionAdminBase):
    pass


class MergeForm(forms.Form):
    target = forms.ModelChoiceField(queryset=Hashtag.objects.none(), required=False, widget=forms.RadioSelect,
                                    label=_("Merge into"))
    other = forms.CharField(required=False, max_length=100, label=_("or into this tag"),
                            help_text=_("Any tag, existing or new."))

    def __init__(self, *args, choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = choices if choices is not None else Hashtag.objects.none()

    def clean(self):
        data = super().clean()
        if not data.get("target") and not data.get("other", "").strip():
            raise forms.ValidationError(_("Choose the tag to keep or type one."))
        return data


@admin.register(Hashtag)
class HashtagAdmin(admin.ModelAdmin):
    list_display = ["tag", "slug", "usage_count", "merged_into", "created"]
    search_fields = ["name", "slug"]
    list_filter = [("merged_into", admin.EmptyFieldListFilter)]
    readonly_fields = ["usage_count", "merged_into", "created"]
    ordering = ["-usage_count", "name"]
    actions = ["merge_selected", "refresh_usage_counts"]

    @admin.display(description=_("tag"), ordering="name")
    def tag(self, obj):
        return obj.tag

    def save_model(self, request, obj, form, change):
        try:
            obj.name = canonical_name(obj.name)
        except InvalidTag:
            pass
        super().save_model(request, obj, form, change)

    def has_merge_permission(self, request) -> bool:
        """Merging rewrites suggestions and posts' tags, not just the tag: both permissions."""
        return self.has_change_permission(request) and request.user.has_perm(REVIEW_PERMISSION)

    @admin.action(description=_("Merge selected tags into one…"), permissions=["merge"])
    def merge_selected(self, request, queryset):
        form = MergeForm(request.POST if "apply" in request.POST else None, choices=queryset)
        if "apply" in request.POST and form.is_valid():
            try:
                target = form.cleaned_data["target"]
                if not target:
                    target, _created = Hashtag.objects.get_or_create_normalized(form.cleaned_data["other"])
                merged = 0
                with transaction.atomic():
                    for tag in queryset.exclude(pk=target.pk):
                        services.merge_hashtags(tag, target)
                        merged += 1
            except InvalidTag as exc:
                form.add_error("other", str(exc))
            else:
                self.message_user(request, f"Merged {merged} tag(s) into {target.tag}.", messages.SUCCESS)
                return None
        return TemplateResponse(
            request,
            "admin/hashtags/action_form.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Merge tags"),
                "intro": _("Suggestions, edits and accepted tags of the other tags move to the one you keep; "
                           "the others stay as aliases of it."),
                "objects": queryset,
                "form": form,
                "action": "merge_selected",
                "opts": self.model._meta,
            },
        )

    @admin.action(description=_("Recount usage"), permissions=["change"])
    def refresh_usage_counts(self, request, queryset):
        for tag in queryset:
            tag.refresh_usage_count()
        self.message_user(request, f"Recounted {queryset.count()} tag(s).", messages.SUCCESS)


class SuggestionInline(admin.TabularInline):
    model = Suggestion
    fk_name = "analysis"
    fields = ["hashtag", "score", "why", "rank", "state", "replaced", "decided_by", "decided_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description=_("why"))
    def why(self, obj):
        return _why(obj)


class CaptionCorrectionForm(forms.ModelForm):
    """The person's caption, validated by the same rules as the API's (:func:`services.correct_caption`):
    a bad caption is a form error, an emptied field withdraws the correction."""

    class Meta:
        model = ImageAnalysis
        fields = ["corrected_caption"]

    def clean_corrected_caption(self):
        text = self.cleaned_data.get("corrected_caption") or ""
        if not text.strip():
            return None
        try:
            _probe_caption(self.instance, text)
        except services.InvalidCaption as exc:
            raise forms.ValidationError(str(exc))
        return text


class _Probe(Exception):
    """Raised to roll back a trial run of a service."""


def _probe_caption(analysis: ImageAnalysis, text: str) -> None:
    """The service's own validation, without saving: its write runs in a savepoint that is rolled back."""
    try:
        with transaction.atomic():
            services.correct_caption(analysis, text)
            raise _Probe
    except _Probe:
        pass


@admin.register(ImageAnalysis)
class ImageAnalysisAdmin(admin.ModelAdmin):
    list_display = [
        "id", "thumbnail", "post", "field_name", "status", "short_error", "caption_display", "confidence",
        "model_version", "duration_s", "created",
    ]
    list_filter = ["status", "model_version", "content_type"]
    search_fields = ["object_id", "caption", "error", "image_sha256"]
    list_select_related = ["content_type"]
    actions = ["rerun_selected"]
    inlines = [SuggestionInline]
    fields = [
        "thumbnail_large", "post", "field_name", "image_name", "image_sha256", "model_version", "status", "error",
        "caption_display", "attention_display", "caption_confidence", "captions_display", "corrected_caption",
        "timings_display", "attempts",
        "created", "started", "finished",
    ]
    readonly_fields = [f for f in fields if f != "corrected_caption"]
    change_list_template = "admin/hashtags/imageanalysis/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("content_object")

    def changelist_view(self, request, extra_context=None):
        """Above the list: how many analyses are pending, stuck and failed (:func:`hashtags.reconcile.health`)."""
        return super().changelist_view(request, {**(extra_context or {}), "analysis_health": health()})

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("image"))
    def thumbnail(self, obj):
        return _thumbnail(obj)

    @admin.display(description=_("image"))
    def thumbnail_large(self, obj):
        return _thumbnail(obj, 240)

    @admin.display(description=_("post"))
    def post(self, obj):
        return _object_link(obj)

    @admin.display(description=_("error"))
    def short_error(self, obj):
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error

    @admin.display(description=_("caption"), ordering="caption")
    def caption_display(self, obj):
        return _caption(obj)

    @admin.display(description=_("where the model looked"))
    def attention_display(self, obj):
        """The caption's attention over the photo (models with attention), for the caption as shown."""
        overlay, url = attention_overlay(obj), _image_url(obj)
        if overlay is None or url is None:
            return "-"
        return render_to_string("hashtags/attention_overlay.html", {
            "overlay": overlay, "image_url": url, "overlay_id": f"attention-{obj.pk}",
            "overlay_data_id": f"attention-data-{obj.pk}"})

    @admin.display(description=_("caption confidence"), ordering="caption_confidence")
    def confidence(self, obj):
        return "-" if obj.caption_confidence is None else f"{obj.caption_confidence:.2f}"

    @admin.display(description=_("seconds"))
    def duration_s(self, obj):
        return "-" if obj.duration is None else f"{obj.duration:.2f}"

    @admin.display(description=_("captions"))
    def captions_display(self, obj):
        return format_html("<pre>{}</pre>", "\n".join(obj.captions or []))

    @admin.display(description=_("timings"))
    def timings_display(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.timings, indent=2, sort_keys=True))

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = CaptionCorrectionForm
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        """Only the caption is editable, and it is written by :func:`services.correct_caption`."""
        if "corrected_caption" in form.changed_data:
            services.correct_caption(obj, form.cleaned_data["corrected_caption"], request.user)

    def has_rerun_permission(self, request) -> bool:
        """Re-running is a moderator's act (the API's analyze/ asks the same permission)."""
        return request.user.has_perm(REVIEW_PERMISSION)

    @admin.action(description=_("Re-run the analysis of the selected images"), permissions=["rerun"])
    def rerun_selected(self, request, queryset):
        jobs, opted_out = set(), 0
        for analysis in queryset:
            model = analysis.content_type.model_class()
            if model is None or analysis.field_name not in watched_fields(model):
                continue
            obj = analysis.content_object
            if obj is not None and HashtagOptOut.covers(obj):
                opted_out += 1
                continue
            jobs.add((model._meta.app_label, model._meta.model_name, analysis.object_id, analysis.field_name))
        for job in jobs:
            transaction.on_commit(lambda job=job: enqueue_analysis(*job, force=True))
        self.message_user(request, f"Queued {len(jobs)} analysis/analyses.", messages.SUCCESS)
        if opted_out:
            self.message_user(request, f"Skipped {opted_out}: the owner opted out of automatic hashtags.",
                              messages.WARNING)


@admin.register(AcceptedTag)
class AcceptedTagAdmin(admin.ModelAdmin):
    list_display = ["hashtag", "content_type", "object_id", "source", "added_by", "created"]
    list_filter = ["source", "content_type"]
    search_fields = ["hashtag__name", "object_id"]
    raw_id_fields = ["hashtag", "added_by"]
    list_select_related = ["hashtag", "content_type", "added_by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        services.remove_tag(obj.content_object, obj.hashtag, request.user) if obj.content_object else obj.delete()

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(HashtagOptOut)
class HashtagOptOutAdmin(admin.ModelAdmin):
    list_display = ["user", "created"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]


class ModelVersionAddForm(forms.ModelForm):
    """Register an artifact directory: everything else is read from its model.json."""

    class Meta:
        model = ModelVersion
        fields = ["path", "notes"]
        help_texts = {"path": _("Absolute path of a model artifact directory (with model.json), readable by the workers.")}

    def clean_path(self):
        path = self.cleaned_data["path"].strip()
        try:
            info = read_info(path)
        except ArtifactError as exc:
            raise forms.ValidationError(str(exc))
        if ModelVersion.objects.filter(version=info.version).exists():
            raise forms.ValidationError(f"version {info.version} is already registered")
        return path


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """The model registry with how people received each version's suggestions (definitions in
    :mod:`hashtags.versions`); promote and roll back with the actions."""

    list_display = [
        "version", "is_serving", "serving_reason", "acceptance", "decided", "edits_per_post_display",
        "mean_decision_display", "encoder", "created",
    ]
    list_display_links = ["version"]
    list_filter = ["is_serving", "encoder"]
    search_fields = ["version", "path", "notes"]
    actions = ["promote_selected", "roll_back"]
    fields = [
        "version", "path", "encoder", "is_serving", "serving_reason", "promoted_at", "promoted_by", "previous",
        "statistics", "metrics_display", "notes", "registered_by", "created",
    ]
    readonly_fields = [f for f in fields if f != "notes"]

    def get_queryset(self, request):
        return versions.with_stats(super().get_queryset(request).select_related("previous", "promoted_by"))

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ModelVersionAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["path", "notes"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        registered = versions.register(form.cleaned_data["path"], form.cleaned_data.get("notes", ""), user=request.user)
        obj.pk = registered.pk  # so the admin's redirect and log entry point at the new row

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_serving)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset.filter(is_serving=False))

    # Columns --------------------------------------------------------------------------------------

    @admin.display(description=_("acceptance rate"), ordering="acceptance_rate")
    def acceptance(self, obj):
        return versions.format_rate(obj.acceptance_rate)

    @admin.display(description=_("decided"), ordering="decided")
    def decided(self, obj):
        return obj.decided

    @admin.display(description=_("edits / post"), ordering="edits_per_post")
    def edits_per_post_display(self, obj):
        return "-" if obj.edits_per_post is None else f"{obj.edits_per_post:.2f}"

    @admin.display(description=_("time to decision"), ordering="mean_decision")
    def mean_decision_display(self, obj):
        return versions.format_duration(versions.stats_of(obj)["mean_decision_seconds"])

    @admin.display(description=_("review statistics"))
    def statistics(self, obj):
        stats = versions.stats_of(obj)
        return format_html(
            "{} decided by people ({} accepted, {} rejected, {} edited) on {} posts; acceptance rate {}; "
            "{} edits per post; mean time to decision {}",
            stats["decided"], stats["accepted"], stats["rejected"], stats["edited"], stats["posts"],
            versions.format_rate(stats["acceptance_rate"]), "-" if stats["edits_per_post"] is None else f"{stats['edits_per_post']:.2f}",
            versions.format_duration(stats["mean_decision_seconds"]),
        )

    @admin.display(description=_("metrics"))
    def metrics_display(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.metrics, indent=2, sort_keys=True))

    # Actions ----------------------------------------------------------------------------------------

    def has_promote_permission(self, request) -> bool:
        return can_promote(request.user)

    @admin.action(description=_("Promote the selected version (serve it now)"), permissions=["promote"])
    def promote_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        try:
            promoted = versions.promote(queryset.get(), request.user)
        except versions.VersionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{promoted.version} now serves; workers switch at their next task.", messages.SUCCESS)

    def changelist_view(self, request, extra_context=None):
        # "Roll back" needs no selection: it always acts on the serving version.
        if request.method == "POST" and request.POST.get("action") == "roll_back" \
                and not request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME):
            post = request.POST.copy()
            post.setlist(admin.helpers.ACTION_CHECKBOX_NAME,
                         [str(pk) for pk in ModelVersion.objects.filter(is_serving=True).values_list("pk", flat=True)])
            request.POST = post
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Roll back to the previously serving version"), permissions=["promote"])
    def roll_back(self, request, queryset):
        try:
            restored = versions.rollback(request.user)
        except versions.VersionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Rolled back: {restored.version} serves again.", messages.SUCCESS)
