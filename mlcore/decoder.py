"""The LSTM caption decoder (the paper's CNN-LSTM), built with the Keras Functional API.

Conditioning is *init-inject*: the CNN feature is projected to the LSTM's initial hidden and cell
state and never fed again. We chose it over *merge* (image joined with the LSTM output just
before the softmax) because it keeps one decoding step at exactly one LSTM cell call on a
``(batch, units)`` state, which is what makes batched greedy and beam search cheap; and over
*par-inject* (image concatenated to every word) because on Flickr8k it gave no better captions
for a larger input matrix per step (Tanti et al., 2018, report the same ordering).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class DecoderConfig:
    vocabulary_size: int
    feature_dim: int
    embedding_dim: int = 256
    units: int = 512
    dropout: float = 0.3
    max_length: int = 32  # tokens generated at most, <end> included

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> DecoderConfig:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass
class CaptionDecoder:
    """The training model plus handles on the layers the step decoder reuses."""

    config: DecoderConfig
    model: keras.Model
    initial_hidden: layers.Dense
    initial_cell: layers.Dense
    embedding: layers.Embedding
    lstm: layers.LSTM
    output_projection: layers.Dense


def build_decoder(config: DecoderConfig) -> CaptionDecoder:
    """(image features, caption ids without the last token) → next-word logits per position."""
    image_features = keras.Input(shape=(config.feature_dim,), name="image_features")
    caption_ids = keras.Input(shape=(None,), dtype="int32", name="caption_ids")

    image_dropout = layers.Dropout(config.dropout, name="image_dropout")(image_features)
    initial_hidden = layers.Dense(config.units, activation="tanh", name="initial_hidden")
    initial_cell = layers.Dense(config.units, name="initial_cell")
    state = [initial_hidden(image_dropout), initial_cell(image_dropout)]

    embedding = layers.Embedding(config.vocabulary_size, config.embedding_dim, mask_zero=True,
                                 name="word_embedding")
    words = layers.Dropout(config.dropout, name="word_dropout")(embedding(caption_ids))
    lstm = layers.LSTM(config.units, return_sequences=True, name="caption_lstm")
    sequence = lstm(words, initial_state=state)
    sequence = layers.Dropout(config.dropout, name="lstm_dropout")(sequence)
    output_projection = layers.Dense(config.vocabulary_size, name="next_word_logits")
    logits = output_projection(sequence)

    model = keras.Model([image_features, caption_ids], logits, name="caption_decoder")
    return CaptionDecoder(config, model, initial_hidden, initial_cell, embedding, lstm,
                          output_projection)
