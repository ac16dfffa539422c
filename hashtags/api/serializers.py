"""Request/response shapes of the hashtags API (also the OpenAPI schema)."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlcore.extractor import MAX_TAG_LENGTH, TAG_PATTERN

from ..explain import SOURCE_CHOICES
from ..services import CAPTION_MAX_LENGTH
from ..models import AcceptedTag, ImageAnalysis, Suggestion
from ..versions import stats_of


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer (:mod:`hashtags.api.exceptions`)."""

    error = serializers.CharField(help_text="Readable reason, safe to show to end users.")
    code = serializers.CharField(help_text='Stable machine code: "not_found", "invalid", "throttled", ...')
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Validation errors: field name → messages (only for 400 answers about fields).")


def tag_text_field(**kwargs) -> serializers.CharField:
    """Tag text as the API takes it: optional ``#``, ASCII letters and digits (TAG_PATTERN); the
    schema states the same rule, so a request the schema allows is never refused."""
    return serializers.CharField(
        max_length=MAX_TAG_LENGTH, trim_whitespace=False,
        validators=[RegexValidator(TAG_PATTERN, "a tag is an optional # then letters and digits (at least two, "
                                                "one of them a letter), e.g. #puppy", code="invalid_tag")],
        **kwargs)


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class NonEmptyFileField(serializers.FileField):
    """A file upload that must not be empty (the schema says ``minLength: 1``)."""


class TagImageRequestSerializer(serializers.Serializer):
    image = NonEmptyFileField(help_text="The image (JPEG, PNG, WebP, ...), as a multipart form field; not empty.")


def sources_field() -> serializers.ListField:
    """Why a tag is suggested: one schema (an array of the known source names) wherever it appears."""
    return serializers.ListField(
        child=serializers.ChoiceField(choices=SOURCE_CHOICES), read_only=True,
        help_text="Why it is suggested: the evidence that put it on the list (empty for tags people added).",
    )


def caption_confidence_field(*, stored: bool = True) -> serializers.FloatField:
    """Stored analyses may predate confidences (null); a fresh tag-image result always has one."""
    unknown = "; null when not known (unfinished or older analyses)" if stored else ""
    return serializers.FloatField(
        allow_null=stored, read_only=True,
        help_text=f"How far the caption agrees with the tag heads and the classifier, in [0, 1]{unknown}.",
    )


def caption_uncertain_field(**kwargs) -> serializers.BooleanField:
    return serializers.BooleanField(
        read_only=True,
        help_text="The generated caption's confidence is below HASHTAGS['MIN_CAPTION_CONFIDENCE']: show it as "
                  "a guess, not as fact (e.g. not as alt text). A person's corrected_caption is never uncertain.",
        **kwargs,
    )


class ScoredTagSerializer(serializers.Serializer):
    tag = serializers.CharField(help_text='"#dog"')
    score = serializers.FloatField(help_text="Confidence in [0, 1].")
    sources = sources_field()


class AttentionMapSerializer(serializers.Serializer):
    """Where the model looked for each word of its caption (a model with attention)."""

    grid = serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2,
                                 help_text="Rows and columns of the encoder's map, which covers the whole image.")
    words = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="One row per word of the caption: its weight on each grid cell (row-major), summing to 1.")


def attention_field(**kwargs) -> AttentionMapSerializer:
    return AttentionMapSerializer(
        allow_null=True, read_only=True,
        help_text="Where the model looked for each word of the generated caption; null for a model without attention.",
        **kwargs)


class TagImageResponseSerializer(serializers.Serializer):
    caption = serializers.CharField()
    caption_confidence = caption_confidence_field(stored=False)
    caption_uncertain = caption_uncertain_field()
    captions = serializers.ListField(child=serializers.CharField(), help_text="Beam captions, best first.")
    attention = attention_field()
    hashtags = ScoredTagSerializer(many=True)
    model_version = serializers.CharField()
    timings = serializers.DictField(child=serializers.FloatField(), required=False)


class TagImagesRequestSerializer(serializers.Serializer):
    images = serializers.ListField(
        child=serializers.FileField(), min_length=1,  # an empty file is that image's own error
        help_text="The images, as repeated multipart form fields 'images' (at most HASHTAGS['TAG_IMAGE_BATCH_MAX']).")


class TagImagesResultSerializer(serializers.Serializer):
    """One image's answer in a batch: the tag-image answer (ok = true), or ``error`` + ``code``."""

    index = serializers.IntegerField(help_text="Position of the image in the request.")
    name = serializers.CharField(help_text="The uploaded file's name.")
    ok = serializers.BooleanField()
    caption = serializers.CharField(required=False)
    caption_confidence = serializers.FloatField(required=False, allow_null=True, help_text="As in tag-image/.")
    caption_uncertain = serializers.BooleanField(required=False, help_text="As in tag-image/.")
    captions = serializers.ListField(child=serializers.CharField(), required=False)
    attention = AttentionMapSerializer(required=False, allow_null=True, help_text="As in tag-image/.")
    hashtags = ScoredTagSerializer(many=True, required=False)
    model_version = serializers.CharField(required=False)
    timings = serializers.DictField(child=serializers.FloatField(), required=False)
    error = serializers.CharField(required=False, help_text="Why this image got no hashtags (ok = false).")
    code = serializers.CharField(required=False, help_text='Stable machine code, e.g. "not_an_image".')


class TagImagesResponseSerializer(serializers.Serializer):
    results = TagImagesResultSerializer(many=True, help_text="One per image, in request order.")


class TagInputSerializer(serializers.Serializer):
    tag = tag_text_field(help_text='"#puppy" or "puppy"')


