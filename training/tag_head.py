"""Train the captioner's tag head (see :mod:`mlcore.tag_head`) on cached features."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras
import numpy as np

from mlcore.tag_head import TagHead, build_tag_head_model, tag_targets
from training.evaluate import caption_tags
from training.flickr8k import Example

logger = logging.getLogger(__name__)


def train_tag_head(feature_views: Sequence[np.ndarray], examples: Sequence[Example],
                   hidden_units: int = 1024, dropout: float = 0.5, epochs: int = 30,
                   min_images: int = 5, batch_size: int = 128, seed: int = 42) -> TagHead | None:
    """Fit the head on every view of the training images (plain and mirrored features).

    Returns None when no tag is used on ``min_images`` images (tiny datasets): the model then
    ranks hashtags from its captions alone.
    """
    keras.utils.set_random_seed(seed)
    tags, targets = tag_targets([[[tag.lstrip("#") for tag in caption_tags(caption)]
                                  for caption in example.captions] for example in examples],
                                min_images=min_images)
    if not tags:
        logger.warning("tag head skipped: no tag is used on %d or more images", min_images)
        return None
    model = build_tag_head_model(feature_views[0].shape[1], len(tags), hidden_units, dropout)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    inputs = np.concatenate(list(feature_views))
    outputs = np.concatenate([targets] * len(feature_views))
    logger.info("tag head: %d tags, %d samples, %d epochs", len(tags), len(inputs), epochs)
    model.fit(inputs, outputs, batch_size=batch_size, epochs=epochs, shuffle=True,
              verbose=2 if epochs else 0)
    return TagHead(tags, model, hidden_units, dropout)
