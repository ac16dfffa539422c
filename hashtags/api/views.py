"""The hashtags REST API. See :mod:`hashtags.api.urls` for the URL map."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from mlcore.artifact import ArtifactError
from mlcore.images import ImageError

from .. import services, versions
from ..conf import hashtags_settings
from ..dispatch import enqueue_analysis
from ..explain import caption_is_uncertain
from ..inference import suggest
from ..models import AcceptedTag, Hashtag, HashtagOptOut, ModelVersion, Suggestion
from ..query import current_analyses, suggestions_of, tags_for_many, trending
from ..registry import content_type_for, content_type_key, get_watched_model, watched_fields, watched_models
from ..tags import InvalidTag, canonical_name
from .permissions import CanPromoteModel, CanReviewObject, read_permissions, tag_image_permissions
from .throttling import API_THROTTLES, TagImageThrottle
from .serializers import (
    AcceptedTagSerializer,
    AnalysisSerializer,
    ErrorSerializer,
    HashtagSerializer,
    ModelVersionSerializer,
    OptOutSerializer,
    PostDetailSerializer,
    PostRefSerializer,
    SuggestionSerializer,
    TagImageRequestSerializer,
    TagImageResponseSerializer,
    TagInputSerializer,
    TrendingTagSerializer,
)

logger = logging.getLogger(__name__)


def error(message: str, code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"error": message}, status=code)


def _tag_text(request) -> str:
    serializer = TagInputSerializer(data=request.data)
    if not serializer.is_valid():
        raise ValidationError({"error": 'send {"tag": "#yourtag"}'})
    return serializer.validated_data["tag"]


def post_ref(obj, request, tags: list[str] | None = None) -> dict:
    """The API's description of a watched object."""
    meta = obj._meta
    image_url = None
    fields = watched_fields(type(obj))
    if fields:
        file = getattr(obj, fields[0])
        if file:
            try:
                image_url = request.build_absolute_uri(file.url)
            except ValueError:
                image_url = None
    if tags is None:
        tags = [a.hashtag.tag for a in AcceptedTag.objects.for_object(obj).select_related("hashtag").order_by("hashtag__name")]

    return {
        "content_type": content_type_key(obj),
        "app_label": meta.app_label,
        "model": meta.model_name,
        "pk": str(obj.pk),
        "tags": tags,
        "image_url": image_url,
        "url": request.build_absolute_uri(
            reverse("hashtags-api:post-detail", args=[content_type_key(obj), obj.pk])
        ),
    }


class Throttled:
    """Every hashtags API view counts against ``HASHTAGS["API_THROTTLE"]`` (:mod:`.throttling`)."""

    throttle_classes = API_THROTTLES


# Tag an image now ---------------------------------------------------------------------------------

class TagImageView(APIView):
    """Caption an uploaded image and suggest hashtags, synchronously; nothing is stored."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [TagImageThrottle, *API_THROTTLES]
    throttle_scope = "hashtags_tag_image"

    def get_permissions(self):
        return tag_image_permissions()

    @extend_schema(
        request={"multipart/form-data": TagImageRequestSerializer},
        responses={
            200: TagImageResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Not an image, corrupt or missing."),
            413: OpenApiResponse(ErrorSerializer, description="File larger than MAX_UPLOAD_BYTES."),
            503: OpenApiResponse(ErrorSerializer, description="The model could not be loaded."),
        },
    )
    def post(self, request):


        limit = hashtags_settings.MAX_UPLOAD_BYTES
        if request_too_large(request, limit + MULTIPART_OVERHEAD):  # before the body is read at all
            return error(
                f"request is too large: {int(request.META['CONTENT_LENGTH']) / 1048576:.1f} MB "
                f"(image limit {limit / 1048576:.1f} MB)",
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        upload = request.FILES.get("image")
        if upload is None:
            return error("send the image as the multipart form field 'image'")
        if upload.size > limit:
            return error(
                f"image is too large: {upload.size / 1048576:.1f} MB (limit {limit / 1048576:.1f} MB)",
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        data = upload.read()
        if not data:
            return error("empty file")
        try:
            result = suggest(data, max_pixels=hashtags_settings.TAG_IMAGE_MAX_PIXELS)
        except ArtifactError:
            logger.exception("hashtags: model unavailable")  # the details (server paths) go to the log only
            return error("the hashtag model is unavailable; try again later", status.HTTP_503_SERVICE_UNAVAILABLE)
        if isinstance(result, ImageError):
            return error(str(result))
        return Response(tag_image_payload(result))


MULTIPART_OVERHEAD = 64 * 1024  # boundaries and headers around the image in a multipart body


def request_too_large(request, limit: int) -> bool:
    """The declared body size (``Content-Length``) exceeds ``limit``; no body is read to know."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > limit
    except ValueError:
        return False


