"""The demo pages. Every tag decision goes through ``hashtags.services`` — the same functions the
admin and the REST API call — so the page, the admin and the API always agree."""

from __future__ import annotations


from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from hashtags import query, services
from hashtags.conf import hashtags_settings
from hashtags.dispatch import enqueue_analysis
from hashtags.explain import UNCERTAIN_PREFIX, attention_overlay, hedged_caption
from hashtags.models import AcceptedTag, Hashtag, HashtagOptOut, ImageAnalysis, Suggestion
from hashtags.watched import can_review, content_type_for
from hashtags.tags import InvalidTag, canonical_name

from .forms import PostForm, TagForm
from .models import Post

IMAGE_FIELD = "image"
POSTS_PER_PAGE = 24
#: Statuses during which the detail page polls for a change.
WAITING = ("queued", "pending", "running")


# Helpers ------------------------------------------------------------------------------------------

def trending_tags(days: int | None = None, limit: int = 12) -> list[dict]:
    """The sidebar's tags (the API's ``GET /api/hashtags/trending/`` answer)."""
    return query.trending(days or hashtags_settings.TRENDING_DAYS, limit)


def render_page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    context.setdefault("trending", trending_tags())
    return render(request, template, context, status=status)


def analysis_status(post: Post, analysis: ImageAnalysis | None) -> str:
    """pending / running / done / failed, or ``queued`` (no record yet) / ``off`` (not analysed)."""
    if analysis is not None:
        return analysis.status
    if not post.image or HashtagOptOut.is_opted_out(post.owner_id) or not hashtags_settings.AUTO_TAG:
        return "off"
    return "queued"


def statuses_for(posts: list[Post]) -> dict[int, str]:
    """Newest analysis status per post, in one query (for the grid badges)."""
    if not posts:
        return {}
    rows = (
        ImageAnalysis.objects.filter(
            content_type=content_type_for(Post),
            object_id__in=[str(p.pk) for p in posts],
            field_name=IMAGE_FIELD,
        )
        .order_by("object_id", "-created", "-pk")
        .values_list("object_id", "status")
    )
    found: dict[int, str] = {}
    for object_id, status in rows:
        found.setdefault(int(object_id), status)
    return found


def shown_caption(analysis: ImageAnalysis | None) -> tuple[str, bool]:
    """The caption the page shows and whether it is a guess: a person's correction is fact, the
    generated caption is a guess when its confidence is low."""
    if analysis is None:
        return "", False
    if analysis.corrected_caption:
        return analysis.corrected_caption, False
    return analysis.caption, analysis.caption_is_uncertain


def photo_alt(post: Post, caption: str, uncertain: bool) -> str:
    """Alt text of the photo: who posted it, and the caption — hedged when it is a guess, so a
    screen reader never states an unsure caption as what the photo shows."""
    alt = f"Photo by {post.owner.get_username()}"
    if not caption:
        return alt
    return f"{alt}. {hedged_caption(caption)}" if uncertain else f"{alt}: {caption}"


def can_delete(user, post: Post) -> bool:
    """The owner, or someone holding ``posts.delete_post`` (staff status alone is not enough)."""
    return user.is_authenticated and (post.owner_id == user.pk or user.has_perm("posts.delete_post"))


def reviewable_post(request: HttpRequest, pk: int) -> Post:
    """The post, if the user may review its tags (owner or moderator, as in the API); 403 otherwise."""
    post = get_object_or_404(Post, pk=pk)
    if not can_review(request.user, post):
        raise PermissionDenied("Only the owner of this post or a moderator can change its hashtags.")
    return post


def back_to(post: Post, anchor: str = "tags") -> HttpResponse:
    return redirect(f"{post.get_absolute_url()}#{anchor}")


def paginate(request: HttpRequest, queryset) -> tuple:
    page = Paginator(queryset, POSTS_PER_PAGE).get_page(request.GET.get("page"))
    posts = list(page.object_list)
    # Analysis status is the reviewers' business, as in the API: no badge on others' posts.
    statuses = statuses_for([p for p in posts if can_review(request.user, p)])
    for post in posts:
        post.analysis_status = statuses.get(post.pk, "")
    return page, posts


