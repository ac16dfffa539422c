"""Batched greedy and beam-search decoding with one compiled LSTM step per generated word.

Both decoders run their whole loop inside one ``tf.function``: per generated word they run
exactly one row lookup of the word's precomputed input gates, one recurrent matrix product on the
carried ``(h, c)`` state and one output projection for every image (and beam) of the batch. Nothing re-reads the prefix and nothing goes
back to Python between words, which is what the common tutorials' ``model.predict``-per-word loop
gets wrong (see ``benchmarks/decode.py``).

With an attention decoder (:mod:`mlcore.decoder`) the image's keys and values are projected once
per image, before the loop; a step adds one query product and one attention over the positions
for all beams of all images at once, and records each word's attention weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from mlcore.decoder import CaptionDecoder
from mlcore.precision import resolve_precision
from mlcore.vocabulary import Vocabulary

# A large negative instead of -inf keeps the arithmetic free of NaNs (-inf - -inf).
_NEGATIVE = -1e9
# Words per chunk of the output layer for the two-stage top-k (see StepDecoder._top_words).
_CHUNK = 32


def _keep_rows(mask: tf.Tensor, values: tuple) -> tuple:
    return tuple(tf.boolean_mask(value, mask) for value in values)


def _keep_nested(mask: tf.Tensor, values: tuple) -> tuple:
    """:func:`_keep_rows` of each value, and of each tensor of the tuples among them."""
    return tuple(_keep_rows(mask, value) if isinstance(value, tuple) else
                 tf.boolean_mask(value, mask) for value in values)


def _scatter_rows(buffers: tuple, rows: tf.Tensor, values: tuple) -> tuple:
    """Write ``values`` into ``rows`` of each buffer: the results of rows leaving the batch."""
    return tuple(tf.tensor_scatter_nd_update(buffer, rows[:, None], value)
                 for buffer, value in zip(buffers, values))


def _word_attention(history: np.ndarray | None, words: int) -> np.ndarray | None:
    """A caption's rows of its attention history: the weights each word was chosen with."""
    return None if history is None else np.asarray(history[:words], np.float32)


def _beam_rows(images: tf.Tensor, width: int) -> tf.Tensor:
    """Row indices of all beams of ``images`` (image i owns rows i*width … i*width+width-1)."""
    return tf.reshape(images[:, None] * width + tf.range(width)[None, :], [-1])


@dataclass
class CaptionSet:
    """The captions found for one image, best first, with their total log-probabilities."""

    captions: list[str]
    log_probs: list[float]
    scores: list[float] = field(default_factory=list)  # length-normalised, used for ranking
    #: with an attention decoder: the best caption's attention, one row per word over the map's
    #: positions (row-major over the grid), each row summing to 1
    attention: np.ndarray | None = None

    @property
    def caption(self) -> str:
        return self.captions[0] if self.captions else ""