def tag_image_payload(result) -> dict:
    """The tag-image answer (:class:`TagImageResponseSerializer`) for an mlcore Suggestion; a
    function of the result alone, so that any result's answer can be checked, not just the test model's."""
    return {
        "caption": result.caption,
        "caption_confidence": result.caption_confidence,
        "caption_uncertain": caption_is_uncertain(result.caption_confidence),
        "captions": list(result.captions),
        "hashtags": [
            {"tag": h.tag, "score": round(float(h.score), 4), "sources": list(h.sources)} for h in result.hashtags
        ],
        "model_version": result.model_version,
        "timings": result.timings,
    }


# One post: analyses, suggestions, tags ---------------------------------------------------------

class PostObjectMixin:
    """Resolves ``<content_type>/<pk>`` to a watched object the user may review."""

    permission_classes = [IsAuthenticated, CanReviewObject]

    def get_post(self):
        model = get_watched_model(self.kwargs["content_type"])
        if model is None:
            raise NotFound(f"{self.kwargs['content_type']!r} is not a watched model")
        try:
            obj = get_object_or_404(model._default_manager.all(), pk=self.kwargs["pk"])
        except (ValueError, DjangoValidationError):
            raise NotFound("no such post")
        self.check_object_permissions(self.request, obj)
        return obj


class PostDetailView(PostObjectMixin, Throttled, APIView):
    """A post's analysis status (with the error of a failed one), suggestions and accepted tags."""

    @extend_schema(responses={200: PostDetailSerializer})
    def get(self, request, content_type, pk):
        obj = self.get_post()
        analyses = current_analyses(obj)
        tags = AcceptedTag.objects.for_object(obj).select_related("hashtag").order_by("hashtag__name")
        return Response(
            {
                "post": post_ref(obj, request, [t.hashtag.tag for t in tags]),
                "analyses": AnalysisSerializer(analyses, many=True).data,
                "suggestions": SuggestionSerializer(suggestions_of(analyses), many=True).data,
                "tags": AcceptedTagSerializer(tags, many=True).data,
            }
        )


class PostSuggestionsView(PostObjectMixin, Throttled, APIView):
    """The suggestions of a post's current image(s)."""

    @extend_schema(responses={200: SuggestionSerializer(many=True)})
    def get(self, request, content_type, pk):
        obj = self.get_post()
        return Response(SuggestionSerializer(suggestions_of(current_analyses(obj)), many=True).data)


class PostTagsView(PostObjectMixin, Throttled, APIView):
    """List a post's accepted tags, or add one of your own."""

    @extend_schema(responses={200: AcceptedTagSerializer(many=True)})
    def get(self, request, content_type, pk):
        obj = self.get_post()
        tags = AcceptedTag.objects.for_object(obj).select_related("hashtag").order_by("hashtag__name")
        return Response(AcceptedTagSerializer(tags, many=True).data)

    @extend_schema(
        request=TagInputSerializer,
        responses={201: AcceptedTagSerializer, 400: ErrorSerializer},
    )
    def post(self, request, content_type, pk):
        obj = self.get_post()
        try:
            accepted, _ = services.add_tag(obj, _tag_text(request), request.user)
        except InvalidTag as exc:
            return error(str(exc))
        return Response(AcceptedTagSerializer(accepted).data, status=status.HTTP_201_CREATED)


class PostTagDetailView(PostObjectMixin, Throttled, APIView):
    """Remove an accepted tag from a post (its suggestions become rejected)."""

    @extend_schema(responses={204: None, 404: ErrorSerializer})
    def delete(self, request, content_type, pk, tag):
        obj = self.get_post()
        try:
            hashtag = Hashtag.objects.get_normalized(tag)
        except (InvalidTag, Hashtag.DoesNotExist):
            return error(f"the post has no tag {tag!r}", status.HTTP_404_NOT_FOUND)
        if not services.remove_tag(obj, hashtag, request.user):
            return error(f"the post has no tag {hashtag.tag}", status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PostAnalyzeView(PostObjectMixin, Throttled, APIView):
    """Queue a fresh analysis of the post's image(s), even if one exists; never for an owner who
    opted out (409)."""

    @extend_schema(request=None, responses={202: None, 409: ErrorSerializer})
    def post(self, request, content_type, pk):
        obj = self.get_post()
        if HashtagOptOut.covers(obj):
            return error("the owner of this post opted out of automatic hashtags: nothing queued",
                         status.HTTP_409_CONFLICT)
        meta = obj._meta
        for field in watched_fields(type(obj)):
            if getattr(obj, field):
                enqueue_analysis(meta.app_label, meta.model_name, obj.pk, field, force=True)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)


