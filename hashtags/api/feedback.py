"""Feedback endpoints: a person corrects a post's generated caption (gold captioning data).

    POST   posts/<app_label.model>/<pk>/caption/   {"caption": "a puppy on the beach"[, "field": "image"]}
    DELETE posts/<app_label.model>/<pk>/caption/   withdraw the correction

Same permissions as the suggestion endpoints: the post's owner and moderators (``hashtags.change_suggestion``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from .serializers import AnalysisSerializer, ErrorSerializer
from ..query import current_analyses
from .views import PostObjectMixin, Throttled, error


class CaptionInputSerializer(serializers.Serializer):
    caption = serializers.CharField(
        max_length=services.CAPTION_MAX_LENGTH, help_text="The right caption for the image, one sentence."
    )
    field = serializers.CharField(
        required=False, help_text="Image field, when the model watches several (default: the first)."
    )


class PostCaptionView(PostObjectMixin, Throttled, APIView):
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
        if not serializer.is_valid():
            errors = serializer.errors
            message = "; ".join(str(m) for messages in errors.values() for m in messages)
            return error(f'send {{"caption": "..."}}: {message}')
        analysis = self._analysis(obj, serializer.validated_data.get("field"))
        if analysis is None:
            return error("this post has no finished analysis with a caption to correct yet",
                         status.HTTP_409_CONFLICT)
        try:
            analysis = services.correct_caption(analysis, serializer.validated_data["caption"], request.user)
        except services.InvalidCaption as exc:
            return error(str(exc))
        return Response(AnalysisSerializer(analysis).data)

    @extend_schema(request=None, responses={200: AnalysisSerializer, 409: ErrorSerializer})
    def delete(self, request, content_type, pk):
        obj = self.get_post()
        analysis = self._analysis(obj, request.query_params.get("field"))
        if analysis is None:
            return error("this post has no finished analysis", status.HTTP_409_CONFLICT)
        return Response(AnalysisSerializer(services.correct_caption(analysis, None, request.user)).data)
