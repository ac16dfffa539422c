"""The hashtags REST API. See :mod:`hashtags.api.urls` for the URL map."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
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
from ..inference import suggest_many
from ..models import AcceptedTag, Hashtag, HashtagOptOut, ModelVersion, Suggestion
from ..query import current_analyses, suggestions_of, tags_for_many, trending
from ..watched import content_type_for, content_type_key, get_watched_model, watched_fields, watched_models
from ..tags import InvalidTag, canonical_name
from .exceptions import Conflict, PayloadTooLarge, ServiceUnavailable, bad_request, exception_handler
from .permissions import CanPromoteModel, CanReviewObject, CanReviewSuggestion, read_permissions, tag_image_permissions
from .schema import HashtagsAutoSchema
from .throttling import API_THROTTLES, TagImagesThrottle, TagImageThrottle
from .serializers import (
    AcceptedTagSerializer,
    AnalysisSerializer,
    CaptionInputSerializer,
    ErrorSerializer,
    HashtagSerializer,
    ModelVersionSerializer,
    OptOutSerializer,
    PostDetailSerializer,
    PostRefSerializer,
    PostsByTagQuerySerializer,
    SuggestionSerializer,
    TagImageRequestSerializer,
    TagImageResponseSerializer,
    TagImagesRequestSerializer,
    TagImagesResponseSerializer,
    TagInputSerializer,
    TrendingQuerySerializer,
    TrendingTagSerializer,
)

logger = logging.getLogger(__name__)


def _tag_text(request) -> str:
    serializer = TagInputSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["tag"]


def query_values(request) -> dict[str, str]:
    """The query string as a plain dict: a blank ``?days=`` is then an invalid value, as in the
    schema, rather than DRF's "absent" for blank form fields."""
    return request.query_params.dict()


def _invalid_tag(exc: InvalidTag):
    return bad_request(str(exc), code="invalid_tag")


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


class ApiDefaults:
    """What every hashtags API view shares: the ``HASHTAGS["API_THROTTLE"]`` throttles
    (:mod:`.throttling`), the one error shape (:mod:`.exceptions`) and a schema that documents it
    (:mod:`.schema`), whatever the host project's REST_FRAMEWORK says for its own APIs."""

    throttle_classes = API_THROTTLES
    schema = HashtagsAutoSchema()

    def get_exception_handler(self):
        return exception_handler


class NotFoundView(ApiDefaults, APIView):
    """Any other path under the API: a 404 in the API's error shape, not the site's HTML page."""

    permission_classes: list = []
    schema = None  # not an operation

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and throttles still apply
        raise NotFound("no such API path")


# Tag an image now ---------------------------------------------------------------------------------

