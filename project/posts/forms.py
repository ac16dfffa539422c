"""Forms of the demo pages: upload a post, type a tag."""

from __future__ import annotations

from django import forms

from hashtags.conf import hashtags_settings
from hashtags.tags import InvalidTag, canonical_name

from .models import Post


class PostForm(forms.ModelForm):
    class Meta:
        model = Post
        fields = ["image", "text"]
        widgets = {
            "image": forms.ClearableFileInput(attrs={"accept": "image/*"}),
            "text": forms.Textarea(attrs={"rows": 3, "placeholder": "Say something about this photo (optional)"}),
        }
        help_texts = {"image": "JPEG, PNG, WebP or GIF. Hashtags are suggested a few seconds after upload."}

    def clean_image(self):
        image = self.cleaned_data.get("image")
        limit = hashtags_settings.MAX_IMAGE_BYTES
        if image is not None and getattr(image, "size", 0) > limit:
            raise forms.ValidationError(
                f"This file is {image.size / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB."
            )
        return image


class TagForm(forms.Form):
    """One hashtag typed by a person, with or without '#'."""

    tag = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "#yourtag", "autocomplete": "off", "aria-label": "Hashtag"}),
    )

    def clean_tag(self) -> str:
        text = self.cleaned_data["tag"]
        try:
            canonical_name(text)
        except InvalidTag as exc:
            raise forms.ValidationError(str(exc)) from exc
        return text