# Suggestions --------------------------------------------------------------------------------------

class SuggestionMixin:
    permission_classes = [IsAuthenticated]

    def get_suggestion(self, pk) -> Suggestion:
        suggestion = get_object_or_404(
            Suggestion.objects.select_related("analysis__content_type", "hashtag", "replaced"), pk=pk
        )
        obj = suggestion.analysis.content_object
        if obj is None:
            raise NotFound("the post of this suggestion no longer exists")
        CanReviewObject_ = CanReviewObject()
        if not CanReviewObject_.has_object_permission(self.request, self, obj):
            self.permission_denied(self.request, message=CanReviewObject.message)
        return suggestion

    def respond(self, suggestion) -> Response:
        suggestion.refresh_from_db()
        return Response(SuggestionSerializer(suggestion).data)


class SuggestionDetailView(SuggestionMixin, Throttled, APIView):
    @extend_schema(responses={200: SuggestionSerializer})
    def get(self, request, pk):
        return Response(SuggestionSerializer(self.get_suggestion(pk)).data)


class SuggestionAcceptView(SuggestionMixin, Throttled, APIView):
    """Accept: the tag becomes one of the post's tags."""

    @extend_schema(request=None, responses={200: SuggestionSerializer})
    def post(self, request, pk):
        return self.respond(services.accept(self.get_suggestion(pk), request.user))


class SuggestionRejectView(SuggestionMixin, Throttled, APIView):
    """Reject (also un-accepts: the tag leaves the post)."""

    @extend_schema(request=None, responses={200: SuggestionSerializer})
    def post(self, request, pk):
        return self.respond(services.reject(self.get_suggestion(pk), request.user))


class SuggestionResetView(SuggestionMixin, Throttled, APIView):
    """Undo a decision: back to pending."""

    @extend_schema(request=None, responses={200: SuggestionSerializer})
    def post(self, request, pk):
        return self.respond(services.reset(self.get_suggestion(pk), request.user))


class SuggestionEditView(SuggestionMixin, Throttled, APIView):
    """Replace the suggested tag with yours (``{"tag": "#puppy"}``); it is accepted."""

    @extend_schema(request=TagInputSerializer, responses={200: SuggestionSerializer, 400: ErrorSerializer})
    def post(self, request, pk):
        suggestion = self.get_suggestion(pk)
        try:
            return self.respond(services.edit(suggestion, _tag_text(request), request.user))
        except InvalidTag as exc:
            return error(str(exc))


# Public reads -------------------------------------------------------------------------------------

class Pagination(PageNumberPagination):
    """The project's page size (``REST_FRAMEWORK["PAGE_SIZE"]``), ``?page_size=`` up to 100."""

    page_size = api_settings.PAGE_SIZE or 20
    page_size_query_param = "page_size"
    max_page_size = 100


class PostsByTagView(Throttled, generics.GenericAPIView):
    """Posts carrying an accepted tag, newest tagging first: ``?tag=dog`` (``#`` optional)."""

    serializer_class = PostRefSerializer
    pagination_class = Pagination

    def get_permissions(self):
        return read_permissions()

    @extend_schema(
        parameters=[
            OpenApiParameter("tag", OpenApiTypes.STR, required=True, description='"dog" or "#Dog"'),
            OpenApiParameter("model", OpenApiTypes.STR, description='Only this watched model, e.g. "posts.post"'),
        ],
        responses={200: PostRefSerializer(many=True), 400: ErrorSerializer},
    )
    def get(self, request):
        text = request.query_params.get("tag", "")
        if not text.strip():
            return error("the query parameter 'tag' is required, e.g. ?tag=dog")
        try:
            name = canonical_name(text)
        except InvalidTag as exc:
            return error(str(exc))
        models_ = list(watched_models())
        only = request.query_params.get("model")
        if only:
            model = get_watched_model(only)
            if model is None:
                return error(f"{only!r} is not a watched model")
            models_ = [model]
        hashtags = [h.resolve().pk for h in Hashtag.objects.filter(name__iexact=name)]
        rows = (
            AcceptedTag.objects.filter(hashtag__in=hashtags, content_type__in=[content_type_for(m) for m in models_])
            .select_related("content_type")
            .order_by("-created", "-pk")
        )
        page = self.paginate_queryset(rows)
        results = self._describe(page if page is not None else list(rows), request)
        if page is not None:
            return self.get_paginated_response(results)
        return Response(results)

    def _describe(self, rows: list[AcceptedTag], request) -> list[dict]:

        by_model: dict[type, list[str]] = {}
        for row in rows:
            by_model.setdefault(row.content_type.model_class(), []).append(row.object_id)
        objects: dict[tuple, object] = {}
        for model, ids in by_model.items():
            if model is None:
                continue
            found = list(model._default_manager.filter(pk__in=ids))
            tags = tags_for_many(found)
            for obj in found:
                obj._hashtags = [h.tag for h in tags.get(str(obj.pk), [])]
                objects[(model, str(obj.pk))] = obj
        results = []
        for row in rows:
            obj = objects.get((row.content_type.model_class(), row.object_id))
            if obj is not None:  # deleted meanwhile
                results.append(post_ref(obj, request, obj._hashtags))
        return results