class TagNowView(ApiDefaults, APIView):
    """What tag-image/ and tag-images/ share: multipart uploads, their own permission setting,
    one throttle budget (``TAG_IMAGE_THROTTLE``) and the model's unavailability as a 503."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_scope = "hashtags_tag_image"

    def get_permissions(self):
        return tag_image_permissions()

    @staticmethod
    def run_model(images: list[bytes]) -> list:
        try:
            return suggest_many(images, max_pixels=hashtags_settings.TAG_IMAGE_MAX_PIXELS) if images else []
        except ArtifactError:
            logger.exception("hashtags: model unavailable")  # the details (server paths) go to the log only
            raise ServiceUnavailable("the hashtag model is unavailable; try again later", code="model_unavailable")


class TagImageView(TagNowView):
    """Caption an uploaded image and suggest hashtags, synchronously; nothing is stored."""

    throttle_classes = [TagImageThrottle, *API_THROTTLES]

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
            raise PayloadTooLarge(
                f"request is too large: {int(request.META['CONTENT_LENGTH']) / 1048576:.1f} MB "
                f"(image limit {limit / 1048576:.1f} MB)")
        upload = request.FILES.get("image")
        if upload is None:
            raise bad_request("send the image as the multipart form field 'image'", code="required")
        if upload.size > limit:
            raise PayloadTooLarge(
                f"image is too large: {upload.size / 1048576:.1f} MB (limit {limit / 1048576:.1f} MB)")
        data = upload.read()
        if not data:
            raise bad_request("empty file", code="empty")
        result = self.run_model([data])[0]
        if isinstance(result, ImageError):
            raise bad_request(str(result), code="not_an_image")
        return Response(tag_image_payload(result))


MULTIPART_OVERHEAD = 64 * 1024  # boundaries and headers around the image in a multipart body


class TagImagesView(TagNowView):
    """Several images in one request, one batched forward pass; one result per image in order,
    and an image that cannot be read fails alone. Nothing is stored."""

    throttle_classes = [TagImagesThrottle, *API_THROTTLES]

    @staticmethod
    def body_limit() -> int:
        return hashtags_settings.TAG_IMAGE_BATCH_MAX * (hashtags_settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD)

    def batch_cost(self, request) -> int:
        """Calls of TAG_IMAGE_THROTTLE this request spends: its image count (1 for a body the
        view refuses unread)."""
        if request_too_large(request, self.body_limit()):
            return 1
        return max(1, min(len(request.FILES.getlist("images")), hashtags_settings.TAG_IMAGE_BATCH_MAX + 1))

    @extend_schema(
        request={"multipart/form-data": TagImagesRequestSerializer},
        responses={
            200: TagImagesResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="No 'images' field, or more than TAG_IMAGE_BATCH_MAX."),
            413: OpenApiResponse(ErrorSerializer, description="Request larger than TAG_IMAGE_BATCH_MAX images of MAX_UPLOAD_BYTES."),
            503: OpenApiResponse(ErrorSerializer, description="The model could not be loaded."),
        },
    )
    def post(self, request):
        if request_too_large(request, self.body_limit()):
            raise PayloadTooLarge(f"request is too large: {int(request.META['CONTENT_LENGTH']) / 1048576:.1f} MB")
        uploads = request.FILES.getlist("images")
        if not uploads:
            raise bad_request("send the images as repeated multipart form fields 'images'", code="required")
        most = hashtags_settings.TAG_IMAGE_BATCH_MAX
        if len(uploads) > most:
            raise bad_request(f"{len(uploads)} images: at most {most} per request", code="too_many")
        results: list[dict | None] = [None] * len(uploads)
        readable, positions = [], []
        for position, upload in enumerate(uploads):
            if upload.size > hashtags_settings.MAX_UPLOAD_BYTES:
                results[position] = {"error": f"image is too large: {upload.size / 1048576:.1f} MB", "code": "too_large"}
                continue
            data = upload.read()
            if not data:
                results[position] = {"error": "empty file", "code": "empty"}
                continue
            readable.append(data)
            positions.append(position)
        found = self.run_model(readable)
        for position, result in zip(positions, found):
            results[position] = ({"error": str(result), "code": "not_an_image"} if isinstance(result, ImageError)
                                 else tag_image_payload(result))
        return Response({"results": [
            {"index": index, "name": upload.name, "ok": "error" not in result, **result}
            for index, (upload, result) in enumerate(zip(uploads, results))
        ]})


def request_too_large(request, limit: int) -> bool:
    """The declared body size (``Content-Length``) exceeds ``limit``; no body is read to know."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > limit
    except ValueError:
        return False


def tag_image_payload(result) -> dict:
    """The tag-image answer (:class:`TagImageResponseSerializer`) for an mlcore CaptionResult; a
    function of the result alone, so that any result's answer can be checked, not just the test model's."""
    return {
        "caption": result.caption,
        "caption_confidence": result.caption_confidence,
        "caption_uncertain": caption_is_uncertain(result.caption_confidence),
        "captions": list(result.captions),
        "attention": result.attention_map,
        "hashtags": [
            {"tag": h.tag, "score": round(float(h.score), 4), "sources": list(h.sources)} for h in result.hashtags
        ],
        "model_version": result.model_version,
        "timings": result.timings,
    }