# Pages --------------------------------------------------------------------------------------------

@require_GET
def home(request: HttpRequest) -> HttpResponse:
    page, posts = paginate(request, Post.objects.select_related("owner").with_hashtags())
    return render_page(request, "posts/home.html", {"page": page, "posts": posts})


@require_GET
def tag_posts(request: HttpRequest, tag: str) -> HttpResponse:
    try:
        name = canonical_name(tag)
    except InvalidTag:
        raise Http404("not a hashtag")
    hashtag = Hashtag.objects.filter(name__iexact=name).first()
    if hashtag is not None and hashtag.resolve().name != tag:
        # "#Dogs", or a tag merged into another one: go to the tag in use.
        return redirect("posts:tag", hashtag.resolve().name)
    page, posts = paginate(request, Post.objects.tagged(name).select_related("owner").with_hashtags())
    return render_page(request, "posts/tag.html", {"tag": name, "hashtag": hashtag, "page": page, "posts": posts})


@login_required
def create_post(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PostForm(request.POST, request.FILES)
        if form.is_valid():
            post = form.save(commit=False)
            post.owner = request.user
            post.save()
            form.save_m2m()
            messages.success(request, "Photo uploaded. Hashtag suggestions appear here in a few seconds.")
            return redirect(post)
    else:
        form = PostForm()
    opted_out = HashtagOptOut.is_opted_out(request.user.pk)
    return render_page(request, "posts/create.html", {"form": form, "opted_out": opted_out})


@require_GET
def post_detail(request: HttpRequest, pk: int) -> HttpResponse:
    post = get_object_or_404(Post.objects.select_related("owner"), pk=pk)
    reviewer = can_review(request.user, post)
    # Captions, beam captions, status and errors are shown to whoever the API shows them to (the
    # owner and moderators); everyone else sees the photo and its accepted tags.
    analysis = query.current_analysis(post, IMAGE_FIELD) if reviewer else None
    status = analysis_status(post, analysis) if reviewer else ""
    suggestions = []
    if analysis is not None and reviewer:
        suggestions = list(
            analysis.suggestions.select_related("hashtag", "replaced", "decided_by").order_by(
                F("rank").asc(nulls_last=True), "pk"
            )
        )
    accepted = (
        AcceptedTag.objects.for_object(post).select_related("hashtag", "added_by").order_by("hashtag__name")
    )
    caption, caption_uncertain = shown_caption(analysis)
    context = {
        "post": post,
        "analysis": analysis,
        "status": status,
        "waiting": status in WAITING,
        "caption": caption,
        "caption_uncertain": caption_uncertain,
        "attention": attention_overlay(analysis) if analysis is not None else None,
        "uncertain_prefix": UNCERTAIN_PREFIX,
        "photo_alt": photo_alt(post, caption, caption_uncertain),
        "suggestions": suggestions,
        "accepted": accepted,
        "can_review": reviewer,
        "is_owner": request.user.is_authenticated and post.owner_id == request.user.pk,
        "can_delete": can_delete(request.user, post),
        "tag_form": TagForm(),
        "trending": [],  # the detail page has no sidebar
    }
    return render_page(request, "posts/detail.html", context)


@require_GET
def post_status(request: HttpRequest, pk: int) -> JsonResponse:
    """What the detail page polls while an analysis is queued or running (owner and moderators)."""
    post = get_object_or_404(Post, pk=pk)
    if not can_review(request.user, post):
        return JsonResponse({"error": "Only the owner of this post or a moderator can see its analysis."},
                            status=403)
    analysis = query.current_analysis(post, IMAGE_FIELD)
    return JsonResponse(
        {
            "status": analysis_status(post, analysis),
            "error": analysis.error if analysis else "",
            "suggestions": analysis.suggestions.count() if analysis else 0,
        }
    )


# Actions (POST only) ------------------------------------------------------------------------------

DECISIONS = {"accept": services.accept, "reject": services.reject, "reset": services.reset}


@login_required
@require_POST
def decide(request: HttpRequest, pk: int, suggestion_id: int, action: str) -> HttpResponse:
    """Accept / reject / reset / edit one suggestion of the post."""
    post = reviewable_post(request, pk)
    suggestion = get_object_or_404(
        Suggestion,
        pk=suggestion_id,
        analysis__content_type=content_type_for(post),
        analysis__object_id=str(post.pk),
    )
    if action in DECISIONS:
        suggestion = DECISIONS[action](suggestion, request.user)
    elif action == "edit":
        form = TagForm(request.POST)
        if not form.is_valid():
            messages.error(request, f"Edit of {suggestion.hashtag.tag}: {' '.join(form.errors['tag'])}")
            return back_to(post, "suggestions")
        try:
            suggestion = services.edit(suggestion, form.cleaned_data["tag"], request.user)
        except InvalidTag as exc:
            messages.error(request, str(exc))
            return back_to(post, "suggestions")
        if suggestion.replaced_id:
            messages.success(request, f"{suggestion.replaced.tag} → {suggestion.hashtag.tag}")
    else:
        raise Http404("unknown action")
    return back_to(post, "suggestions")


@login_required
@require_POST
def add_tag(request: HttpRequest, pk: int) -> HttpResponse:
    post = reviewable_post(request, pk)
    form = TagForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["tag"]))
        return back_to(post)
    try:
        accepted, _ = services.add_tag(post, form.cleaned_data["tag"], request.user)
    except InvalidTag as exc:
        messages.error(request, str(exc))
        return back_to(post)
    messages.success(request, f"Added {accepted.hashtag.tag}.")
    return back_to(post)


