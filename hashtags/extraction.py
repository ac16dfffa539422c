"""The app's one face of mlcore's caption-to-hashtag extraction settings.

:func:`extractor_config` turns the ``HASHTAGS`` settings (``MAX_TAGS``, ``MIN_SCORE``, ``BLOCKLIST``)
into mlcore's :class:`~mlcore.extractor.ExtractorConfig`; the model cache (:mod:`hashtags.inference`)
and the re-ranker (:mod:`hashtags.reranker`) both ask here, so neither reaches into the other.
"""

from __future__ import annotations

from mlcore.extractor import DEFAULT_BLOCKLIST, ExtractorConfig

from .conf import hashtags_settings


def extractor_config() -> ExtractorConfig:
    """mlcore's ExtractorConfig from the app settings (blocklist merged with mlcore's)."""
    extra = {str(t).strip().lstrip("#").lower() for t in hashtags_settings.BLOCKLIST if str(t).strip()}
    return ExtractorConfig(
        max_tags=hashtags_settings.MAX_TAGS,
        min_score=hashtags_settings.MIN_SCORE,
        blocklist=type(DEFAULT_BLOCKLIST)(set(DEFAULT_BLOCKLIST) | extra) if extra else DEFAULT_BLOCKLIST,
    )
