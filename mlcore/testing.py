"""A real, tiny, quickly trained model artifact for the tests of every package.

It is a true decoder trained for a few seconds to map synthetic feature clusters to a handful of
captions, paired with the real encoder: captions are real output of the real pipeline, only the
vocabulary is small. Used by tests; never by the product.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from mlcore.artifact import save_artifact
from mlcore.decoder import DecoderConfig, build_decoder
from mlcore.encoders import get_encoder_spec
from mlcore.text import clean_caption
from mlcore.vocabulary import Vocabulary

TINY_CAPTIONS = (
    "a black dog runs through the grass",
    "two children play on the beach",
    "a man rides a bicycle down the street",
    "a brown dog jumps into the water",
)


def make_tiny_artifact(out_dir: str | Path, encoder: str = "efficientnet_lite0",
                       epochs: int = 60, seed: int = 0, version: str | None = None,
                       attention: bool = False) -> Path:
    """``attention``: a decoder that attends over the encoder's map (7x7 positions for Lite0),
    trained on maps whose positions scatter around each cluster's centre."""
    keras.utils.set_random_seed(seed)
    spec = get_encoder_spec(encoder)
    tokenized = [clean_caption(caption) for caption in TINY_CAPTIONS]
    vocabulary = Vocabulary.build(tokenized, min_count=1)
    config = DecoderConfig(vocabulary_size=len(vocabulary), feature_dim=spec.feature_dim,
                           embedding_dim=16, units=32, dropout=0.0, max_length=12,
                           attention_units=8 if attention else 0,
                           attention_layer=spec.spatial_layer if attention else "")
    decoder = build_decoder(config)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (len(TINY_CAPTIONS), spec.feature_dim)).astype(np.float32)
    samples_per_caption = 16
    features = np.repeat(centres, samples_per_caption, axis=0)
    features += rng.normal(0.0, 0.1, features.shape).astype(np.float32)
    if attention:
        positions = (spec.input_size // 32) ** 2
        features = features[:, None, :] + rng.normal(
            0.0, 0.5, (len(features), positions, spec.feature_dim)).astype(np.float32)
    rows = [vocabulary.encode(tokens) for tokens in tokenized]
    width = max(len(row) for row in rows)
    ids = np.array([row + [0] * (width - len(row)) for row in rows], np.int32)
    ids = np.repeat(ids, samples_per_caption, axis=0)
    decoder.model.compile(optimizer=keras.optimizers.Adam(0.01),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                          ignore_class=0))
    history = decoder.model.fit([features, ids[:, :-1]], ids[:, 1:], batch_size=16, epochs=epochs,
                                verbose=0)
    encoder_info = {"name": spec.name, "input_size": spec.input_size,
                    "feature_dim": spec.feature_dim, "preprocessing": spec.preprocessing}
    return save_artifact(out_dir, decoder=decoder, vocabulary=vocabulary, encoder=encoder_info,
                         version=version or f"tiny-{encoder}-{seed}",
                         training={"data": "mlcore.testing.TINY_CAPTIONS",
                                   "final_loss": float(history.history["loss"][-1])},
                         weights_dtype="float32")