@login_required
@require_POST
def correct_caption(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner or a moderator corrects the caption of the current analysis (gold data for the next model)."""
    post = reviewable_post(request, pk)
    analysis = query.current_analysis(post, IMAGE_FIELD)
    if analysis is None:
        raise Http404("no analysis to correct")
    try:
        services.correct_caption(analysis, request.POST.get("caption", ""), request.user)
    except services.InvalidCaption as exc:
        messages.error(request, f"Caption not saved: {exc}.")
        return back_to(post, "analysis")
    messages.success(request, "Caption corrected.")
    return back_to(post, "analysis")


@login_required
@require_POST
def remove_tag(request: HttpRequest, pk: int, tag: str) -> HttpResponse:
    post = reviewable_post(request, pk)
    try:
        hashtag = Hashtag.objects.get_normalized(tag)
    except (InvalidTag, Hashtag.DoesNotExist):
        raise Http404("no such tag")
    if services.remove_tag(post, hashtag, request.user):
        messages.success(request, f"Removed {hashtag.tag}.")
    return back_to(post)


@login_required
@require_POST
def reanalyze_post(request: HttpRequest, pk: int) -> HttpResponse:
    post = reviewable_post(request, pk)
    if HashtagOptOut.covers(post):
        messages.error(request, "The owner opted out of automatic hashtags: the photo is not analysed.")
    elif post.image:
        meta = Post._meta
        enqueue_analysis(meta.app_label, meta.model_name, post.pk, IMAGE_FIELD, force=True)
        messages.info(request, "Analysis queued again.")
    return back_to(post, "analysis")


@login_required
@require_POST
def delete_post(request: HttpRequest, pk: int) -> HttpResponse:
    post = get_object_or_404(Post, pk=pk)
    if not can_delete(request.user, post):
        raise PermissionDenied("Only the owner can delete this post.")
    image = post.image
    post.delete()
    if image:
        image.delete(save=False)  # the person deleted their photo: do not keep the file
    messages.success(request, "Post deleted.")
    return redirect("posts:home")


@login_required
@require_POST
def opt_out(request: HttpRequest) -> HttpResponse:
    """Toggle the user's opt-out: their new photos are then never analysed."""
    if request.POST.get("opt_out") == "1":
        HashtagOptOut.objects.get_or_create(user=request.user)
        messages.info(request, "Your photos will not be analysed. You can still add tags yourself.")
    else:
        HashtagOptOut.objects.filter(user=request.user).delete()
        messages.info(request, "Your new photos will get hashtag suggestions again.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = reverse("posts:create")
    return redirect(target)
