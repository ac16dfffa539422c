"""Which uploaded files a platform should store as images: an extension allow-list
(``HASHTAGS["IMAGE_EXTENSIONS"]``) and, when Django has opened the file (forms.ImageField), a
format that matches its extension.

Django's own ``validate_image_file_extension`` accepts every extension Pillow can *write*,
``.pdf`` included, so a GIF+HTML polyglot named ``x.pdf`` was stored and then served as a PDF.
Storage serves files by their name: the name must say "image", and say the right one."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from PIL import Image

from .conf import hashtags_settings


def _extension(name: str) -> str:
    return Path(name or "").suffix.lower().lstrip(".")


@deconstructible
class ImageUploadValidator:
    """Use on an ImageField (``validators=[validate_image_upload]``) or call from a form's clean."""

    def __call__(self, file) -> None:
        allowed = [e.lower().lstrip(".") for e in hashtags_settings.IMAGE_EXTENSIONS]
        extension = _extension(getattr(file, "name", ""))
        if extension not in allowed:
            raise ValidationError(
                "Files of type “%(extension)s” are not accepted; use one of: %(allowed)s.",
                code="invalid_extension", params={"extension": extension or "(none)", "allowed": ", ".join(allowed)},
            )
        # forms.ImageField sets ``.image`` on the upload once Pillow identified it; a model
        # field's validators get the FieldFile around that upload.
        opened = getattr(file, "image", None) or getattr(getattr(file, "file", None), "image", None)
        detected = getattr(opened, "format", None)
        if detected and Image.registered_extensions().get(f".{extension}") != detected:
            raise ValidationError(
                "This file is a %(format)s image but is named .%(extension)s; rename it.",
                code="extension_mismatch", params={"format": detected, "extension": extension},
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageUploadValidator)


validate_image_upload = ImageUploadValidator()
