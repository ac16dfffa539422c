"""Tag text handling shared by the models, services and API: one canonical form per tag."""

from __future__ import annotations

from mlcore.extractor import normalize_tag


class InvalidTag(ValueError):
    """Text that cannot be a hashtag (empty, only punctuation, blocklisted...)."""


def canonical_name(text: str) -> str:
    """``"#Dogs"`` → mlcore's canonical tag name (no ``#``); raises :class:`InvalidTag`."""
    if not isinstance(text, str) or not text.strip().lstrip("#").strip():
        raise InvalidTag("a tag needs at least one letter or digit")
    name = normalize_tag(text)
    if not name:
        raise InvalidTag(f"{text!r} is not a usable hashtag")
    return name.lstrip("#")


def display(name: str) -> str:
    return f"#{name}"