class TrendingView(Throttled, APIView):
    """Tags by accepted uses in the last ``days`` (default 7), most used first."""

    def get_permissions(self):
        return read_permissions()

    @extend_schema(
        parameters=[
            OpenApiParameter("days", OpenApiTypes.INT, description="Window in days (1-365), default 7"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="How many tags (1-100), default 20"),
        ],
        responses={200: TrendingTagSerializer(many=True), 400: ErrorSerializer},
    )
    def get(self, request):
        try:
            days = int(request.query_params.get("days", hashtags_settings.TRENDING_DAYS))
            limit = int(request.query_params.get("limit", 20))
        except ValueError:
            return error("'days' and 'limit' must be whole numbers")
        if not 1 <= days <= 365 or not 1 <= limit <= 100:
            return error("'days' must be within 1-365 and 'limit' within 1-100")
        return Response([{"tag": f"#{row['name']}", **row} for row in trending(days, limit)])


class HashtagListView(Throttled, generics.ListAPIView):
    """The tag vocabulary (``?search=do`` for prefix autocomplete), most used first: tags some
    object carries now. Tags only ever suggested, typed into a private review or removed again are
    not public."""

    serializer_class = HashtagSerializer
    pagination_class = Pagination

    def get_permissions(self):
        return read_permissions()

    @extend_schema(parameters=[OpenApiParameter("search", OpenApiTypes.STR, description="Name prefix")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = Hashtag.objects.active().filter(usage_count__gt=0).order_by("-usage_count", "name")
        search = self.request.query_params.get("search", "").strip().lstrip("#")
        if search:
            qs = qs.filter(name__istartswith=search)
        return qs


class OptOutView(Throttled, APIView):
    """Your opt-out: when on, your images are never analysed."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: OptOutSerializer})
    def get(self, request):
        return Response({"opted_out": HashtagOptOut.is_opted_out(request.user.pk)})

    @extend_schema(request=None, responses={200: OptOutSerializer})
    def put(self, request):
        HashtagOptOut.objects.get_or_create(user=request.user)
        return Response({"opted_out": True})

    @extend_schema(request=None, responses={200: OptOutSerializer})
    def delete(self, request):
        HashtagOptOut.objects.filter(user=request.user).delete()
        return Response({"opted_out": False})


# Model versions -----------------------------------------------------------------------------------

class ModelVersionListView(Throttled, APIView):
    """Registered model versions, newest first, with the serving flag and how people received each
    version's suggestions. Signed-in users only: acceptance numbers are operational data."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: ModelVersionSerializer(many=True)})
    def get(self, request):


        try:
            versions.serving_version()  # an install that never analysed anything still lists its model
        except ArtifactError as exc:
            logger.warning("hashtags: the configured model is unusable: %s", exc)
        rows = versions.with_stats(ModelVersion.objects.select_related("previous"))
        return Response(ModelVersionSerializer(rows, many=True).data)


class ModelVersionPromoteView(Throttled, APIView):
    """Serve this version from now on (``hashtags.promote_modelversion``). Workers switch at their next task."""

    permission_classes = [IsAuthenticated, CanPromoteModel]

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 400: ErrorSerializer, 404: ErrorSerializer})
    def post(self, request, version):

        if not ModelVersion.objects.filter(version=version).exists():
            return error(f"no registered model version {version!r}", status.HTTP_404_NOT_FOUND)
        try:
            promoted = versions.promote(version, request.user)
        except versions.VersionError as exc:
            return error(str(exc))
        row = versions.with_stats(ModelVersion.objects.filter(pk=promoted.pk).select_related("previous")).get()
        return Response(ModelVersionSerializer(row).data)


class ModelVersionRollbackView(Throttled, APIView):
    """Serve the version that served before the current one (``hashtags.promote_modelversion``)."""

    permission_classes = [IsAuthenticated, CanPromoteModel]

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 400: ErrorSerializer})
    def post(self, request):

        try:
            restored = versions.rollback(request.user)
        except versions.VersionError as exc:
            return error(str(exc))
        row = versions.with_stats(ModelVersion.objects.filter(pk=restored.pk).select_related("previous")).get()
        return Response(ModelVersionSerializer(row).data)