class StepDecoder:
    """Greedy and beam search over a trained :class:`CaptionDecoder`.

    ``length_penalty`` is the GNMT exponent alpha: beams are ranked by
    ``log_prob / ((5 + length) / 6) ** alpha``; 0 ranks by raw log-probability, which favours
    short captions.

    ``precision`` is the float type of the two matrix products per step (see
    :mod:`mlcore.precision`): ``"auto"`` uses bfloat16 where the hardware has native bfloat16
    matrix units and float32 elsewhere. The decoder's weights are read once, here: build a new
    ``StepDecoder`` after training the decoder further.
    """

    def __init__(self, decoder: CaptionDecoder, vocabulary: Vocabulary,
                 length_penalty: float = 0.7, precision: str | None = "auto"):
        self.decoder = decoder
        self.vocabulary = vocabulary
        self.length_penalty = float(length_penalty)
        self.max_length = decoder.config.max_length
        self.precision = resolve_precision(precision)
        self.attends = decoder.config.attends
        self._prepare_weights()
        feature_spec = tf.TensorSpec((None, None, decoder.config.feature_dim) if self.attends
                                     else (None, decoder.config.feature_dim), tf.float32)
        self._greedy = tf.function(self._greedy_loop, input_signature=[feature_spec])
        self._beam_functions: dict[int, tf.types.experimental.GenericFunction] = {}
        self._feature_spec = feature_spec

    def _prepare_weights(self) -> None:
        """Fold the decoder's layers into the few arrays one step needs.

        - A word's contribution to the LSTM gates (``embedding @ kernel + bias``) depends on the
          word alone, so it is computed once for the whole vocabulary: a step looks up one row
          instead of multiplying its embedding (about a sixth of the multiply-adds of a step).
        - Gate columns are reordered from Keras' (i, f, c, o) to (i, f, o, c) so that one sigmoid
          and one tanh cover them.
        - The output projection gets zero columns up to a multiple of ``_CHUNK`` words (their
          logits pinned at -1e9, like padding, <start> and <unk>, which are never generated: an
          "<unk>" in a caption, or "#unk" among the hashtags, helps nobody).
        """
        cell = self.decoder.lstm.cell
        if (getattr(cell.activation, "__name__", "") != "tanh"
                or getattr(cell.recurrent_activation, "__name__", "") != "sigmoid"
                or not cell.use_bias):
            raise ValueError("the step decoder expects an LSTM with tanh/sigmoid activations "
                             "and a bias (the layout build_decoder makes)")
        compute_dtype = tf.bfloat16 if self.precision == "bfloat16" else tf.float32
        units = self.decoder.config.units
        gate_order = np.concatenate([np.arange(0, 2 * units), np.arange(3 * units, 4 * units),
                                     np.arange(2 * units, 3 * units)])
        embeddings = np.asarray(self.decoder.embedding.embeddings, np.float32)
        word_gates = embeddings @ np.asarray(cell.kernel, np.float32) + np.asarray(cell.bias,
                                                                                   np.float32)
        self._word_gates = tf.constant(word_gates[:, gate_order])
        recurrent_kernel = np.asarray(cell.recurrent_kernel, np.float32)[:, gate_order]
        self._recurrent_kernel = tf.cast(recurrent_kernel, compute_dtype)

        vocabulary_size = len(self.vocabulary)
        self._padded_size = -(-vocabulary_size // _CHUNK) * _CHUNK
        output_kernel = np.zeros((units, self._padded_size), np.float32)
        output_kernel[:, :vocabulary_size] = np.asarray(self.decoder.output_projection.kernel,
                                                        np.float32)
        output_bias = np.full(self._padded_size, _NEGATIVE, np.float32)
        output_bias[:vocabulary_size] = np.asarray(self.decoder.output_projection.bias,
                                                   np.float32)
        vocab = self.vocabulary
        output_bias[[vocab.pad_id, vocab.start_id, vocab.unknown_id]] = _NEGATIVE
        self._output_kernel = tf.cast(output_kernel, compute_dtype)
        self._output_bias = tf.constant(output_bias)
        attention = self.decoder.attention
        if attention is not None:
            def weights(layer):
                return [tf.constant(np.asarray(variable, np.float32)) for variable in layer.weights]

            self._key_kernel, self._key_bias = weights(attention.keys)
            self._value_kernel, self._value_bias = weights(attention.values)
            (query_kernel,) = weights(attention.query)
            self._query_kernel = tf.cast(query_kernel, compute_dtype)
            (self._attention_scale,) = weights(attention.scores)
            self._gate_kernel, self._gate_bias = weights(attention.gate)
            combine_kernel, self._combine_bias = weights(attention.combine)
            self._combine_kernel = tf.cast(combine_kernel, compute_dtype)

    def _matmul(self, values: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        if kernel.dtype == tf.float32:
            return tf.matmul(values, kernel)
        return tf.cast(tf.matmul(tf.cast(values, kernel.dtype), kernel), tf.float32)

    # -- one step ---------------------------------------------------------------------------
    def _initial_state(self, features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tuple]:
        """The LSTM's initial state per image, and the image's ``memory``: with attention its
        projected keys ``(N, positions, attention_units)`` and values ``(N, positions, units)``,
        computed once here instead of at every step; otherwise nothing."""
        if not self.attends:
            return self.decoder.initial_hidden(features), self.decoder.initial_cell(features), ()
        pooled = tf.reduce_mean(features, axis=1)  # what the pooled_features layer computes
        keys = tf.einsum("npc,ca->npa", features, self._key_kernel) + self._key_bias
        values = tf.einsum("npc,cu->npu", features, self._value_kernel) + self._value_bias
        return (self.decoder.initial_hidden(pooled), self.decoder.initial_cell(pooled),
                (keys, values))

    def _attend(self, output: tf.Tensor, memory: tuple, width: int):
        """Additive attention of every row's LSTM output over its image's positions.

        ``output``: ``(images * width, units)``, the rows of one image adjacent; ``memory``: the
        keys and values of those images. Returns the combined output the projection reads and
        the attention weights ``(rows, positions)``: Keras' ``AdditiveAttention``, gate and
        ``attention_combine`` on the prepared weights.
        """
        keys, values = memory
        images, positions = tf.shape(keys)[0], tf.shape(keys)[1]
        query = tf.reshape(self._matmul(output, self._query_kernel), [images, width, 1, -1])
        energies = tf.reduce_sum(self._attention_scale * tf.tanh(keys[:, None] + query), axis=-1)
        weights = tf.nn.softmax(energies, axis=-1)  # (images, width, positions)
        context = tf.reshape(tf.matmul(weights, values), tf.shape(output))
        gate = tf.sigmoid(tf.matmul(output, self._gate_kernel) + self._gate_bias)
        combined = tf.tanh(self._matmul(tf.concat([output, gate * context], axis=1),
                                        self._combine_kernel) + self._combine_bias)
        return combined, tf.reshape(weights, [images * width, positions])

    def _step(self, token_ids: tf.Tensor, hidden: tf.Tensor, cell: tf.Tensor,
              memory: tuple = (), width: int = 1):
        """One word for every row: ids (N,) and state (N, units) → logits (N, V'), new state,
        and the rows' attention weights (N, positions) — None without attention.

        The arithmetic of Keras' ``LSTMCell`` on the prepared weights. ``V'`` is the vocabulary
        padded to whole chunks; the padding's logits are -1e9. Callers normalise only what they
        need, since a full ``log_softmax`` over every row and word costs as much as the projection.
        With attention, ``memory`` holds the keys and values of the rows' images, ``width`` rows
        per image.
        """
        gates = tf.gather(self._word_gates, token_ids) + self._matmul(hidden,
                                                                      self._recurrent_kernel)
        units = self.decoder.config.units
        sigmoid_gates = tf.sigmoid(gates[:, :3 * units])
        input_gate = sigmoid_gates[:, :units]
        forget_gate = sigmoid_gates[:, units:2 * units]
        output_gate = sigmoid_gates[:, 2 * units:]
        cell = forget_gate * cell + input_gate * tf.tanh(gates[:, 3 * units:])
        hidden = output_gate * tf.tanh(cell)
        output, weights = hidden, None
        if self.attends:
            output, weights = self._attend(hidden, memory, width)
        logits = self._matmul(output, self._output_kernel) + self._output_bias
        return logits, hidden, cell, weights

    def _top_words(self, logits: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        """The ``k`` most likely words of every row: (log-probabilities, ids), best first.

        Why chunked: a plain ``top_k`` over the whole vocabulary cost more than both matrix
        products of the step. The ``k`` best words lie in the ``k`` chunks with the highest
        maxima, so ``top_k`` runs over chunk maxima and then over ``k`` chunks only.
        """
        rows = tf.shape(logits)[0]
        chunk_count = self._padded_size // _CHUNK
        if k >= chunk_count:  # tiny vocabularies: nothing to gain
            values, word_ids = tf.math.top_k(logits, k=k)
        else:
            chunks = tf.reshape(logits, [rows, chunk_count, _CHUNK])
            _, best_chunks = tf.math.top_k(tf.reduce_max(chunks, axis=-1), k=k)
            candidates = tf.reshape(tf.gather(chunks, best_chunks, batch_dims=1),
                                    [rows, k * _CHUNK])
            values, positions = tf.math.top_k(candidates, k=k)
            word_ids = (tf.gather(best_chunks, positions // _CHUNK, batch_dims=1) * _CHUNK
                        + positions % _CHUNK)
        # log p(word) = logit - logsumexp(logits). The fused softmax kernel is the cheapest
        # pass over all logits; the best word's probability (>= 1/V, so its log is safe) gives
        # logsumexp = best logit - log p(best word).
        best_probability = tf.gather(tf.nn.softmax(logits), word_ids[:, :1], batch_dims=1)
        return values - values[:, :1] + tf.math.log(best_probability), word_ids

    # -- one path per row: greedy and sampling ----------------------------------------------
    def _history(self, rows, memory: tuple) -> tuple:
        """Per row, the attention weights of every step so far: ``(rows, max_length,
        positions)`` with attention, nothing (an empty tuple) without."""
        if not self.attends:
            return ()
        return (tf.zeros([rows, self.max_length, tf.shape(memory[0])[1]], tf.float32),)

    def _record(self, history: tuple, step, weights) -> tuple:
        if not self.attends:
            return ()
        at_step = tf.cast(tf.range(self.max_length) == step, tf.float32)[None, :, None]
        return (history[0] + at_step * weights[:, None, :],)

    def _single_path_loop(self, features: tf.Tensor, rows_per_image, choose):
        """Extend ``rows_per_image`` captions per image by one word a step, as ``choose`` picks.

        ``choose(logits, step) -> (word ids, their log-probabilities)``. A row leaves the batch
        as soon as it emits ``<end>``, so later steps only pay for captions still being written;
        the loop ends when no row is left. Returns the ids, total log-probabilities and (with
        attention) the attention history of every row.
        """
        vocab = self.vocabulary
        rows = tf.shape(features)[0] * rows_per_image
        hidden, cell, memory = self._initial_state(features)
        hidden = tf.repeat(hidden, rows_per_image, axis=0)
        cell = tf.repeat(cell, rows_per_image, axis=0)
        memory = tuple(tf.repeat(part, rows_per_image, axis=0) for part in memory)
        tokens = tf.fill([rows], tf.constant(vocab.start_id, tf.int32))
        total_log_prob = tf.zeros([rows], tf.float32)
        sequence = tf.zeros([rows, self.max_length], tf.int32)
        history = self._history(rows, memory)
        active = tf.range(rows)  # output row of each row still being extended
        done = (tf.zeros([rows, self.max_length], tf.int32), tf.zeros([rows], tf.float32),
                *self._history(rows, memory))
        positions = tf.range(self.max_length)
        for step in tf.range(self.max_length):
            logits, hidden, cell, weights = self._step(tokens, hidden, cell, memory)
            history = self._record(history, step, weights)
            tokens, chosen_log_prob = choose(logits, step)
            total_log_prob += chosen_log_prob
            sequence += tf.cast(positions == step, tf.int32)[None, :] * tokens[:, None]
            ended = tf.equal(tokens, vocab.end_id)
            if tf.reduce_any(ended):  # ended rows move to the results and leave the batch
                done = _scatter_rows(done, tf.boolean_mask(active, ended),
                                     _keep_rows(ended, (sequence, total_log_prob, *history)))
                (active, tokens, hidden, cell, total_log_prob, sequence, history,
                 memory) = _keep_nested(tf.logical_not(ended), (
                     active, tokens, hidden, cell, total_log_prob, sequence, history, memory))
            if tf.size(active) == 0:
                break
        # rows that hit max_length without <end>
        return _scatter_rows(done, active, (sequence, total_log_prob, *history))

    def _greedy_loop(self, features: tf.Tensor):
        def most_likely(logits, step):
            log_probs, word_ids = self._top_words(logits, 1)
            return word_ids[:, 0], log_probs[:, 0]

        return self._single_path_loop(features, 1, most_likely)

    def greedy(self, features: np.ndarray) -> list[CaptionSet]:
        """One caption per image; ``features`` is (N, feature_dim), or with attention the maps
        (N, positions, feature_dim)."""
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return []
        sequences, log_probs, *history = self._greedy(tf.constant(features))
        history = history[0].numpy() if history else [None] * len(features)
        results = []
        for ids, log_prob, attention in zip(sequences.numpy(), log_probs.numpy(), history):
            words = self.vocabulary.decode(ids)
            score = float(log_prob) / self._length_norm(len(words) + 1)
            results.append(CaptionSet([" ".join(words)], [float(log_prob)], [score],
                                      _word_attention(attention, len(words))))
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
        sequences, log_probs, *_ = self._sampler(
            tf.constant(features), tf.constant(count, tf.int32),
            tf.constant(temperature, tf.float32), tf.constant(seed, tf.int32))
        sequences = sequences.numpy().reshape(len(features), count, -1)
        log_probs = log_probs.numpy().reshape(len(features), count)
        return [CaptionSet([" ".join(self.vocabulary.decode(ids)) for ids in image_sequences],
                           [float(value) for value in image_log_probs])
                for image_sequences, image_log_probs in zip(sequences, log_probs)]

    # -- beam search ------------------------------------------------------------------------
    def _length_norm(self, length):
        return ((5.0 + length) / 6.0) ** self.length_penalty

    def _beam_loop(self, features: tf.Tensor, width: int):
        """``width`` beams per image, one step for all beams of all images still searching.

        An image leaves the batch once all its beams have emitted ``<end>``, so later steps only
        pay for images still being captioned (caption lengths vary about 2x within a batch).
        """
        vocab = self.vocabulary
        batch = tf.shape(features)[0]
        rows = batch * width
        hidden, cell, memory = self._initial_state(features)  # memory: one per image, not beam
        hidden = tf.repeat(hidden, width, axis=0)
        cell = tf.repeat(cell, width, axis=0)
        tokens = tf.fill([rows], tf.constant(vocab.start_id, tf.int32))
        # Only beam 0 is alive at the start, so the first step does not pick the same word k times.
        beam_scores = tf.tile(tf.concat([[0.0], tf.fill([width - 1], _NEGATIVE)], 0), [batch])
        finished = tf.zeros([rows], tf.bool)
        lengths = tf.zeros([rows], tf.float32)
        sequence = tf.zeros([rows, self.max_length], tf.int32)
        history = self._history(rows, memory)
        positions = tf.range(self.max_length)
        # A finished beam may only "emit" padding at no cost, so it carries over unchanged.
        finished_log_probs = tf.concat([[0.0], tf.fill([width - 1], _NEGATIVE)], 0)
        active = tf.range(batch)  # the images still searching, as indices into the batch
        done = (tf.zeros([rows, self.max_length], tf.int32), tf.zeros([rows], tf.float32),
                tf.zeros([rows], tf.float32), *self._history(rows, memory))
        for step in tf.range(self.max_length):
            count = tf.shape(active)[0]
            logits, hidden, cell, weights = self._step(tokens, hidden, cell, memory, width)
            history = self._record(history, step, weights)
            # The best `width` continuations overall are among each beam's own best `width`, so
            # only (rows, width) candidates are ranked, never (rows, vocabulary).
            row_log_probs, row_words = self._top_words(logits, width)
            row_log_probs = tf.where(finished[:, None], finished_log_probs[None, :], row_log_probs)
            row_words = tf.where(finished[:, None], vocab.pad_id, row_words)
            candidates = tf.reshape(beam_scores[:, None] + row_log_probs, [count, width * width])
            top_scores, top_indices = tf.math.top_k(candidates, k=width)
            origin = tf.reshape(top_indices // width + (tf.range(count) * width)[:, None], [-1])
            choice = tf.reshape(top_indices % width, [-1])
            next_tokens = tf.gather_nd(row_words, tf.stack([origin, choice], axis=1))
            beam_scores = tf.reshape(top_scores, [-1])
            hidden = tf.gather(hidden, origin)
            cell = tf.gather(cell, origin)
            history = tuple(tf.gather(part, origin) for part in history)
            was_finished = tf.gather(finished, origin)
            lengths = tf.gather(lengths, origin) + tf.where(was_finished, 0.0, 1.0)
            sequence = tf.gather(sequence, origin)
            sequence += tf.cast(positions == step, tf.int32)[None, :] * next_tokens[:, None]
            finished = was_finished | tf.equal(next_tokens, vocab.end_id)
            tokens = next_tokens

            image_done = tf.reduce_all(tf.reshape(finished, [count, width]), axis=1)
            if tf.reduce_any(image_done):  # their beams move to the results, leave the batch
                row_done = tf.repeat(image_done, width)
                done = _scatter_rows(done, _beam_rows(tf.boolean_mask(active, image_done), width),
                                     _keep_rows(row_done, (sequence, beam_scores, lengths,
                                                           *history)))
                active, memory = _keep_nested(tf.logical_not(image_done), (active, memory))
                (tokens, hidden, cell, beam_scores, finished, lengths, sequence,
                 history) = _keep_nested(tf.logical_not(row_done), (
                     tokens, hidden, cell, beam_scores, finished, lengths, sequence, history))
            if tf.size(active) == 0:
                break
        # images whose beams hit max_length without all ending
        done_sequence, done_scores, done_lengths, *done_history = _scatter_rows(
            done, _beam_rows(active, width), (sequence, beam_scores, lengths, *history))
        normalised = done_scores / (((5.0 + done_lengths) / 6.0) ** self.length_penalty)
        return (tf.reshape(done_sequence, [batch, width, self.max_length]),
                tf.reshape(done_scores, [batch, width]), tf.reshape(normalised, [batch, width]),
                *(tf.reshape(part, [batch, width, self.max_length, -1]) for part in done_history))

    def beam_search(self, features: np.ndarray, width: int = 3) -> list[CaptionSet]:
        """The ``width`` best captions per image, ranked by length-normalised log-probability."""
        if width < 1:
            raise ValueError("beam width must be at least 1")
        # At most as many beams as words that can be generated (all but padding, <start>, <unk>):
        # a wider search would have to extend beams with those (or the chunk padding).
        width = min(width, len(self.vocabulary) - 3)
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return []
        if width not in self._beam_functions:
            self._beam_functions[width] = tf.function(
                lambda f: self._beam_loop(f, width), input_signature=[self._feature_spec])
        sequences, log_probs, scores, *history = (t.numpy() for t in self._beam_functions[width](
            tf.constant(features)))
        history = history[0] if history else [None] * len(features)
        results = []
        for image_sequences, image_log_probs, image_scores, image_history in zip(
                sequences, log_probs, scores, history):
            order = np.argsort(-image_scores, kind="stable")
            captions, kept_log_probs, kept_scores, seen = [], [], [], set()
            attention = None
            for index in order:
                if image_log_probs[index] <= _NEGATIVE / 2:
                    continue  # a beam that never became alive (width > vocabulary)
                caption = " ".join(self.vocabulary.decode(image_sequences[index]))
                if caption in seen:
                    continue
                seen.add(caption)
                if not captions and image_history is not None:
                    attention = _word_attention(image_history[index], len(caption.split()))
                captions.append(caption)
                kept_log_probs.append(float(image_log_probs[index]))
                kept_scores.append(float(image_scores[index]))
            results.append(CaptionSet(captions, kept_log_probs, kept_scores, attention))
        return results

    def decode(self, features: np.ndarray, beam_width: int = 1) -> list[CaptionSet]:
        return self.greedy(features) if beam_width == 1 else self.beam_search(features, beam_width)
