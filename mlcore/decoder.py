"""The caption decoders (the paper's CNN-LSTM, and one with soft attention), Keras Functional API.

Both condition by *init-inject*: the pooled CNN feature is projected to the LSTM's initial hidden
and cell state. We chose it over *merge* (image joined with the LSTM output just before the
softmax) because it keeps one decoding step at exactly one LSTM cell call on a ``(batch, units)``
state, which is what makes batched greedy and beam search cheap; and over *par-inject* (image
concatenated to every word) because on Flickr8k it gave no better captions for a larger input
matrix per step (Tanti et al., 2018, report the same ordering).

With ``attention_units`` the decoder also attends over the encoder's last spatial map (7x7
positions for Lite0 at 224 px): additive (Bahdanau) attention whose query is the LSTM's output
at each step, gated by a sigmoid of that output (Xu et al., 2015's beta), then joined with it
before the softmax. The query is the *current* output, as in Lu et al. (2017)'s spatial
attention, rather than the previous one feeding the LSTM's input (Xu et al.'s order): Lu et al.
found it gives better captions, and it keeps the LSTM a plain sequence layer, so training runs
the LSTM over whole captions and the attention over all steps at once instead of a Python-level
cell loop (what makes training fit a 2-core CPU). Its input is the map itself; the pooled
feature for the initial state is the map's mean, which is exactly the encoder's pooled output.
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
    attention_units: int = 0  # 0: no attention (the pooled feature only)
    attention_layer: str = ""  # the encoder layer whose output map the decoder attends over

    def __post_init__(self) -> None:
        if bool(self.attention_units) != bool(self.attention_layer):
            raise ValueError("an attention decoder needs both attention_units and attention_layer")

    @property
    def attends(self) -> bool:
        return self.attention_units > 0

    def to_json(self) -> dict:
        data = asdict(self)
        if not self.attends:  # the manifest of a decoder without attention stays as it was
            del data["attention_units"], data["attention_layer"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> DecoderConfig:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass
class AttentionLayers:
    """The layers an attention step reads (see :class:`mlcore.decoding.StepDecoder`)."""

    keys: layers.Dense
    values: layers.Dense
    query: layers.Dense
    scores: layers.AdditiveAttention
    gate: layers.Dense
    combine: layers.Dense


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
    attention: AttentionLayers | None = None


def build_decoder(config: DecoderConfig) -> CaptionDecoder:
    """(image features, caption ids without the last token) → next-word logits per position.

    Image features: the pooled ``(feature_dim,)`` vector, or with attention the output map
    flattened to ``(positions, feature_dim)``.
    """
    if config.attends:
        image_features = keras.Input(shape=(None, config.feature_dim), name="image_map")
        pooled = layers.GlobalAveragePooling1D(name="pooled_features")(image_features)
    else:
        image_features = pooled = keras.Input(shape=(config.feature_dim,), name="image_features")
    caption_ids = keras.Input(shape=(None,), dtype="int32", name="caption_ids")

    image_dropout = layers.Dropout(config.dropout, name="image_dropout")(pooled)
    initial_hidden = layers.Dense(config.units, activation="tanh", name="initial_hidden")
    initial_cell = layers.Dense(config.units, name="initial_cell")
    state = [initial_hidden(image_dropout), initial_cell(image_dropout)]

    embedding = layers.Embedding(config.vocabulary_size, config.embedding_dim, mask_zero=True,
                                 name="word_embedding")
    words = layers.Dropout(config.dropout, name="word_dropout")(embedding(caption_ids))
    lstm = layers.LSTM(config.units, return_sequences=True, name="caption_lstm")
    sequence = lstm(words, initial_state=state)
    attention = None
    if config.attends:
        attention = AttentionLayers(
            keys=layers.Dense(config.attention_units, name="attention_keys"),
            values=layers.Dense(config.units, name="attention_values"),
            query=layers.Dense(config.attention_units, use_bias=False, name="attention_query"),
            scores=layers.AdditiveAttention(use_scale=True, name="soft_attention"),
            gate=layers.Dense(1, activation="sigmoid", name="context_gate"),
            combine=layers.Dense(config.units, activation="tanh", name="attention_combine"))
        image_map = layers.Dropout(config.dropout, name="map_dropout")(image_features)
        context = attention.scores([attention.query(sequence), attention.values(image_map),
                                    attention.keys(image_map)])
        context = layers.Multiply(name="gated_context")([context, attention.gate(sequence)])
        sequence = attention.combine(layers.Concatenate(name="output_and_context")(
            [sequence, context]))
    sequence = layers.Dropout(config.dropout, name="lstm_dropout")(sequence)
    output_projection = layers.Dense(config.vocabulary_size, name="next_word_logits")
    logits = output_projection(sequence)

    model = keras.Model([image_features, caption_ids], logits, name="caption_decoder")
    return CaptionDecoder(config, model, initial_hidden, initial_cell, embedding, lstm,
                          output_projection, attention)
