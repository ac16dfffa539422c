"""Caption endpoints: a person corrects a post's generated caption (gold captioning data).

    POST   posts/<app_label.model>/<pk>/caption/   {"caption": "a puppy on the beach"[, "field": "image"]}
    DELETE posts/<app_label.model>/<pk>/caption/   withdraw the correction

Same permissions as the suggestion endpoints: the post's owner and moderators (``hashtags.change_suggestion``).
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from .serializers import AnalysisSerializer, ErrorSerializer
from ..query import current_analyses
from .exceptions import Conflict, bad_request
from .views import ApiDefaults, PostObjectMixin


class CaptionInputSerializer(serializers.Serializer):
    caption = serializers.CharField(
        max_length=services.CAPTION_MAX_LENGTH, trim_whitespace=False,
        validators=[RegexValidator("[A-Za-z]", "the caption needs at least one word", code="invalid_caption")],
        help_text="The right caption for the image, one sentence (at least one word).",
    )
    field = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False,
        help_text="Image field, when the model watches several (default: the first).",
    )


class PostCaptionView(PostObjectMixin, ApiDefaults, APIView):
    """Correct (POST) or withdraw the correction of (DELETE) the caption of a post's current image."""

    def _analysis(self, obj, field: str | None):
        analyses = [a for a in current_analyses(obj) if a.status == "done"]
        if field:
            analyses = [a for a in analyses if a.field_name == field]
        return analyses[0] if analyses else None

    @extend_schema(
        request=CaptionInputSerializer,
        responses={200: AnalysisSerializer, 400: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request, content_type, pk):
        obj = self.get_post()
        serializer = CaptionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        analysis = self._analysis(obj, serializer.validated_data.get("field"))
        if analysis is None:
            raise Conflict("this post has no finished analysis with a caption to correct yet", code="not_analysed")
        try:
            analysis = services.correct_caption(analysis, serializer.validated_data["caption"], request.user)
        except services.InvalidCaption as exc:
            raise bad_request(str(exc), code="invalid_caption")
        return Response(AnalysisSerializer(analysis).data)

    @extend_schema(request=None, responses={200: AnalysisSerializer, 409: ErrorSerializer})
    def delete(self, request, content_type, pk):
        obj = self.get_post()
        analysis = self._analysis(obj, request.query_params.get("field"))
        if analysis is None:
            raise Conflict("this post has no finished analysis", code="not_analysed")
        return Response(AnalysisSerializer(services.correct_caption(analysis, None, request.user)).data)
