"""Batched greedy and beam-search decoding with one compiled LSTM step per generated word.

Both decoders run their whole loop inside one ``tf.function``: per generated word they run
exactly one embedding lookup, one ``LSTMCell`` call on the carried ``(h, c)`` state and one output
projection for every image (and beam) of the batch. Nothing re-reads the prefix and nothing goes
back to Python between words, which is what the common tutorials' ``model.predict``-per-word loop
gets wrong (see ``benchmarks/decode.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from mlcore.decoder import CaptionDecoder
from mlcore.vocabulary import Vocabulary

# A large negative instead of -inf keeps the arithmetic free of NaNs (-inf - -inf).
_NEGATIVE = -1e9


@dataclass
class CaptionSet:
    """The captions found for one image, best first, with their total log-probabilities."""

    captions: list[str]
    log_probs: list[float]
    scores: list[float] = field(default_factory=list)  # length-normalised, used for ranking

    @property
    def caption(self) -> str:
        return self.captions[0] if self.captions else ""


class StepDecoder:
    """Greedy and beam search over a trained :class:`CaptionDecoder`.

    ``length_penalty`` is the GNMT exponent alpha: beams are ranked by
    ``log_prob / ((5 + length) / 6) ** alpha``; 0 ranks by raw log-probability, which favours
    short captions.
    """

    def __init__(self, decoder: CaptionDecoder, vocabulary: Vocabulary,
                 length_penalty: float = 0.7, jit_compile: bool = False):
        self.decoder = decoder
        self.vocabulary = vocabulary
        self.length_penalty = float(length_penalty)
        self.max_length = decoder.config.max_length
        feature_spec = tf.TensorSpec((None, decoder.config.feature_dim), tf.float32)
        self._greedy = tf.function(self._greedy_loop, input_signature=[feature_spec],
                                   jit_compile=jit_compile)
        self._beam_functions: dict[int, tf.types.experimental.GenericFunction] = {}
        self._jit_compile = jit_compile
        self._feature_spec = feature_spec
        # Padding, <start> and <unk> are never words of a caption: an "<unk>" in a caption (and
        # "#unk" among the hashtags) helps nobody, so their logits are pushed out of reach.
        banned = np.zeros(len(vocabulary), np.float32)
        banned[[vocabulary.pad_id, vocabulary.start_id, vocabulary.unknown_id]] = _NEGATIVE
        self._never_generate = tf.constant(banned)

    # -- one step ---------------------------------------------------------------------------
    def _initial_state(self, features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.decoder.initial_hidden(features), self.decoder.initial_cell(features)

    def _step(self, token_ids: tf.Tensor, hidden: tf.Tensor, cell: tf.Tensor):
        """One word for every row: ids (N,) and state (N, units) → logits (N, V), new state.

        Callers normalise only what they need (``logsumexp`` per row), since a full
        ``log_softmax`` over every row and word costs as much as the projection itself.
        """
        # A direct lookup: calling the Embedding layer would attach its padding mask, which the
        # single cell has no use for.
        words = tf.nn.embedding_lookup(self.decoder.embedding.embeddings, token_ids)
        output, (hidden, cell) = self.decoder.lstm.cell(words, [hidden, cell], training=False)
        logits = self.decoder.output_projection(output) + self._never_generate
        return logits, hidden, cell

    # -- one path per row: greedy and sampling ----------------------------------------------
    def _single_path_loop(self, features: tf.Tensor, rows_per_image, choose):
        """Extend ``rows_per_image`` captions per image by one word a step, as ``choose`` picks.

        ``choose(logits, step) -> (word ids, their log-probabilities)``; finished rows emit
        padding at no cost, and the loop ends when every row has emitted ``<end>``.
        """
        vocab = self.vocabulary
        rows = tf.shape(features)[0] * rows_per_image
        hidden, cell = self._initial_state(features)
        hidden = tf.repeat(hidden, rows_per_image, axis=0)
        cell = tf.repeat(cell, rows_per_image, axis=0)
        tokens = tf.fill([rows], tf.constant(vocab.start_id, tf.int32))
        finished = tf.zeros([rows], tf.bool)
        total_log_prob = tf.zeros([rows], tf.float32)
        sequence = tf.zeros([rows, self.max_length], tf.int32)
        positions = tf.range(self.max_length)
        for step in tf.range(self.max_length):
            logits, hidden, cell = self._step(tokens, hidden, cell)
            next_tokens, chosen_log_prob = choose(logits, step)
            total_log_prob += tf.where(finished, 0.0, chosen_log_prob)
            next_tokens = tf.where(finished, vocab.pad_id, next_tokens)
            sequence += tf.cast(positions == step, tf.int32)[None, :] * next_tokens[:, None]
            finished = finished | tf.equal(next_tokens, vocab.end_id)
            tokens = next_tokens
            if tf.reduce_all(finished):
                break
        return sequence, total_log_prob

    def _greedy_loop(self, features: tf.Tensor):
        def most_likely(logits, step):
            best = tf.reduce_max(logits, axis=-1) - tf.reduce_logsumexp(logits, axis=-1)
            return tf.argmax(logits, axis=-1, output_type=tf.int32), best

        return self._single_path_loop(features, 1, most_likely)

    def greedy(self, features: np.ndarray) -> list[CaptionSet]:
        """One caption per image; ``features`` is (N, feature_dim)."""
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return []
        sequences, log_probs = self._greedy(tf.constant(features))
        results = []
        for ids, log_prob in zip(sequences.numpy(), log_probs.numpy()):
            words = self.vocabulary.decode(ids)
            score = float(log_prob) / self._length_norm(len(words) + 1)
            results.append(CaptionSet([" ".join(words)], [float(log_prob)], [score]))
        return results

    def _sample_loop(self, features: tf.Tensor, count: tf.Tensor, temperature: tf.Tensor,
                     seed: tf.Tensor):
        def draw(logits, step):
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            words = tf.random.stateless_categorical(
                log_probs / temperature, 1, seed=tf.stack([seed, step]), dtype=tf.int32)[:, 0]
            return words, tf.gather(log_probs, words, batch_dims=1)

        return self._single_path_loop(features, count, draw)

    def sample(self, features: np.ndarray, count: int = 20, temperature: float = 1.0,
               seed: int = 0) -> list[CaptionSet]:
        """``count`` captions drawn from the model per image (for word-probability estimates)."""
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return []
        if not hasattr(self, "_sampler"):
            self._sampler = tf.function(self._sample_loop, input_signature=[
                self._feature_spec, tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.float32),
                tf.TensorSpec((), tf.int32)])
        sequences, log_probs = self._sampler(tf.constant(features), tf.constant(count, tf.int32),
                                             tf.constant(temperature, tf.float32),
                                             tf.constant(seed, tf.int32))
        sequences = sequences.numpy().reshape(len(features), count, -1)
        log_probs = log_probs.numpy().reshape(len(features), count)
        return [CaptionSet([" ".join(self.vocabulary.decode(ids)) for ids in image_sequences],
                           [float(value) for value in image_log_probs])
                for image_sequences, image_log_probs in zip(sequences, log_probs)]

    # -- beam search ------------------------------------------------------------------------
    def _length_norm(self, length):
        return ((5.0 + length) / 6.0) ** self.length_penalty

    def _beam_loop(self, features: tf.Tensor, width: int):
        vocab = self.vocabulary
        batch = tf.shape(features)[0]
        rows = batch * width
        hidden, cell = self._initial_state(features)
        hidden = tf.repeat(hidden, width, axis=0)
        cell = tf.repeat(cell, width, axis=0)
        tokens = tf.fill([rows], tf.constant(vocab.start_id, tf.int32))
        # Only beam 0 is alive at the start, so the first step does not pick the same word k times.
        beam_scores = tf.tile(tf.concat([[0.0], tf.fill([width - 1], _NEGATIVE)], 0), [batch])
        finished = tf.zeros([rows], tf.bool)
        lengths = tf.zeros([rows], tf.float32)
        sequence = tf.zeros([rows, self.max_length], tf.int32)
        positions = tf.range(self.max_length)
        # A finished beam may only "emit" padding at no cost, so it carries over unchanged.
        finished_log_probs = tf.concat([[0.0], tf.fill([width - 1], _NEGATIVE)], 0)
        batch_offsets = tf.repeat(tf.range(batch) * width, width)
        for step in tf.range(self.max_length):
            logits, hidden, cell = self._step(tokens, hidden, cell)
            # The best `width` continuations overall are among each beam's own best `width`, so
            # only (rows, width) candidates are normalised and ranked, never (rows, vocabulary).
            row_logits, row_words = tf.math.top_k(logits, k=width)
            row_log_probs = row_logits - tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
            row_log_probs = tf.where(finished[:, None], finished_log_probs[None, :], row_log_probs)
            row_words = tf.where(finished[:, None], vocab.pad_id, row_words)
            candidates = tf.reshape(beam_scores[:, None] + row_log_probs, [batch, width * width])
            top_scores, top_indices = tf.math.top_k(candidates, k=width)
            origin = tf.reshape(top_indices // width, [-1]) + batch_offsets
            choice = tf.reshape(top_indices % width, [-1])
            next_tokens = tf.gather_nd(row_words, tf.stack([origin, choice], axis=1))
            beam_scores = tf.reshape(top_scores, [-1])
            hidden = tf.gather(hidden, origin)
            cell = tf.gather(cell, origin)
            was_finished = tf.gather(finished, origin)
            lengths = tf.gather(lengths, origin) + tf.where(was_finished, 0.0, 1.0)
            sequence = tf.gather(sequence, origin)
            sequence += tf.cast(positions == step, tf.int32)[None, :] * next_tokens[:, None]
            finished = was_finished | tf.equal(next_tokens, vocab.end_id)
            tokens = next_tokens
            if tf.reduce_all(finished):
                break
        normalised = beam_scores / (((5.0 + lengths) / 6.0) ** self.length_penalty)
        return (tf.reshape(sequence, [batch, width, self.max_length]),
                tf.reshape(beam_scores, [batch, width]), tf.reshape(normalised, [batch, width]))

    def beam_search(self, features: np.ndarray, width: int = 3) -> list[CaptionSet]:
        """The ``width`` best captions per image, ranked by length-normalised log-probability."""
        if width < 1:
            raise ValueError("beam width must be at least 1")
        width = min(width, len(self.vocabulary))
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return []
        if width not in self._beam_functions:
            self._beam_functions[width] = tf.function(
                lambda f: self._beam_loop(f, width), input_signature=[self._feature_spec],
                jit_compile=self._jit_compile)
        sequences, log_probs, scores = (t.numpy() for t in self._beam_functions[width](
            tf.constant(features)))
        results = []
        for image_sequences, image_log_probs, image_scores in zip(sequences, log_probs, scores):
            order = np.argsort(-image_scores, kind="stable")
            captions, kept_log_probs, kept_scores, seen = [], [], [], set()
            for index in order:
                if image_log_probs[index] <= _NEGATIVE / 2:
                    continue  # a beam that never became alive (width > vocabulary)
                caption = " ".join(self.vocabulary.decode(image_sequences[index]))
                if caption in seen:
                    continue
                seen.add(caption)
                captions.append(caption)
                kept_log_probs.append(float(image_log_probs[index]))
                kept_scores.append(float(image_scores[index]))
            results.append(CaptionSet(captions, kept_log_probs, kept_scores))
        return results

    def decode(self, features: np.ndarray, beam_width: int = 1) -> list[CaptionSet]:
        return self.greedy(features) if beam_width == 1 else self.beam_search(features, beam_width)