# One post: analyses, suggestions, tags, caption -------------------------------------------------

class PostViewSet(ApiDefaults, viewsets.GenericViewSet):
    """One watched object, ``posts/<app_label.model>/<pk>/``: what the model found and the owner's
    or a moderator's decisions on it (``@action`` routes); the object permission is the post's."""

    permission_classes = [IsAuthenticated, CanReviewObject]
    serializer_class = PostDetailSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return next(iter(watched_models()))._default_manager.none()
        model = get_watched_model(self.kwargs["content_type"])
        if model is None:
            raise NotFound(f"{self.kwargs['content_type']!r} is not a watched model")
        return model._default_manager.all()

    def get_object(self):
        try:
            obj = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        except (ValueError, DjangoValidationError):
            raise NotFound("no such post")
        self.check_object_permissions(self.request, obj)
        return obj

    @staticmethod
    def accepted_tags(obj):
        return AcceptedTag.objects.for_object(obj).select_related("hashtag").order_by("hashtag__name")

    @extend_schema(responses={200: PostDetailSerializer})
    def retrieve(self, request, content_type=None, pk=None):
        """A post's analysis status (with the error of a failed one), suggestions and accepted tags."""
        obj = self.get_object()
        analyses = current_analyses(obj)
        tags = self.accepted_tags(obj)
        return Response(PostDetailSerializer({
            "post": post_ref(obj, request, [t.hashtag.tag for t in tags]),
            "analyses": analyses,
            "suggestions": suggestions_of(analyses),
            "tags": tags,
        }).data)

    @extend_schema(responses={200: SuggestionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def suggestions(self, request, content_type=None, pk=None):
        """The suggestions of a post's current image(s)."""
        return Response(SuggestionSerializer(suggestions_of(current_analyses(self.get_object())), many=True).data)

    @extend_schema(responses={200: AcceptedTagSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def tags(self, request, content_type=None, pk=None):
        """A post's accepted tags."""
        return Response(AcceptedTagSerializer(self.accepted_tags(self.get_object()), many=True).data)

    @extend_schema(request=TagInputSerializer, responses={201: AcceptedTagSerializer, 400: ErrorSerializer})
    @tags.mapping.post
    def add_tag(self, request, content_type=None, pk=None):
        """Add a tag of your own (``{"tag": "#puppy"}``) to the post's current image."""
        obj = self.get_object()
        try:
            accepted, _ = services.add_tag(obj, _tag_text(request), request.user)
        except InvalidTag as exc:
            raise _invalid_tag(exc)
        return Response(AcceptedTagSerializer(accepted).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 404: ErrorSerializer})
    @action(detail=True, methods=["delete"], url_path="tags/(?P<tag>[^/]+)")
    def remove_tag(self, request, content_type=None, pk=None, tag=None):
        """Remove an accepted tag from a post (its suggestions become rejected)."""
        obj = self.get_object()
        try:
            hashtag = Hashtag.objects.get_normalized(tag)
        except (InvalidTag, Hashtag.DoesNotExist):
            raise NotFound(f"the post has no tag {tag!r}")
        if not services.remove_tag(obj, hashtag, request.user):
            raise NotFound(f"the post has no tag {hashtag.tag}")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: None, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def analyze(self, request, content_type=None, pk=None):
        """Queue a fresh analysis of the post's image(s), even if one exists; never for an owner who
        opted out (409)."""
        obj = self.get_object()
        if HashtagOptOut.covers(obj):
            raise Conflict("the owner of this post opted out of automatic hashtags: nothing queued", code="opted_out")
        meta = obj._meta
        for field in watched_fields(type(obj)):
            if getattr(obj, field):
                enqueue_analysis(meta.app_label, meta.model_name, obj.pk, field, force=True)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)

    @staticmethod
    def captioned_analysis(obj, field: str | None):
        """The finished current analysis whose caption a person corrects (of ``field``, or the first)."""
        analyses = [a for a in current_analyses(obj) if a.status == "done"]
        if field:
            analyses = [a for a in analyses if a.field_name == field]
        return analyses[0] if analyses else None

    @extend_schema(request=CaptionInputSerializer,
                   responses={200: AnalysisSerializer, 400: ErrorSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def caption(self, request, content_type=None, pk=None):
        """Correct the caption of the post's current image (gold captioning data)."""
        obj = self.get_object()
        serializer = CaptionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        analysis = self.captioned_analysis(obj, serializer.validated_data.get("field"))
        if analysis is None:
            raise Conflict("this post has no finished analysis with a caption to correct yet", code="not_analysed")
        try:
            analysis = services.correct_caption(analysis, serializer.validated_data["caption"], request.user)
        except services.InvalidCaption as exc:
            raise bad_request(str(exc), code="invalid_caption")
        return Response(AnalysisSerializer(analysis).data)

    @extend_schema(request=None, responses={200: AnalysisSerializer, 409: ErrorSerializer})
    @caption.mapping.delete
    def withdraw_caption(self, request, content_type=None, pk=None):
        """Withdraw the correction of the caption (``?field=`` as for the correction)."""
        analysis = self.captioned_analysis(self.get_object(), request.query_params.get("field"))
        if analysis is None:
            raise Conflict("this post has no finished analysis", code="not_analysed")
        return Response(AnalysisSerializer(services.correct_caption(analysis, None, request.user)).data)


# Suggestions --------------------------------------------------------------------------------------

class SuggestionViewSet(ApiDefaults, viewsets.GenericViewSet):
    """One suggestion, and the decisions on it (``@action`` routes); the object permission is the
    post's: its owner or a moderator."""

    queryset = Suggestion.objects.select_related("analysis__content_type", "hashtag", "replaced")
    serializer_class = SuggestionSerializer
    permission_classes = [IsAuthenticated, CanReviewSuggestion]

    def get_object(self) -> Suggestion:
        suggestion = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        if suggestion.analysis.content_object is None:
            raise NotFound("the post of this suggestion no longer exists")
        self.check_object_permissions(self.request, suggestion)
        return suggestion

    def decided(self, suggestion: Suggestion) -> Response:
        suggestion.refresh_from_db()
        return Response(self.get_serializer(suggestion).data)

    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=None, responses={200: SuggestionSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Accept: the tag becomes one of the post's tags."""
        return self.decided(services.accept(self.get_object(), request.user))

    @extend_schema(request=None, responses={200: SuggestionSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject (also un-accepts: the tag leaves the post)."""
        return self.decided(services.reject(self.get_object(), request.user))

    @extend_schema(request=None, responses={200: SuggestionSerializer})
    @action(detail=True, methods=["post"])
    def reset(self, request, pk=None):
        """Undo a decision: back to pending."""
        return self.decided(services.reset(self.get_object(), request.user))

    @extend_schema(request=TagInputSerializer, responses={200: SuggestionSerializer, 400: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def edit(self, request, pk=None):
        """Replace the suggested tag with yours (``{"tag": "#puppy"}``); it is accepted."""
        suggestion = self.get_object()
        try:
            return self.decided(services.edit(suggestion, _tag_text(request), request.user))
        except InvalidTag as exc:
            raise _invalid_tag(exc)


# Public reads -------------------------------------------------------------------------------------

class Pagination(PageNumberPagination):
    """The project's page size (``REST_FRAMEWORK["PAGE_SIZE"]``), ``?page_size=`` up to 100."""

    page_size = api_settings.PAGE_SIZE or 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_number(self, request, paginator):
        """A blank or non-numeric ``page`` is refused, not read as page 1 (the schema says integer)."""
        text = request.query_params.get(self.page_query_param)
        if text is not None and not text.isdigit():
            raise bad_request("page must be a whole number from 1", code="invalid_page")
        return super().get_page_number(request, paginator)

    def get_page_size(self, request) -> int:
        """``page_size`` outside 1-100 is refused (400), as the schema says, not silently replaced."""
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        if not text.isdigit() or not 1 <= int(text) <= self.max_page_size:
            raise bad_request(f"page_size must be a whole number within 1-{self.max_page_size}", code="invalid_page_size")
        return int(text)


class PostsByTagView(ApiDefaults, generics.GenericAPIView):
    """Posts carrying an accepted tag, newest tagging first: ``?tag=dog`` (``#`` optional)."""

    serializer_class = PostRefSerializer
    pagination_class = Pagination

    def get_permissions(self):
        return read_permissions()

    @extend_schema(
        parameters=[PostsByTagQuerySerializer],
        responses={200: PostRefSerializer(many=True), 400: ErrorSerializer},
    )
    def get(self, request):
        models_ = list(watched_models())
        query = PostsByTagQuerySerializer(data=query_values(request),
                                          model_choices=[content_type_key(m) for m in models_])
        query.is_valid(raise_exception=True)
        try:
            name = canonical_name(query.validated_data["tag"])
        except InvalidTag as exc:
            raise _invalid_tag(exc)
        only = query.validated_data.get("model")
        if only:
            models_ = [get_watched_model(only)]
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


class TrendingView(ApiDefaults, APIView):
    """Tags by accepted uses in the last ``days`` (default 7), most used first."""

    def get_permissions(self):
        return read_permissions()

    @extend_schema(
        parameters=[TrendingQuerySerializer],
        responses={200: TrendingTagSerializer(many=True), 400: ErrorSerializer},
    )
    def get(self, request):
        query = TrendingQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        days = query.validated_data.get("days", hashtags_settings.TRENDING_DAYS)
        limit = query.validated_data.get("limit", 20)
        return Response([{"tag": f"#{row['name']}", **row} for row in trending(days, limit)])


class HashtagListView(ApiDefaults, generics.ListAPIView):
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


class OptOutView(ApiDefaults, APIView):
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

class ModelVersionViewSet(ApiDefaults, viewsets.GenericViewSet):
    """Registered model versions, newest first, with the serving flag and how people received each
    version's suggestions (signed-in users only: acceptance numbers are operational data); promote
    and rollback need ``hashtags.promote_modelversion``. Workers switch at their next task."""

    serializer_class = ModelVersionSerializer
    permission_classes = [IsAuthenticated]
    lookup_field = "version"
    lookup_value_regex = "[^/]+"
    pagination_class = None

    def get_permissions(self):
        if self.action in ("promote", "rollback"):
            return [IsAuthenticated(), CanPromoteModel()]
        return super().get_permissions()

    def get_queryset(self):
        return versions.with_stats(ModelVersion.objects.select_related("previous"))

    def answer(self, row: ModelVersion) -> Response:
        return Response(self.get_serializer(self.get_queryset().filter(pk=row.pk).get()).data)

    def list(self, request):
        try:
            versions.serving_version()  # an install that never analysed anything still lists its model
        except ArtifactError as exc:
            logger.warning("hashtags: the configured model is unusable: %s", exc)
        return Response(self.get_serializer(self.get_queryset(), many=True).data)

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 404: ErrorSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def promote(self, request, version=None):
        """Serve this version from now on."""
        if not ModelVersion.objects.filter(version=version).exists():
            raise NotFound(f"no registered model version {version!r}")
        try:
            return self.answer(versions.promote(version, request.user))
        except versions.VersionError as exc:
            raise Conflict(str(exc), code="version_conflict")

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 409: ErrorSerializer})
    @action(detail=False, methods=["post"])
    def rollback(self, request):
        """Serve the version that served before the current one."""
        try:
            return self.answer(versions.rollback(request.user))
        except versions.VersionError as exc:
            raise Conflict(str(exc), code="no_previous_version")
