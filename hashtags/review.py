"""The admin's review queue per image: one card per pending image with its suggestions as chips,
decided in one submit ("accept the selected, reject the rest, next").

A changelist of suggestions shows the same photo once per suggestion; moderators judge a photo,
not a row, so this view groups by analysis. It reads with the ORM and writes only through
:mod:`hashtags.services`; a write needs :data:`~hashtags.watched.REVIEW_PERMISSION` and
:func:`~hashtags.watched.can_review` on the object, exactly as the admin's actions and the API."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, F, Prefetch, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from . import services
from .explain import caption_is_uncertain, hedged_caption
from .models import ImageAnalysis, Suggestion, SuggestionState
from .watched import REVIEW_PERMISSION, can_review, content_type_for, watched_models
from .tags import InvalidTag

#: Cards per page: enough to bulk-accept a screenful, few enough to judge each photo.
CARDS_PER_PAGE = 10
#: Chips selected when a card opens: the model's best few, so a good photo needs no toggle.
PRESELECTED = 3
#: The choices of "accept top N".
TOP_N_CHOICES = (1, 2, 3, 5, 10)


@dataclass
class Card:
    """One pending image with what the template needs."""

    analysis: ImageAnalysis
    image_url: str
    caption: str
    uncertain: bool
    chips: list[Suggestion] = field(default_factory=list)
    preselected: set[int] = field(default_factory=set)
    may_decide: bool = False


def pending_analyses(filters: dict[str, str]):
    """Analyses of watched models with a pending suggestion: oldest first (the queue's order)."""
    pending = Q(suggestions__state=SuggestionState.PENDING)
    qs = ImageAnalysis.objects.filter(pending, content_type__in=_watched_types().values())
    if filters.get("model") in _watched_types():
        qs = qs.filter(content_type=_watched_types()[filters["model"]])
    if filters.get("version"):
        qs = qs.filter(suggestions__model_version=filters["version"])
    if filters.get("tag"):
        qs = qs.filter(suggestions__hashtag__name=filters["tag"], suggestions__state=SuggestionState.PENDING)
    return qs.distinct().order_by("created", "pk")


def _watched_types() -> dict[str, object]:
    """``{"app.model": ContentType}`` of the watched models: the only ones the filter offers."""
    return {f"{m._meta.app_label}.{m._meta.model_name}": content_type_for(m) for m in watched_models()}


def filter_choices() -> dict[str, list]:
    """What the filters list: watched models, and the versions and tags that occur in pending suggestions."""
    pending = Suggestion.objects.filter(state=SuggestionState.PENDING)
    return {
        "models": [(key, ct.model_class()._meta.verbose_name_plural) for key, ct in _watched_types().items()],
        "versions": list(pending.exclude(model_version="").values_list("model_version", flat=True)
                         .distinct().order_by("model_version")),
        "tags": list(pending.values("hashtag__name").annotate(n=Count("pk")).order_by("-n", "hashtag__name")
                     .values_list("hashtag__name", flat=True)[:100]),
    }


def _image_url(analysis: ImageAnalysis) -> str:
    obj = analysis.content_object
    file = getattr(obj, analysis.field_name, None) if obj is not None else None
    try:
        return file.url if file else ""
    except ValueError:
        return ""


def make_card(analysis: ImageAnalysis, user) -> Card:
    chips = list(analysis.suggestions.all())
    caption = analysis.corrected_caption or analysis.caption
    uncertain = not analysis.corrected_caption and caption_is_uncertain(analysis.caption_confidence)
    obj = analysis.content_object
    return Card(
        analysis=analysis, image_url=_image_url(analysis),
        caption=hedged_caption(caption) if uncertain and caption else caption, uncertain=uncertain, chips=chips,
        preselected={s.pk for s in chips if s.state == SuggestionState.PENDING and s.rank is not None and s.rank <= PRESELECTED},
        may_decide=obj is not None and user.has_perm(REVIEW_PERMISSION) and can_review(user, obj),
    )


def _filters(request: HttpRequest) -> dict[str, str]:
    source = request.POST if request.method == "POST" else request.GET
    return {k: source.get(k, "").strip() for k in ("model", "version", "tag") if source.get(k, "").strip()}


def queue_view(model_admin, request: HttpRequest) -> HttpResponse:
    """GET: the cards; POST: decide one card (``decide``) or accept the top N of the selected (``bulk``)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        if not model_admin.has_change_permission(request):
            raise PermissionDenied
        if "bulk" in request.POST:
            _accept_top(request)
        else:
            _decide_card(request)
        filters = _filters(request)
        url = reverse("admin:hashtags_review_queue") + (f"?{urlencode(filters)}" if filters else "")
        return HttpResponseRedirect(url)
    return _render(model_admin, request)


def _render(model_admin, request: HttpRequest) -> TemplateResponse:
    filters = _filters(request)
    pending = Prefetch("suggestions", Suggestion.objects.select_related("hashtag", "replaced")
                       .order_by(F("rank").asc(nulls_last=True), "pk"))
    qs = pending_analyses(filters).prefetch_related(pending, "content_object").select_related("content_type")
    page = Paginator(qs, CARDS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Review queue"),
        "opts": model_admin.model._meta,
        "cards": [make_card(a, request.user) for a in page.object_list],
        "page": page,
        "filters": filters,
        "choices": filter_choices(),
        "counts": {
            "images": pending_analyses({}).count(),
            "suggestions": Suggestion.objects.filter(
                state=SuggestionState.PENDING, analysis__content_type__in=_watched_types().values()).count(),
        },
        "top_n_choices": TOP_N_CHOICES,
        "preselected": PRESELECTED,
        "may_change": model_admin.has_change_permission(request),
        "changelist_url": reverse("admin:hashtags_reviewqueueitem_changelist"),
    }
    return TemplateResponse(request, "admin/hashtags/review_queue.html", context)


def _reviewable(request: HttpRequest, analysis_id) -> ImageAnalysis:
    analysis = ImageAnalysis.objects.filter(pk=analysis_id).first() if str(analysis_id).isdigit() else None
    if analysis is None or analysis.content_object is None or not can_review(request.user, analysis.content_object):
        raise PermissionDenied
    return analysis


def _decide_card(request: HttpRequest) -> None:
    """Accept the selected chips, reject the other pending ones, add typed tags, store a corrected caption."""
    analysis = _reviewable(request, request.POST.get("analysis"))
    selected = set(request.POST.getlist("accept"))
    try:
        with transaction.atomic():
            for s in analysis.suggestions.filter(state=SuggestionState.PENDING):
                (services.accept if str(s.pk) in selected else services.reject)(s, request.user)
            for text in request.POST.get("add", "").replace(",", " ").split():
                services.add_tag(analysis.content_object, text, request.user)
            caption = request.POST.get("caption", "").strip()
            if caption and caption != (analysis.corrected_caption or analysis.caption):
                services.correct_caption(analysis, caption, request.user)
    except (InvalidTag, services.InvalidCaption) as exc:
        messages.error(request, f"Image {analysis.pk}: {exc}. Nothing was saved for it.")
        return
    messages.success(request, f"Image {analysis.pk}: accepted {len(selected)}, the rest rejected.")


def _accept_top(request: HttpRequest) -> None:
    """Bulk: on each selected card, accept the N best-ranked pending suggestions, reject the rest."""
    try:
        n = int(request.POST.get("top", ""))
    except ValueError:
        messages.error(request, "Choose how many tags to accept.")
        return
    ids = request.POST.getlist("select")
    if not ids:
        messages.error(request, "Select the images to accept the top tags of.")
        return
    with transaction.atomic():
        for analysis_id in ids:
            analysis = _reviewable(request, analysis_id)
            pending = analysis.suggestions.filter(state=SuggestionState.PENDING).order_by(
                F("rank").asc(nulls_last=True), "pk")
            for i, s in enumerate(pending):
                (services.accept if i < n else services.reject)(s, request.user)
    messages.success(request, f"Accepted the top {n} on {len(ids)} image(s), the rest rejected.")