class PostsByTagQuerySerializer(serializers.Serializer):
    """Query of ``GET posts/``; ``model`` choices are the watched models (set by the view)."""

    tag = tag_text_field(help_text='"dog" or "#Dog"')
    model = serializers.ChoiceField(choices=[], required=False, help_text='Only this watched model, e.g. "posts.post"')

    def __init__(self, *args, model_choices: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = list(model_choices)


class TrendingQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=365, required=False, help_text="Window in days, default 7")
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False, help_text="How many tags, default 20")


class SuggestionSerializer(serializers.ModelSerializer):
    tag = serializers.CharField(source="hashtag.tag", read_only=True)
    name = serializers.CharField(source="hashtag.name", read_only=True)
    replaced = serializers.SerializerMethodField(help_text="The suggested tag an edit replaced.")
    decided_by = serializers.SerializerMethodField()
    post = serializers.SerializerMethodField(help_text='"app_label.model/pk" of the analysed object.')
    sources = sources_field()

    class Meta:
        model = Suggestion
        fields = [
            "id", "tag", "name", "score", "rank", "sources", "state", "replaced", "decided_by", "decided_at",
            "model_version", "analysis", "post",
        ]
        read_only_fields = fields

    def get_replaced(self, obj: Suggestion) -> str | None:
        return obj.replaced.tag if obj.replaced_id else None

    def get_decided_by(self, obj: Suggestion) -> str | None:
        return obj.decided_by.get_username() if obj.decided_by_id else None

    def get_post(self, obj: Suggestion) -> str:
        ct = obj.analysis.content_type
        return f"{ct.app_label}.{ct.model}/{obj.analysis.object_id}"


class AnalysisSerializer(serializers.ModelSerializer):
    field = serializers.CharField(source="field_name")
    caption_confidence = caption_confidence_field()
    caption_uncertain = caption_uncertain_field(source="caption_is_uncertain")
    attention = attention_field()

    class Meta:
        model = ImageAnalysis
        fields = [
            "id", "field", "status", "error", "caption", "caption_confidence", "caption_uncertain",
            "corrected_caption", "captions", "attention", "model_version",
            "image_sha256", "timings", "attempts", "created", "started", "finished",
        ]
        read_only_fields = fields


class AcceptedTagSerializer(serializers.ModelSerializer):
    tag = serializers.CharField(source="hashtag.tag")
    name = serializers.CharField(source="hashtag.name")

    class Meta:
        model = AcceptedTag
        fields = ["tag", "name", "source", "created"]
        read_only_fields = fields


class PostRefSerializer(serializers.Serializer):
    content_type = serializers.CharField(help_text='"posts.post"')
    app_label = serializers.CharField()
    model = serializers.CharField()
    pk = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    image_url = serializers.CharField(allow_null=True)
    url = serializers.CharField(help_text="This post's suggestions endpoint (owner/moderators).")


class PostDetailSerializer(serializers.Serializer):
    post = PostRefSerializer()
    analyses = AnalysisSerializer(many=True, help_text="Newest analysis per watched image field.")
    suggestions = SuggestionSerializer(many=True, help_text="Suggestions of those analyses.")
    tags = AcceptedTagSerializer(many=True)


class TrendingTagSerializer(serializers.Serializer):
    tag = serializers.CharField()
    name = serializers.CharField()
    count = serializers.IntegerField(help_text="Accepted uses in the window.")


class HashtagSerializer(serializers.Serializer):
    tag = serializers.CharField()
    name = serializers.CharField()
    slug = serializers.CharField()
    usage_count = serializers.IntegerField()


class OptOutSerializer(serializers.Serializer):
    opted_out = serializers.BooleanField()


class ModelVersionStatsSerializer(serializers.Serializer):
    decided = serializers.IntegerField(help_text="Suggestions of this version that a person accepted, rejected or edited.")
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    edited = serializers.IntegerField()
    posts = serializers.IntegerField(help_text="Posts with a finished analysis by this version.")
    acceptance_rate = serializers.FloatField(allow_null=True, help_text="accepted / decided (edits are not accepted as suggested).")
    edits_per_post = serializers.FloatField(allow_null=True, help_text="edited / posts.")
    mean_decision_seconds = serializers.FloatField(
        allow_null=True, help_text="Mean seconds from the analysis finishing to a person's decision."
    )


class ModelVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    serving = serializers.BooleanField(source="is_serving")
    serving_reason = serializers.CharField(help_text='"settings" (follows MODEL_DIR), "promoted", "rollback" or "".')
    encoder = serializers.CharField()
    created = serializers.DateTimeField()
    promoted_at = serializers.DateTimeField(allow_null=True, help_text="When it last started serving.")
    previous = serializers.SerializerMethodField(help_text="The version rollback returns to.")
    metrics = serializers.JSONField(help_text="Offline evaluation (dev split, held-back feedback, ...).")
    notes = serializers.CharField()
    stats = serializers.SerializerMethodField()

    def get_previous(self, obj) -> str | None:
        return obj.previous.version if obj.previous_id else None

    def get_stats(self, obj) -> dict:
        return ModelVersionStatsSerializer(stats_of(obj)).data


class CaptionInputSerializer(serializers.Serializer):
    caption = serializers.CharField(
        max_length=CAPTION_MAX_LENGTH, trim_whitespace=False,
        validators=[RegexValidator("[A-Za-z]", "the caption needs at least one word", code="invalid_caption")],
        help_text="The right caption for the image, one sentence (at least one word).",
    )
    field = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False,
        help_text="Image field, when the model watches several (default: the first).",
    )
